"""Who may enter: admission by predicted wait, with counts as the memory backstop.

A request is admitted when it can start before its deadline: the work the dispatch policy
will run before its first sentence, divided among the workers, at the synthesis speed
measured on recent sentences. One that cannot is refused at once with a `Retry-After`
from the same estimate, instead of waiting out its deadline for a 504. The count limits
(requests, sentences, requests per client) stay as a bound on memory whatever the
estimate says.

Pure logic over the scheduler's jobs; the scheduler calls it under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

# Admit only what the estimate says starts within this share of its deadline: sentence
# times vary (length, contention), and a request admitted must not then miss it.
DEADLINE_SHARE = 0.8
MAX_RETRY_AFTER = 60


class QueuedWork(Protocol):
    """What admission reads of a job."""

    @property
    def priority(self) -> int: ...
    @property
    def sentences(self) -> list[list[int]]: ...
    @property
    def next_dispatch(self) -> int: ...
    @property
    def in_flight(self) -> int: ...

    def pending_sentences(self) -> int: ...


@dataclass
class SpeedEstimate:
    """Seconds of synthesis per phoneme id on one worker, a running mean of recent
    sentences. Short sentences cost more per id (fixed overhead), which only makes the
    estimate err on the safe side for long ones."""

    seconds_per_id: float = 0.004  # until measured: a slow CPU's figure for a medium voice
    weight: float = 0.1

    def learn(self, ids: int, seconds: float) -> None:
        if ids > 0 and seconds > 0:
            sample = seconds / ids
            self.seconds_per_id += self.weight * (sample - self.seconds_per_id)

    def seconds(self, ids: int) -> float:
        return ids * self.seconds_per_id


def ids_ahead(jobs: Iterable[QueuedWork], priority: int, policy: str) -> int:
    """Phoneme ids the policy runs before a new request's first sentence.

    `fifo` runs every earlier request to its end. `fair` and `round_robin` run, at the
    new request's priority, at most the next sentence of each request not yet served
    more than it (for `fair`, only unstarted ones) and everything of a higher priority.
    Sentences being synthesized now count in full.
    """
    total = 0
    for job in jobs:
        pending = job.sentences[job.next_dispatch :]
        running = job.sentences[max(0, job.next_dispatch - job.in_flight) : job.next_dispatch]
        total += sum(len(ids) for ids in running)
        if not pending:
            continue
        if policy == "fifo" or job.priority < priority:
            total += sum(len(ids) for ids in pending)
        elif job.priority == priority and (policy == "round_robin" or job.next_dispatch == 0):
            total += len(pending[0])
    return total


def predicted_wait(
    jobs: Iterable[QueuedWork], priority: int, policy: str, workers: int, speed: SpeedEstimate
) -> float:
    """Seconds until a request submitted now would start, by the estimate."""
    return speed.seconds(ids_ahead(jobs, priority, policy)) / max(1, workers)


def fits_deadline(wait: float, timeout: float) -> bool:
    return wait <= DEADLINE_SHARE * timeout


def retry_after(seconds: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1, at most a minute."""
    return int(min(MAX_RETRY_AFTER, max(1, math.ceil(seconds))))
