"""Hooks the scheduler calls as requests move (for metrics), and the wrapper that keeps
a failing hook from taking a worker down."""

from __future__ import annotations

import logging
from typing import Any

from tts_service.scheduling.jobs import JobState

log = logging.getLogger(__name__)


class SchedulerObserver:
    """Hooks for metrics. Called from worker threads and the event loop; keep them cheap."""

    def rejected(self, reason: str) -> None: ...
    def started(self, queue_wait: float) -> None: ...
    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None: ...
    def first_audio(self, seconds: float) -> None: ...
    def finished(self, state: JobState, latency: float) -> None: ...
    def batched(self, size: int) -> None:
        """One model run of `size` sentences, while batching is on (1: ran alone)."""


class SafeObserver(SchedulerObserver):
    """An observer whose failures are logged, never raised: a broken metrics hook must
    not kill a worker thread and strand the job it was running."""

    def __init__(self, inner: SchedulerObserver) -> None:
        self.inner = inner

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.inner, name)(*args)
        except Exception:
            log.exception("scheduler observer %s failed", name)

    def rejected(self, reason: str) -> None:
        self._call("rejected", reason)

    def started(self, queue_wait: float) -> None:
        self._call("started", queue_wait)

    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        self._call("sentence_done", synth_seconds, audio_seconds)

    def first_audio(self, seconds: float) -> None:
        self._call("first_audio", seconds)

    def finished(self, state: JobState, latency: float) -> None:
        self._call("finished", state, latency)

    def batched(self, size: int) -> None:
        self._call("batched", size)
