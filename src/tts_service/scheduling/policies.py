"""Dispatch policies: who runs next, and how much runs before a newcomer.

Each policy is one object behind one interface (as vLLM's request queues are): `pick`
chooses the job whose next sentence a free worker runs, among the jobs the scheduler
says may run one now; `ids_ahead` counts the phoneme ids it would run before a new
request's first sentence (admission predicts the wait from it). What else differs by
policy is a property here too; the scheduler never asks a policy's name.

- `fair`: the higher priority class; then the client with the least attained service
  (clients.py: a newcomer has none, so it goes first), ties to the one with the least work
  left; then that client's least served request, ties to the one closest to done, then
  to arrival. Its newcomers may take the express lane (`express`).
- `round_robin`: the higher priority class; then one sentence per request in turn.
- `fifo`: the one-lock design kept for comparison: the oldest request alone, one sentence
  at a time on the whole server; it never batches and never runs a solo first sentence.

`Settings.policy` holds a name; `create_policy` makes the object from `POLICIES`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from tts_service.scheduling.clients import ClientShares
from tts_service.scheduling.jobs import Job

Accept = Callable[[Job], bool]


class QueuedWork(Protocol):
    """What counting the work ahead reads of a job."""

    @property
    def priority(self) -> int: ...
    @property
    def sentences(self) -> list[list[int]]: ...
    @property
    def next_dispatch(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def closed(self) -> bool: ...

    def pending_sentences(self) -> int: ...


class SchedulingPolicy(abc.ABC):
    """One dispatch policy. `pick` is called under the scheduler's lock."""

    name: ClassVar[str]
    batches: ClassVar[bool] = True
    """Its picks may share a model run with the next ones it would pick (batching)."""
    solo_first: ClassVar[bool] = True
    """A request's first sentence on an idle server may run alone on every core."""
    one_at_a_time: ClassVar[bool] = False
    """Nothing is picked while any sentence is being synthesized."""
    express: ClassVar[bool] = False
    """A newcomer's short first sentence may take the express lane (workers.py) when
    every worker is busy: only for a policy that puts newcomers first, and whose `pick`
    changes nothing (the lane asks it without always taking its answer)."""

    @abc.abstractmethod
    def pick(
        self,
        jobs: Sequence[Job],
        eligible: Accept,
        clients: ClientShares,
        accept: Accept | None = None,
    ) -> Job | None:
        """The job whose next sentence runs now, of `jobs` (admitted, unfinished, in
        arrival order) that are `eligible` to run one. With `accept`, the pick among the
        jobs it accepts too: a batch's companions are the sentences the policy would run
        next that may share the batch's run."""

    def ids_ahead(self, job: QueuedWork, priority: int, sentences: float = math.inf) -> int:
        """Phoneme ids of `job` this policy runs before the first sentence of a new request
        of `priority` with `sentences` sentences (inf: unknown, an open stream). Sentences
        being synthesized now count in full."""
        pending = job.sentences[job.next_dispatch :]
        running = job.sentences[max(0, job.next_dispatch - job.in_flight) : job.next_dispatch]
        total = sum(len(ids) for ids in running)
        if not pending:
            return total
        return total + self._pending_ahead(job, pending, priority, sentences)

    @abc.abstractmethod
    def _pending_ahead(
        self, job: QueuedWork, pending: list[list[int]], priority: int, sentences: float
    ) -> int:
        """Of the job's `pending` sentences (at least one), the ids run before a newcomer
        of `sentences` sentences."""


class _ByPriority(SchedulingPolicy):
    """The higher priority class first, always; within it, the subclass chooses."""

    def pick(
        self,
        jobs: Sequence[Job],
        eligible: Accept,
        clients: ClientShares,
        accept: Accept | None = None,
    ) -> Job | None:
        candidates = [job for job in jobs if eligible(job) and (accept is None or accept(job))]
        if not candidates:
            return None
        top = min(job.priority for job in candidates)
        return self._choose([job for job in candidates if job.priority == top], top, clients)

    @abc.abstractmethod
    def _choose(self, candidates: list[Job], priority: int, clients: ClientShares) -> Job:
        """One of `candidates` (at least one, all of `priority`)."""

    def _pending_ahead(
        self, job: QueuedWork, pending: list[list[int]], priority: int, sentences: float
    ) -> int:
        if job.priority < priority:  # a higher class runs to its end first
            return sum(len(ids) for ids in pending)
        if job.priority == priority and self._next_goes_first(job, sentences):
            return len(pending[0])
        return 0

    @abc.abstractmethod
    def _next_goes_first(self, job: QueuedWork, sentences: float) -> bool:
        """Whether, in the newcomer's own class, the job's next sentence runs before a
        newcomer of `sentences` sentences."""


class Fair(_ByPriority):
    """Least attained service: between clients first, then between that client's requests."""

    name = "fair"
    express = True

    def _choose(self, candidates: list[Job], priority: int, clients: ClientShares) -> Job:
        # Between clients first: the least served client's requests only (see clients.py).
        # Then least served request first; among equals the one closest to done (a short
        # request arriving just after several long ones need not wait for all their
        # first sentences), then arrival. An open job's length is unknown.
        if len(clients) > 1:
            left: dict[str, float] = {}  # each client's least work left, in phoneme ids
            for job in candidates:
                work = _ids_left(job) if job.closed else math.inf
                left[job.client] = min(left.get(job.client, math.inf), work)
            client = clients.least_served(left, left.__getitem__)
            candidates = [job for job in candidates if job.client == client]
        return min(
            candidates,
            key=lambda job: (
                job.next_dispatch,
                job.pending_sentences() if job.closed else math.inf,
                job.seq,
            ),
        )

    def _next_goes_first(self, job: QueuedWork, sentences: float) -> bool:
        # A newcomer has been served nothing: only requests served nothing either go first,
        # and of those only the ones with no more work left (ties go to arrival).
        left = job.pending_sentences() if job.closed else math.inf
        return job.next_dispatch == 0 and left <= sentences


class RoundRobin(_ByPriority):
    """Each request of the top class in arrival order, one sentence at a time."""

    name = "round_robin"

    def __init__(self) -> None:
        self._cursor: dict[int, int] = {}
        """Per priority class: the arrival number of the request served last."""

    def _choose(self, candidates: list[Job], priority: int, clients: ClientShares) -> Job:
        cursor = self._cursor.get(priority, 0)  # the next arrival after the last served
        later = [job for job in candidates if job.seq > cursor]
        chosen = min(later or candidates, key=lambda job: job.seq)
        self._cursor[priority] = chosen.seq
        return chosen

    def _next_goes_first(self, job: QueuedWork, sentences: float) -> bool:
        return True  # every request's turn comes once before the newcomer's


class Fifo(SchedulingPolicy):
    """The oldest request alone, one sentence at a time, whatever its priority."""

    name = "fifo"
    batches = False
    solo_first = False
    one_at_a_time = True

    def pick(
        self,
        jobs: Sequence[Job],
        eligible: Accept,
        clients: ClientShares,
        accept: Accept | None = None,
    ) -> Job | None:
        if not jobs:
            return None
        oldest = jobs[0]
        return oldest if eligible(oldest) and (accept is None or accept(oldest)) else None

    def _pending_ahead(
        self, job: QueuedWork, pending: list[list[int]], priority: int, sentences: float
    ) -> int:
        return sum(len(ids) for ids in pending)  # every earlier request runs to its end


def _ids_left(job: Job) -> int:
    return sum(len(ids) for ids in job.sentences[job.next_dispatch :])


POLICIES: dict[str, type[SchedulingPolicy]] = {
    policy.name: policy for policy in (Fair, RoundRobin, Fifo)
}
"""Each policy by its name in the settings (`Settings.policy`)."""


def policy_class(name: str) -> type[SchedulingPolicy]:
    """The policy called `name`, as a class: what it is, without making one."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown scheduling policy {name!r}") from None


def create_policy(name: str) -> SchedulingPolicy:
    return policy_class(name)()
