"""Who runs next: the admitted jobs in arrival order, which of them may start a sentence
now, the policy's pick among those, the sentences workers hold (claims), and the filling
of a batch with the policy's next picks.

Not thread-safe by itself: the scheduler calls it under its lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tts_service.scheduling.batching import Batch
from tts_service.scheduling.clients import ClientShares
from tts_service.scheduling.jobs import Claim, Job, JobState
from tts_service.scheduling.policies import Accept, SchedulingPolicy
from tts_service.scheduling.synthesizer import PieceSynthesizer


class Dispatch:
    def __init__(
        self,
        policy: SchedulingPolicy,
        max_sentences_ahead: int,
        solo_first: bool,
        started: Callable[[Job], None],
    ) -> None:
        self.policy = policy
        self.max_sentences_ahead = max_sentences_ahead
        self.solo_first = solo_first
        """A request's first sentence on an otherwise idle machine runs alone on the voice's
        all-cores session (`synthesize(..., solo=True)`); the other workers wait for it."""
        self._started = started
        """Told when a job's first sentence is claimed."""
        self.jobs: list[Job] = []
        """Admitted, unfinished, in arrival order."""
        self.clients = ClientShares()
        self.in_flight = 0
        """Sentences claimed and not yet settled, of every job."""
        self.solo_running = False

    def add(self, job: Job) -> None:
        self.jobs.append(job)
        self.clients.joined(job.client)

    def remove(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
            self.clients.left(job.client)

    def queued_sentences(self) -> int:
        return sum(job.pending_sentences() for job in self.jobs)

    def report(self) -> dict[str, int | bool]:
        queued = sum(1 for job in self.jobs if job.state is JobState.QUEUED)
        return {
            "solo_first_sentence": self.solo_first,
            "queued_requests": queued,
            "active_requests": len(self.jobs) - queued,
            "queued_sentences": self.queued_sentences(),
            "clients": len(self.clients),
        }

    def eligible(self, job: Job) -> bool:
        if job.first_audio_at is None and job.in_flight:
            # Until its first audio is out, a job runs one sentence at a time: a second
            # sentence in parallel would only slow the first one down on a shared CPU.
            return False
        return (
            job.next_dispatch < len(job.sentences)
            and job.next_dispatch - job.consumed < self.max_sentences_ahead
        )

    def pick(self, accept: Accept | None = None, beside_solo: bool = False) -> Job | None:
        """The policy's pick, unless nothing may start now (a solo sentence has the
        machine and `beside_solo` is not asked, or the policy runs one sentence at a
        time)."""
        if (self.solo_running and not beside_solo) or (
            self.policy.one_at_a_time and self.in_flight
        ):
            return None
        return self.policy.pick(self.jobs, self.eligible, self.clients, accept)

    def claim(self, job: Job) -> int:
        """Take the job's next sentence for a worker; its index."""
        index = job.next_dispatch
        job.next_dispatch += 1
        job.in_flight += 1
        self.in_flight += 1
        self.clients.charge(job.client)  # what counts as a client's share: clients.py
        if job.state is JobState.QUEUED:
            self._started(job)
        return index

    def take_cached(self, job: Job) -> int:
        """Take the job's next sentence without a worker (its audio is cached): nothing
        runs, so nothing is in flight and its client is charged nothing. Its index."""
        index = job.next_dispatch
        job.next_dispatch += 1
        if job.state is JobState.QUEUED:
            self._started(job)
        return index

    def release(self, job: Job) -> None:
        """A claimed sentence of the job is over (run, failed, or dropped)."""
        self.in_flight -= 1
        job.in_flight -= 1

    def can_run_solo(self, job: Job, index: int) -> bool:
        """The first sentence of a request, with nothing else to do."""
        return (
            self.solo_first
            and index == 0
            and self.in_flight == 1
            and job.voice.has_solo_session
            and not any(self.eligible(other) for other in self.jobs if other is not job)
        )

    def may_stream(self, job: Job, index: int) -> bool:
        """A streamed request's first sentence may reach its reader in pieces, as it is
        decoded (chunked decoding costs more CPU: only while nothing else waits), when its
        voice would decode it so."""
        voice = job.voice
        return (
            job.pieces
            and index == 0
            and job.next_emit == 0
            and isinstance(voice, PieceSynthesizer)
            and voice.decodes_in_pieces(job.sentences[index], job.options_at(index))
            and not any(self.eligible(other) for other in self.jobs if other is not job)
        )

    def fill(
        self, batch: Batch, wait: Callable[[float], object], stopping: Callable[[], bool]
    ) -> list[Claim]:
        """The batch's first claim, then the next sentences in the policy's order that
        may share its model run, up to the batch size.

        It waits for company (`wait`, on the scheduler's lock, at most `batch.rule.wait`)
        only while other sentences are in flight: then the server is busy, requests are
        arriving and running sentences will release more (a request's second sentence
        waits for its first's audio). An idle server has nothing that could join, so a
        lone request never pays the wait. Claimed sentences whose request ends meanwhile
        (cancelled, stalled, deadline) are dropped before the run. May return nothing,
        when every claimed request ended."""
        deadline = time.monotonic() + batch.rule.wait
        while True:
            while not batch.full and (companion := self.pick(batch.accepts)) is not None:
                batch.claims.append((companion, self.claim(companion)))
            left = deadline - time.monotonic()
            if batch.full or left <= 0 or stopping() or self.in_flight <= len(batch.claims):
                return batch.claims
            wait(left)
            batch.claims = self._drop_ended(batch.claims)
            if not batch.claims:
                return batch.claims

    def _drop_ended(self, claims: list[Claim]) -> list[Claim]:
        """Release the claims of requests that ended while they waited."""
        for job, _ in claims:
            if job.finished:
                self.release(job)
                job.call_done()
        return [(job, index) for job, index in claims if not job.finished]
