"""The dispatch policies as objects: stepped by hand with explicit jobs (no threads, no
clock), then one contract suite that every policy passes through the scheduler."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from typing import get_args

import pytest

from tts_service.config import Policy, Settings
from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.errors import Cancelled
from tts_service.scheduling.clients import ClientShares
from tts_service.scheduling.jobs import Job, Priority
from tts_service.scheduling.policies import (
    POLICIES,
    Fair,
    Fifo,
    RoundRobin,
    SchedulingPolicy,
    create_policy,
    policy_class,
)
from tts_service.scheduling.scheduler import Scheduler

OPTIONS = SynthesisOptions()


class Voice:
    """A `Synthesizer` whose audio names its sentence: [tag, index] as two samples."""

    sample_rate = 1000
    has_solo_session = False

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        return SentenceAudio(struct.pack("<hh", *phoneme_ids[:2]))


VOICE = Voice()


def job(
    seq: int,
    count: int = 3,
    *,
    served: int = 0,
    priority: Priority = Priority.NORMAL,
    client: str = "",
) -> Job:
    """A job as the dispatcher holds it: arrival `seq`, `served` sentences claimed."""
    made = Job(
        voice=VOICE,
        sentences=[[seq, i] for i in range(count)],
        options=OPTIONS,
        priority=priority,
        timeout=60.0,
        client=client,
    )
    made.id = made.seq = seq
    made.next_dispatch = served
    return made


def everyone(job: Job) -> bool:
    return True


def pick(policy: SchedulingPolicy, jobs: list[Job], clients: ClientShares | None = None) -> int:
    chosen = policy.pick(jobs, everyone, clients or ClientShares())
    assert chosen is not None
    return chosen.seq


# ------------------------------------------------------------------ the table


def test_every_policy_the_settings_name_is_in_the_table() -> None:
    assert set(get_args(Policy)) == set(POLICIES)
    for name, cls in POLICIES.items():
        assert cls.name == name and create_policy(name).name == name
    with pytest.raises(ValueError, match="unknown scheduling policy 'lottery'"):
        policy_class("lottery")


def test_what_differs_by_policy_is_said_by_the_policy() -> None:
    assert (Fifo.batches, Fifo.solo_first, Fifo.one_at_a_time) == (False, False, True)
    for cls in (Fair, RoundRobin):
        assert (cls.batches, cls.solo_first, cls.one_at_a_time) == (True, True, False)


def test_the_settings_ask_the_policy_about_solo_first_sentences() -> None:
    fair = Settings(policy="fair", cores=4, threads_per_worker=1)
    fifo = Settings(policy="fifo", cores=4, threads_per_worker=1)
    assert fair.solo_threads == 4 and fifo.solo_threads is None


# ------------------------------------------------------------------ stepped by hand


def test_fair_picks_the_least_served_then_the_closest_to_done_then_arrival() -> None:
    fair = Fair()
    assert pick(fair, [job(1, served=2), job(2, served=1), job(3, served=1, count=2)]) == 3
    assert pick(fair, [job(1, count=2), job(2, count=2)]) == 1


def test_fair_serves_the_least_served_client_first() -> None:
    clients = ClientShares()
    jobs = [job(1, client="a"), job(2, client="a"), job(3, client="b")]
    for one in jobs:
        clients.joined(one.client)
    clients.charge("a")
    assert pick(Fair(), jobs, clients) == 3


def test_round_robin_takes_turns_in_arrival_order() -> None:
    rr = RoundRobin()
    jobs = [job(1), job(2), job(3)]
    assert [pick(rr, jobs) for _ in range(4)] == [1, 2, 3, 1]


def test_a_higher_class_goes_first_and_fifo_knows_only_arrival() -> None:
    jobs = [job(1, priority=Priority.LOW), job(2, priority=Priority.HIGH)]
    assert pick(Fair(), jobs) == pick(RoundRobin(), jobs) == 2
    assert pick(Fifo(), jobs) == 1


def test_fifo_waits_for_the_oldest_even_when_others_could_run() -> None:
    jobs = [job(1), job(2)]
    assert Fifo().pick(jobs, lambda j: j.seq != 1, ClientShares()) is None
    assert Fair().pick(jobs, lambda j: j.seq != 1, ClientShares()) is jobs[1]


def test_accept_narrows_the_pick_to_a_batch_s_companions() -> None:
    jobs = [job(1), job(2), job(3)]
    for policy in (Fair(), RoundRobin()):
        chosen = policy.pick(jobs, everyone, ClientShares(), accept=lambda j: j.seq == 3)
        assert chosen is jobs[2]


def test_work_ahead_of_a_newcomer_is_the_policy_s() -> None:
    running = job(1, served=1)
    running.in_flight = 1  # its first sentence (2 ids) is being synthesized
    jobs = (running, job(2), job(3, served=1))  # and one fresh, one started
    ahead = {
        name: sum(create_policy(name).ids_ahead(j, Priority.NORMAL) for j in jobs)
        for name in POLICIES
    }
    # Running: 2 ids always. Fair: the fresh one's first; round robin: everyone's next;
    # fifo: everything.
    assert ahead == {"fair": 2 + 2, "round_robin": 2 + 2 + 2 + 2, "fifo": 2 + 4 + 6 + 4}


# ------------------------------------------------------------------ every policy, one contract


@pytest.fixture(params=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scheduler(policy: str) -> Iterator[Scheduler]:
    made = Scheduler(workers=2, policy=policy)
    made.start()
    yield made
    made.stop()


async def test_every_request_gets_all_its_audio_in_order(scheduler: Scheduler) -> None:
    jobs = [scheduler.submit(VOICE, [[tag, i] for i in range(4)], OPTIONS) for tag in (1, 2, 3)]
    bodies = await asyncio.wait_for(asyncio.gather(*(scheduler.collect(j) for j in jobs)), 10)
    for tag, body in zip((1, 2, 3), bodies, strict=True):
        assert body == b"".join(struct.pack("<hh", tag, i) for i in range(4))
    stats = scheduler.stats()
    assert stats["totals"]["completed"] == 3 and stats["totals"]["sentences"] == 12
    assert stats["busy_workers"] == 0 and stats["queued_sentences"] == 0


async def test_a_cancelled_request_ends_and_the_next_still_runs(scheduler: Scheduler) -> None:
    gone = scheduler.submit(VOICE, [[1, 0]], OPTIONS, closed=False)  # open: it cannot end first
    scheduler.cancel(gone)
    with pytest.raises(Cancelled):
        await asyncio.wait_for(scheduler.collect(gone), 10)
    after = scheduler.submit(VOICE, [[2, 0]], OPTIONS)
    assert await asyncio.wait_for(scheduler.collect(after), 10) == struct.pack("<hh", 2, 0)


async def test_the_figures_name_the_policy(scheduler: Scheduler, policy: str) -> None:
    stats = scheduler.stats()
    assert stats["policy"] == policy
    assert stats["batch_size"] == 1 and stats["predicted_wait_seconds"] == 0.0
    assert stats["solo_first_sentence"] is False
