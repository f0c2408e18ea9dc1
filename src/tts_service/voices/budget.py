"""What each loaded voice costs in memory, and the budget the voice cache keeps to.

A voice's size is measured when it loads: the process's resident memory before and after,
with freed heap returned to the system on both sides and one load at a time. Before a
voice is loaded its size is estimated from its model file (the weights, held once) plus
what each ONNX session has cost so far. A voice that requests are using is never evicted:
dropping it would free nothing until they finish, and loading it again meanwhile would
hold it twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tts_service import memory

MB = 1024 * 1024
# What one ONNX session of a medium voice adds besides the shared weights (measured:
# 16-27 MB), until this process has measured its own.
DEFAULT_SESSION_BYTES = 24 * MB

T = TypeVar("T")


def megabytes(size: int) -> str:
    return f"{size / MB:.0f} MB"


class VoiceHolds(Generic[T]):
    """How many requests are using each loaded voice (released from worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[T, int] = {}

    def hold(self, voice: T) -> None:
        with self._lock:
            self._counts[voice] = self._counts.get(voice, 0) + 1

    def release(self, voice: T) -> None:
        with self._lock:
            left = self._counts.get(voice, 0) - 1
            if left > 0:
                self._counts[voice] = left
            else:
                self._counts.pop(voice, None)

    def held(self, voice: T) -> bool:
        with self._lock:
            return voice in self._counts


class LoadMeter:
    """Measures what a load adds to the process: one load at a time, heap trimmed on
    both sides so garbage from earlier work does not count.

    `quiet()` says whether anything else that allocates is going on: None while busy,
    else a token that changes when work happens. A load during which the process was
    not quiet has no trustworthy size (a sentence in flight holds ~100 MB for a moment):
    `measure` then answers None and the caller estimates instead."""

    def __init__(
        self,
        resident: Callable[[], int] = memory.resident_bytes,
        quiet: Callable[[], object | None] = lambda: 0,
    ) -> None:
        self._resident = resident
        self.quiet = quiet
        self._lock = threading.Lock()

    def measure(self, load: Callable[[], T]) -> tuple[T, int | None]:
        with self._lock:
            before_work = self.quiet()
            memory.trim()
            before = self._resident()
            loaded = load()
            memory.trim()
            added = max(0, self._resident() - before)
            after_work = self.quiet()
        if before_work is None or after_work is None or before_work != after_work:
            return loaded, None
        return loaded, added


@dataclass
class MemoryBudget:
    """The most memory loaded voices may take together (None: no limit), and what each
    kind of voice is expected to take before it has been measured."""

    limit: int | None
    session_bytes: int = DEFAULT_SESSION_BYTES
    """Learned: the most one session has cost beyond its voice's model file."""

    def estimate(self, model_bytes: int, sessions: int) -> int:
        return model_bytes + sessions * self.session_bytes

    def learn(self, measured: int, model_bytes: int, sessions: int) -> None:
        """Remember what a session really cost (the largest seen: estimates stay safe)."""
        if sessions > 0 and measured > model_bytes:
            per_session = (measured - model_bytes) // sessions
            if per_session > self.session_bytes:
                self.session_bytes = per_session

    def fits(self, used: int, extra: int) -> bool:
        return self.limit is None or used + extra <= self.limit

    def to_free(
        self, loaded: Iterable[tuple[str, int, bool]], extra: int, max_count: int
    ) -> list[str]:
        """Voices to evict, least recently used first, so that `extra` more bytes fit and
        at most `max_count` voices stay. `loaded`: (name, bytes, held), oldest first.
        Held voices are never chosen; the result may not be enough (see `fits`)."""
        entries = list(loaded)
        used = sum(size for _, size, _ in entries)
        count = len(entries)
        chosen = []
        for name, size, held in entries:
            if self.fits(used, extra) and count <= max_count:
                break
            if held:
                continue
            chosen.append(name)
            used -= size
            count -= 1
        return chosen
