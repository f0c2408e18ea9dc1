"""Serve's health check of a replica reads its scheduler: healthy while started, running and
with every worker thread alive; each way of being unable to serve is named."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.rayserve.health import ReplicaUnhealthy, check, problem
from tts_service.scheduling.scheduler import Scheduler


class KillingVoice:
    """A voice whose synthesis ends the worker thread itself (nothing a worker catches)."""

    sample_rate = 1000
    has_solo_session = False

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        raise SystemExit("gone")


@dataclass
class Replica:
    scheduler: Scheduler
    ready: bool = True


def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


async def test_a_running_replica_is_healthy_until_a_worker_dies() -> None:
    scheduler = Scheduler(workers=2)
    scheduler.start()
    replica = Replica(scheduler)
    try:
        assert problem(replica) is None
        check(replica)  # does not raise
        scheduler.submit(KillingVoice(), [[1, 2, 3]], SynthesisOptions())
        until(lambda: scheduler.live_workers == 1)
        assert problem(replica) == "1 of 2 worker threads are no longer running"
        with pytest.raises(ReplicaUnhealthy, match="worker threads"):
            check(replica)
    finally:
        scheduler.stop()
    assert problem(replica) == "the scheduler has stopped"


def test_a_replica_still_starting_is_not_healthy() -> None:
    scheduler = Scheduler(workers=1)
    scheduler.start()
    try:
        reason = problem(Replica(scheduler, ready=False))
        assert reason is not None and "not finished starting" in reason
    finally:
        scheduler.stop()
