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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

# Admit only what the estimate says starts within this share of its deadline: sentence
# times vary (length, contention), and a request admitted must not then miss it.
DEADLINE_SHARE = 0.6
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


Job = TypeVar("Job", bound=QueuedWork)


@dataclass
class SpeedEstimate:
    """Seconds of synthesis per phoneme id on one worker, from recent sentences.

    Admission must not admit what then misses its deadline, so it plans with a pessimistic
    figure: the running mean plus twice the running mean deviation (as TCP sets
    its retransmission timeout from round-trip times). On a quiet machine that is close to
    the mean; on a shared, noisy one it leaves room. Short sentences cost more per id
    (fixed overhead), which only errs on the safe side for long ones."""

    mean: float = 0.01  # until measured: a slow CPU's figure for a medium voice
    deviation: float = 0.0
    weight: float = 0.125
    measured: bool = False

    def learn(self, ids: int, seconds: float) -> None:
        if ids <= 0 or seconds <= 0:
            return
        sample = seconds / ids
        if not self.measured:  # the first measurement replaces the guess outright
            self.mean, self.deviation, self.measured = sample, sample / 4, True
            return
        self.deviation += self.weight * (abs(sample - self.mean) - self.deviation)
        self.mean += self.weight * (sample - self.mean)

    @property
    def seconds_per_id(self) -> float:
        return self.mean + 2 * self.deviation

    def seconds(self, ids: int) -> float:
        return ids * self.seconds_per_id


def ids_ahead_in(job: QueuedWork, priority: int, policy: str) -> int:
    """Phoneme ids of `job` that the policy runs before a new request's first sentence.

    `fifo` runs every earlier request to its end. `fair` and `round_robin` run, at the
    new request's priority, at most the next sentence of each request not yet served
    more than it (for `fair`, only unstarted ones) and everything of a higher priority.
    Sentences being synthesized now count in full.
    """
    pending = job.sentences[job.next_dispatch :]
    running = job.sentences[max(0, job.next_dispatch - job.in_flight) : job.next_dispatch]
    total = sum(len(ids) for ids in running)
    if not pending:
        return total
    if policy == "fifo" or job.priority < priority:
        total += sum(len(ids) for ids in pending)
    elif job.priority == priority and (policy == "round_robin" or job.next_dispatch == 0):
        total += len(pending[0])
    return total


def ids_ahead(jobs: Iterable[QueuedWork], priority: int, policy: str) -> int:
    return sum(ids_ahead_in(job, priority, policy) for job in jobs)


def predicted_wait(
    jobs: Iterable[Job],
    priority: int,
    policy: str,
    workers: int,
    speed_of: Callable[[Job], SpeedEstimate],
) -> float:
    """Seconds until a request submitted now would start, by the estimate: each request's
    work ahead at its own voice's speed (a small voice is many times faster than a large
    one), shared by the workers."""
    seconds = sum(speed_of(job).seconds(ids_ahead_in(job, priority, policy)) for job in jobs)
    return seconds / max(1, workers)


def fits_deadline(wait: float, timeout: float) -> bool:
    return wait <= DEADLINE_SHARE * timeout


def retry_after(seconds: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1, at most a minute."""
    return int(min(MAX_RETRY_AFTER, max(1, math.ceil(seconds))))
