"""Who may enter: admission by predicted wait, with counts as the memory backstop.

A request is admitted when it can start before its deadline: the work the dispatch policy
will run before its first sentence, divided among the workers, at the synthesis speed
measured on recent sentences. One that cannot is refused at once with a `Retry-After`
from the same estimate, instead of waiting out its deadline for a 504. The count limits
(requests, sentences, requests per client) stay as a bound on memory whatever the
estimate says.

Pure logic over the scheduler's jobs; the scheduler calls it under its lock. What a
policy runs before a newcomer is the policy's own (`SchedulingPolicy.ids_ahead`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tts_service.errors import Overloaded, ServiceError, ShuttingDown, TooManyClientRequests
from tts_service.scheduling.jobs import Job as AdmittedJob
from tts_service.scheduling.jobs import Priority
from tts_service.scheduling.policies import QueuedWork, SchedulingPolicy

# Admit only what the estimate says starts within this share of its deadline: sentence
# times vary (length, contention), and a request admitted must not then miss it.
DEADLINE_SHARE = 0.6
MAX_RETRY_AFTER = 60


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


class VoiceSpeeds:
    """Each voice's measured speed, and all voices' together for one not yet measured.
    Voices are held weakly: an evicted voice's figure goes with it."""

    def __init__(self) -> None:
        self.overall = SpeedEstimate()
        self._voices: weakref.WeakKeyDictionary[object, SpeedEstimate] = weakref.WeakKeyDictionary()

    def of(self, voice: object) -> SpeedEstimate:
        """The voice's own measured speed, or the all-voices figure until it has one."""
        speed = self._voices.get(voice)
        return speed if speed is not None and speed.measured else self.overall

    def learn(self, voice: object, ids: int, seconds: float) -> None:
        self.overall.learn(ids, seconds)
        self._voices.setdefault(voice, SpeedEstimate()).learn(ids, seconds)


def ids_ahead(
    jobs: Iterable[QueuedWork],
    priority: int,
    policy: SchedulingPolicy,
    sentences: float = math.inf,
) -> int:
    """Phoneme ids the policy runs before the first sentence of a new request of
    `sentences` sentences (inf: unknown)."""
    return sum(policy.ids_ahead(job, priority, sentences) for job in jobs)


def predicted_wait(
    jobs: Iterable[Job],
    priority: int,
    policy: SchedulingPolicy,
    workers: int,
    speed_of: Callable[[Job], SpeedEstimate],
    sentences: float = math.inf,
) -> float:
    """Seconds until a request of `sentences` sentences submitted now would start, by the
    estimate: each request's work ahead at its own voice's speed (a small voice is many
    times faster than a large one), shared by the workers."""
    seconds = sum(speed_of(job).seconds(policy.ids_ahead(job, priority, sentences)) for job in jobs)
    return seconds / max(1, workers)


@dataclass(frozen=True)
class Limits:
    """The count limits: a bound on memory whatever the estimate says."""

    workers: int
    max_queued_requests: int
    max_queued_sentences: int
    max_client_requests: int | None

    @property
    def capacity(self) -> int:
        """Requests admitted at once: one running per worker, the rest queued."""
        return self.workers + self.max_queued_requests


@dataclass(frozen=True)
class Refusal:
    reason: str
    """What the metrics count it as: draining, requests, sentences, client or wait."""
    error: ServiceError


def refusal(
    limits: Limits,
    *,
    closing: bool,
    admitted: int,
    queued_sentences: int,
    sentences: int,
    client_requests: int,
    timeout: float,
    wait: Callable[[], float],
    backlog_retry: Callable[[], int],
) -> Refusal | None:
    """Why a request of `sentences` may not enter now, or None when it may.

    `admitted`, `queued_sentences` and `client_requests` are what the server and the
    request's client hold already; `wait` predicts its wait to start (asked only once
    the counts allow it; an open stream with no text yet is told at its first sentence),
    and `backlog_retry` is the `Retry-After` the queued work gives a count refusal."""
    if closing:
        return Refusal(
            "draining", ShuttingDown("the server is shutting down and takes no new requests")
        )
    if admitted >= limits.capacity:
        return _busy("requests", f"{admitted} requests are already admitted", backlog_retry)
    if queued_sentences + sentences > limits.max_queued_sentences:
        return _busy("sentences", f"{queued_sentences} sentences are already queued", backlog_retry)
    held, most = client_requests, limits.max_client_requests
    if most is not None and held >= most:
        return Refusal(
            "client",
            TooManyClientRequests(
                f"this client already holds {held} requests, the most one client may; "
                "retry when one of them has finished",
                retry_after=backlog_retry(),
            ),
        )
    if sentences:
        seconds = wait()
        if not fits_deadline(seconds, timeout):
            return Refusal(
                "wait",
                Overloaded(
                    f"the server is busy: this request would wait about {seconds:.1f} s to "
                    f"start, past its {timeout:g} s deadline; retry later",
                    retry_after=retry_after(seconds - DEADLINE_SHARE * timeout),
                ),
            )
    return None


def _busy(reason: str, detail: str, backlog_retry: Callable[[], int]) -> Refusal:
    message = f"the server is busy ({detail}); retry later"
    return Refusal(reason, Overloaded(message, retry_after=backlog_retry()))


def fits_deadline(wait: float, timeout: float) -> bool:
    return wait <= DEADLINE_SHARE * timeout


def retry_after(seconds: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1, at most a minute."""
    return int(min(MAX_RETRY_AFTER, max(1, math.ceil(seconds))))


class Gate:
    """Admission for one scheduler: its count limits, and the wait its policy predicts at
    each voice's measured speed. Called under the scheduler's lock."""

    def __init__(
        self,
        limits: Limits,
        policy: SchedulingPolicy,
    ) -> None:
        self.limits = limits
        self._policy = policy
        self.speeds = VoiceSpeeds()
        """Measured as sentences finish: each voice's, and all voices' together."""

    @property
    def speed(self) -> SpeedEstimate:
        """All voices' speed together: for a voice not yet measured."""
        return self.speeds.overall

    def speed_of(self, voice: object) -> SpeedEstimate:
        """The voice's own measured speed, or the all-voices figure until it has one."""
        return self.speeds.of(voice)

    def refusal(
        self,
        jobs: Sequence[AdmittedJob],
        job: AdmittedJob,
        *,
        closing: bool,
        queued: int,
        held: int,
    ) -> Refusal | None:
        """Why `job` may not join `jobs` (with `queued` sentences queued and `held`
        requests of its client), or None."""
        sentences = len(job.sentences) if job.closed else math.inf
        return refusal(
            self.limits,
            closing=closing,
            admitted=len(jobs),
            queued_sentences=queued,
            sentences=len(job.sentences),
            client_requests=held,
            timeout=job.timeout,
            wait=lambda: self.predicted_wait(jobs, job.priority, sentences),
            backlog_retry=lambda: self.retry_after(jobs),
        )

    def predicted_wait(
        self, jobs: Sequence[AdmittedJob], priority: int, sentences: float = math.inf
    ) -> float:
        """Before a new request of `sentences` sentences would start (inf: an open one)."""
        return predicted_wait(
            jobs,
            priority,
            self._policy,
            self.limits.workers,
            lambda job: self.speed_of(job.voice),
            sentences,
        )

    def report(self, jobs: Sequence[AdmittedJob]) -> dict[str, Any]:
        """The limits, the wait a normal request arriving now would have, the speed."""
        return {
            "capacity_requests": self.limits.capacity,
            "capacity_sentences": self.limits.max_queued_sentences,
            "capacity_client_requests": self.limits.max_client_requests,
            "predicted_wait_seconds": round(self.predicted_wait(jobs, Priority.NORMAL), 3),
            "seconds_per_phoneme_id": round(self.speed.seconds_per_id, 6),
        }

    def retry_after(self, jobs: Sequence[AdmittedJob]) -> int:
        """A `Retry-After` from the whole backlog at the all-voices speed."""
        backlog = sum(len(ids) for job in jobs for ids in job.sentences[job.next_dispatch :])
        return retry_after(self.speed.seconds(backlog) / max(1, self.limits.workers))
