"""The scheduler's own logic, driven by a fake synthesizer that records what it was asked
to do (and in which order), can be held at a gate, can be slow, and can fail.

One worker makes dispatch order deterministic: while the worker is held inside one
sentence, the test submits more jobs, then releases it and checks the exact order."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.errors import (
    AudioTooLong,
    Cancelled,
    DeadlineExceeded,
    Overloaded,
    ReaderStalled,
    ShuttingDown,
    SynthesisFailed,
    TextTooLong,
    TooManyClientRequests,
)
from tts_service.scheduling.admission import DEADLINE_SHARE
from tts_service.scheduling.jobs import Chunk, Job, JobState, Priority
from tts_service.scheduling.observer import SchedulerObserver
from tts_service.scheduling.scheduler import Scheduler
from tts_service.scheduling.stats import Window

OPTIONS = SynthesisOptions()
T = TypeVar("T")
Call = tuple[int, int]  # (job tag, sentence index)

# Job tags, so that the recorded order reads like the expected one.
A, B, C, D, E = 1, 2, 3, 4, 5


def sentences(tag: int, count: int, start: int = 0) -> list[list[int]]:
    """Fake phoneme ids that carry their own identity: [tag, index]."""
    return [[tag, index] for index in range(start, start + count)]


def pcm_for(tag: int, index: int) -> bytes:
    return struct.pack("<hh", tag, index) * 4


def calls(tag: int, count: int, start: int = 0) -> list[Call]:
    return [(tag, index) for index in range(start, start + count)]


class FakeVoice:
    """A `Synthesizer`: records calls, optionally sleeps, holds call number `gate_at` until
    `release()`, raises for the sentences in `fail`."""

    sample_rate = 1000
    has_solo_session = False

    def __init__(
        self,
        delay: float = 0.0,
        gate_at: int | None = None,
        fail: Sequence[Call] = (),
    ) -> None:
        self.delay = delay
        self.gate_at = gate_at
        self.fail = set(fail)
        self.calls: list[Call] = []
        self.done: list[Call] = []
        self.active = 0
        self.max_active = 0
        self.held = threading.Event()
        self._gate = threading.Event()
        self._lock = threading.Lock()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        tag, index = phoneme_ids
        with self._lock:
            number = len(self.calls)
            self.calls.append((tag, index))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if number == self.gate_at:
                self.held.set()
                self._gate.wait(timeout=10)
            if self.delay:
                time.sleep(self.delay)
            if (tag, index) in self.fail:
                raise RuntimeError(f"boom in {tag}/{index}")
            return SentenceAudio(pcm_for(tag, index))
        finally:
            with self._lock:
                self.active -= 1
                self.done.append((tag, index))

    def release(self) -> None:
        self._gate.set()

    async def wait_held(self) -> None:
        assert await asyncio.to_thread(self.held.wait, 5), "the gated call never came"

    def calls_of(self, tag: int) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call[0] == tag]


MakeScheduler = Callable[..., Scheduler]


@pytest.fixture
def voices() -> Iterator[list[FakeVoice]]:
    """Every FakeVoice a test makes is released afterwards, so no worker stays held."""
    made: list[FakeVoice] = []
    yield made
    for voice in made:
        voice.release()


@pytest.fixture
def fake(voices: list[FakeVoice]) -> Callable[..., FakeVoice]:
    def make(**kwargs: Any) -> FakeVoice:
        voice = FakeVoice(**kwargs)
        voices.append(voice)
        return voice

    return make


@pytest.fixture
def make_scheduler(voices: list[FakeVoice]) -> Iterator[MakeScheduler]:
    started: list[Scheduler] = []

    def make(**kwargs: Any) -> Scheduler:
        kwargs.setdefault("workers", 1)
        scheduler = Scheduler(**kwargs)
        scheduler.start()
        started.append(scheduler)
        return scheduler

    yield make
    for voice in voices:
        voice.release()
    for scheduler in started:
        scheduler.stop()


async def bounded(work: Awaitable[T]) -> T:
    """A scheduler bug must fail a test, not hang the run."""
    return await asyncio.wait_for(work, 10)


async def collect(scheduler: Scheduler, job: Job) -> bytes:
    return await bounded(scheduler.collect(job))


async def collect_chunks(scheduler: Scheduler, job: Job) -> list[Chunk]:
    async def read() -> list[Chunk]:
        return [chunk async for chunk in scheduler.stream(job)]

    return await bounded(read())


async def finish_order(scheduler: Scheduler, jobs: dict[int, Job]) -> list[int]:
    """Read every job's stream concurrently; return the tags in the order the jobs finished
    (by the scheduler's own clock: readers may wake in any order once all is done)."""
    await bounded(asyncio.gather(*(scheduler.collect(job) for job in jobs.values())))
    return sorted(jobs, key=lambda tag: jobs[tag].finished_at or math.inf)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that another thread makes true."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------ dispatch order


async def test_fair_short_job_interleaves_and_finishes_first(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="fair", max_sentences_ahead=100)
    voice = fake(gate_at=0)  # hold A's first sentence until B has arrived
    long_job = scheduler.submit(voice, sentences(A, 10), OPTIONS)
    await voice.wait_held()
    short_job = scheduler.submit(voice, sentences(B, 2), OPTIONS)
    voice.release()

    order = await finish_order(scheduler, {A: long_job, B: short_job})

    assert order == [B, A]
    # B catches up; at one sentence each the tie goes to B, which has less left to do.
    assert voice.calls == [(A, 0), (B, 0), (B, 1), *calls(A, 9, start=1)]


async def test_fair_breaks_ties_by_arrival_when_equally_long(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="fair", max_sentences_ahead=100)
    voice = fake(gate_at=0)
    first = scheduler.submit(voice, sentences(C, 1), OPTIONS)
    await voice.wait_held()
    jobs = {tag: scheduler.submit(voice, sentences(tag, 2), OPTIONS) for tag in (A, B)}
    voice.release()

    await finish_order(scheduler, {C: first, **jobs})

    assert voice.calls == [(C, 0), (A, 0), (B, 0), (A, 1), (B, 1)]


async def test_fair_serves_the_least_served_job_first(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="fair", max_sentences_ahead=100)
    voice = fake(gate_at=2)  # hold A's third sentence: A has been served 3 by then
    job_a = scheduler.submit(voice, sentences(A, 8), OPTIONS)
    await voice.wait_held()
    job_b = scheduler.submit(voice, sentences(B, 4), OPTIONS)
    voice.release()

    await finish_order(scheduler, {A: job_a, B: job_b})

    # B catches up to A's three; at the tie B has one sentence left, A five: B goes first.
    expected = [*calls(A, 3), *calls(B, 4), *calls(A, 5, start=3)]
    assert voice.calls == expected


async def test_round_robin_alternates_regardless_of_service(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="round_robin", max_sentences_ahead=100)
    voice = fake(gate_at=2)
    job_a = scheduler.submit(voice, sentences(A, 8), OPTIONS)
    await voice.wait_held()
    job_b = scheduler.submit(voice, sentences(B, 4), OPTIONS)
    voice.release()

    await finish_order(scheduler, {A: job_a, B: job_b})

    expected = [*calls(A, 3), (B, 0), (A, 3), (B, 1), (A, 4), (B, 2), (A, 5), (B, 3)]
    assert voice.calls == [*expected, (A, 6), (A, 7)]


async def test_round_robin_cycles_through_three_jobs(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="round_robin", max_sentences_ahead=100)
    voice = fake(gate_at=0)
    jobs = {A: scheduler.submit(voice, sentences(A, 3), OPTIONS)}
    await voice.wait_held()
    jobs[B] = scheduler.submit(voice, sentences(B, 3), OPTIONS)
    jobs[C] = scheduler.submit(voice, sentences(C, 3), OPTIONS)
    voice.release()

    order = await finish_order(scheduler, jobs)

    assert voice.calls == [(tag, i) for i in range(3) for tag in (A, B, C)]
    assert order == [A, B, C]


async def test_priority_high_before_normal_before_low_and_fair_within_a_class(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="fair", max_sentences_ahead=100)
    voice = fake(gate_at=0)
    blocker = scheduler.submit(voice, sentences(E, 1), OPTIONS)
    await voice.wait_held()
    jobs = {
        A: scheduler.submit(voice, sentences(A, 2), OPTIONS, priority=Priority.LOW),
        B: scheduler.submit(voice, sentences(B, 2), OPTIONS, priority=Priority.NORMAL),
        C: scheduler.submit(voice, sentences(C, 2), OPTIONS, priority=Priority.NORMAL),
        D: scheduler.submit(voice, sentences(D, 2), OPTIONS, priority=Priority.HIGH),
    }
    voice.release()

    order = await finish_order(scheduler, {E: blocker, **jobs})

    high, low = calls(D, 2), calls(A, 2)
    assert voice.calls == [(E, 0), *high, (B, 0), (C, 0), (B, 1), (C, 1), *low]
    assert order == [E, D, B, C, A]


def test_priority_names_parse() -> None:
    assert Priority.parse("high") is Priority.HIGH
    assert Priority.parse("Normal") is Priority.NORMAL
    assert Priority.parse("LOW") is Priority.LOW
    with pytest.raises(KeyError):
        Priority.parse("urgent")


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="policy"):
        Scheduler(workers=1, policy="lottery")


# ------------------------------------------------------------------ admission


async def test_full_request_queue_answers_overloaded(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_queued_requests=1)
    voice = fake(gate_at=0)
    first = scheduler.submit(voice, sentences(A, 2), OPTIONS)
    await voice.wait_held()
    second = scheduler.submit(voice, sentences(B, 2), OPTIONS)

    with pytest.raises(Overloaded) as refused:
        scheduler.submit(voice, sentences(C, 1), OPTIONS)

    assert refused.value.status == 503
    assert refused.value.retry_after >= 1
    assert scheduler.stats()["totals"]["rejected"] == 1
    assert not voice.calls_of(C)
    voice.release()
    await finish_order(scheduler, {A: first, B: second})
    # Room again once the queue has drained.
    assert await collect(scheduler, scheduler.submit(voice, sentences(C, 1), OPTIONS))


async def test_full_sentence_queue_answers_overloaded(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_queued_requests=10, max_queued_sentences=5)
    voice = fake(gate_at=0)
    first = scheduler.submit(voice, sentences(A, 3), OPTIONS)
    await voice.wait_held()  # A0 is running: 2 of A's sentences are queued
    second = scheduler.submit(voice, sentences(B, 3), OPTIONS)  # 5 queued: exactly full
    assert scheduler.stats()["queued_sentences"] == 5

    with pytest.raises(Overloaded) as refused:
        scheduler.submit(voice, sentences(C, 1), OPTIONS)
    assert refused.value.retry_after >= 1
    # More sentences than the whole queue holds can never fit: that is the text's fault.
    with pytest.raises(TextTooLong) as too_long:
        scheduler.submit(voice, sentences(D, 6), OPTIONS)
    assert too_long.value.status == 413

    voice.release()
    await finish_order(scheduler, {A: first, B: second})
    assert not voice.calls_of(C) and not voice.calls_of(D)


async def test_retry_after_grows_with_the_backlog(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_queued_requests=0, max_queued_sentences=5000)
    voice = fake(gate_at=0)
    scheduler.gate.speed.mean = 0.01  # as if measured: 20 ms per fake sentence
    scheduler.submit(voice, sentences(A, 200), OPTIONS)
    await voice.wait_held()
    with pytest.raises(Overloaded) as small:
        scheduler.submit(voice, sentences(B, 1), OPTIONS)
    scheduler.cancel(scheduler._jobs[0])
    voice.release()
    scheduler.submit(voice, sentences(C, 4000), OPTIONS)
    with pytest.raises(Overloaded) as large:
        scheduler.submit(voice, sentences(D, 1), OPTIONS)
    # ~200 sentences of 20 ms: a few seconds; ~4000: over a minute, capped at one.
    assert 2 <= small.value.retry_after <= 6
    assert large.value.retry_after == 60


# ------------------------------------------------------------------ deadlines


async def test_deadline_expires_a_waiting_job_without_synthesizing_it(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    running = scheduler.submit(voice, sentences(A, 2), OPTIONS, timeout=0.05)
    await voice.wait_held()
    waiting = scheduler.submit(voice, sentences(B, 3), OPTIONS, timeout=0.05)

    with pytest.raises(DeadlineExceeded) as expired:
        await collect(scheduler, waiting)

    assert expired.value.status == 504
    assert waiting.state is JobState.EXPIRED
    voice.release()
    # The running job had the same deadline but had started: it completes.
    assert len(await collect(scheduler, running)) == 2 * len(pcm_for(A, 0))
    assert not voice.calls_of(B)
    totals = scheduler.stats()["totals"]
    assert totals["timed_out"] == 1 and totals["completed"] == 1


# ------------------------------------------------------------------ cancellation


async def test_cancel_drops_queued_sentences_and_later_jobs_proceed(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    job_a = scheduler.submit(voice, sentences(A, 3), OPTIONS)
    await voice.wait_held()
    job_b = scheduler.submit(voice, sentences(B, 5), OPTIONS)
    job_c = scheduler.submit(voice, sentences(C, 2), OPTIONS)
    assert scheduler.stats()["queued_sentences"] == 2 + 5 + 2

    scheduler.cancel(job_b)
    scheduler.cancel(job_b)  # twice is harmless

    stats = scheduler.stats()
    assert stats["queued_sentences"] == 2 + 2
    assert stats["totals"]["cancelled"] == 1
    assert job_b.state is JobState.CANCELLED
    with pytest.raises(Cancelled):
        await collect(scheduler, job_b)
    voice.release()
    await finish_order(scheduler, {A: job_a, C: job_c})
    assert not voice.calls_of(B)
    assert scheduler.stats()["totals"]["completed"] == 2


async def test_leaving_the_stream_early_cancels_the_job(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_sentences_ahead=2)
    voice = fake()
    job = scheduler.submit(voice, sentences(A, 40), OPTIONS)
    async with contextlib.aclosing(scheduler.stream(job)) as stream:
        async for chunk in stream:
            assert chunk.index == 0
            break

    assert job.state is JobState.CANCELLED
    later = scheduler.submit(voice, sentences(B, 2), OPTIONS)
    assert await collect(scheduler, later) == pcm_for(B, 0) + pcm_for(B, 1)
    # One read, two ahead, perhaps one in flight: nowhere near the 40 sentences.
    assert len(voice.calls_of(A)) <= 4
    assert scheduler.stats()["totals"]["cancelled"] == 1


# ------------------------------------------------------------------ failures


async def test_a_failing_sentence_fails_its_request_only(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=2)
    voice = fake(delay=0.002, fail=[(B, 1)])
    jobs = [scheduler.submit(voice, sentences(tag, 3), OPTIONS) for tag in (A, B, C)]

    results = await bounded(
        asyncio.gather(*(scheduler.collect(job) for job in jobs), return_exceptions=True)
    )

    assert results[0] == b"".join(pcm_for(A, i) for i in range(3))
    assert isinstance(results[1], SynthesisFailed) and results[1].status == 500
    assert "boom" in results[1].message
    assert results[2] == b"".join(pcm_for(C, i) for i in range(3))
    # The workers survived: a later request is served by both of them.
    after = [scheduler.submit(voice, sentences(D, 4), OPTIONS) for _ in range(2)]
    assert all(await bounded(asyncio.gather(*(scheduler.collect(job) for job in after))))
    assert scheduler.live_workers == 2
    totals = scheduler.stats()["totals"]
    assert totals["failed"] == 1 and totals["completed"] == 4


# ------------------------------------------------------------------ fifo


async def test_fifo_runs_whole_requests_one_at_a_time_in_arrival_order(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=3, policy="fifo")
    voice = fake(delay=0.003)
    jobs = {
        A: scheduler.submit(voice, sentences(A, 3), OPTIONS),
        B: scheduler.submit(voice, sentences(B, 2), OPTIONS),
        C: scheduler.submit(voice, sentences(C, 3), OPTIONS),
    }

    order = await finish_order(scheduler, jobs)

    assert voice.calls == [*calls(A, 3), *calls(B, 2), *calls(C, 3)]
    assert order == [A, B, C]
    assert voice.max_active == 1


async def test_fair_uses_every_worker_at_once(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    """The counterpart of the fifo test: the same measure sees parallel work."""
    scheduler = make_scheduler(workers=3, policy="fair")
    voice = fake(delay=0.02)
    jobs = {tag: scheduler.submit(voice, sentences(tag, 3), OPTIONS) for tag in (A, B, C)}
    await finish_order(scheduler, jobs)
    assert voice.max_active >= 2


# ------------------------------------------------------------------ ordering


class OutOfOrderVoice(FakeVoice):
    """Sentence 1 finishes only after sentence 4 has: results arrive out of order.
    (Sentence 0 runs alone: a job gets parallel sentences once its first audio is out.)"""

    def __init__(self) -> None:
        super().__init__()
        self.fourth_done = threading.Event()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        if phoneme_ids[1] == 1:
            assert self.fourth_done.wait(timeout=5)
        audio = super().synthesize(phoneme_ids, options)
        if phoneme_ids[1] == 4:
            self.fourth_done.set()
        return audio


async def test_chunks_arrive_in_order_from_several_workers(
    make_scheduler: MakeScheduler,
) -> None:
    scheduler = make_scheduler(workers=4, max_sentences_ahead=8)
    voice = OutOfOrderVoice()
    job = scheduler.submit(voice, sentences(A, 10), OPTIONS)

    chunks = await collect_chunks(scheduler, job)

    assert [chunk.index for chunk in chunks] == list(range(10))
    assert [chunk.pcm for chunk in chunks] == [pcm_for(A, i) for i in range(10)]
    assert voice.done.index((A, 4)) < voice.done.index((A, 1))  # really produced out of order
    assert job.audio_samples == 10 * len(pcm_for(A, 0)) // 2


# ------------------------------------------------------------------ backpressure


async def test_a_reader_that_does_not_read_holds_its_job_back(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_sentences_ahead=2)
    voice = fake()
    job = scheduler.submit(voice, sentences(A, 10), OPTIONS)

    async def barrier(tag: int) -> None:
        """A low-priority job only runs when the normal one is not eligible."""
        low = scheduler.submit(voice, sentences(tag, 1), OPTIONS, priority=Priority.LOW)
        await collect(scheduler, low)

    await barrier(B)
    assert len(voice.calls_of(A)) == 2

    stream = scheduler.stream(job)
    first = [await bounded(anext(stream)) for _ in range(3)]
    await barrier(C)
    assert len(voice.calls_of(A)) == 5  # three read, two ahead

    rest = [chunk async for chunk in stream]
    assert [chunk.index for chunk in first + rest] == list(range(10))


# ------------------------------------------------------------------ streaming input


async def test_an_open_job_takes_sentences_as_they_come(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=2)
    voice = fake()
    job = scheduler.submit(voice, [], OPTIONS, closed=False)
    assert not job.finished
    stream = scheduler.stream(job)

    scheduler.add_sentences(job, sentences(A, 2))
    got = [await bounded(anext(stream)) for _ in range(2)]
    assert job.state is JobState.RUNNING  # all said so far, but not closed
    scheduler.add_sentences(job, sentences(A, 1, start=2), close=True)
    got += [chunk async for chunk in stream]

    assert [chunk.pcm for chunk in got] == [pcm_for(A, i) for i in range(3)]
    assert job.state is JobState.DONE
    scheduler.add_sentences(job, sentences(A, 1, start=3))  # finished: ignored
    assert voice.calls == calls(A, 3)


async def test_adding_to_a_closed_job_is_refused(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    running = scheduler.submit(voice, sentences(A, 1), OPTIONS)
    await voice.wait_held()
    closed = scheduler.submit(voice, sentences(B, 1), OPTIONS)
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.add_sentences(closed, sentences(B, 1, start=1))
    voice.release()
    await finish_order(scheduler, {A: running, B: closed})
    assert voice.calls_of(B) == [(B, 0)]


async def test_closing_an_open_job_with_nothing_more_ends_it(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake()
    job = scheduler.submit(voice, sentences(A, 1), OPTIONS, closed=False)
    stream = scheduler.stream(job)
    assert (await bounded(anext(stream))).pcm == pcm_for(A, 0)
    scheduler.add_sentences(job, [], close=True)
    assert [chunk async for chunk in stream] == []
    assert job.state is JobState.DONE


async def test_an_empty_closed_job_is_done_at_once(make_scheduler: MakeScheduler) -> None:
    scheduler = make_scheduler(workers=1)
    job = scheduler.submit(FakeVoice(), [], OPTIONS)
    assert await collect(scheduler, job) == b""
    assert job.state is JobState.DONE


# ------------------------------------------------------------------ drain


async def test_drain_refuses_new_work_and_finishes_admitted_work(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    jobs = {
        A: scheduler.submit(voice, sentences(A, 2), OPTIONS),
        B: scheduler.submit(voice, sentences(B, 2), OPTIONS),
    }
    await voice.wait_held()
    drain = asyncio.create_task(scheduler.drain(grace=10))
    await until(lambda: scheduler.draining)

    with pytest.raises(ShuttingDown) as refused:
        scheduler.submit(voice, sentences(C, 1), OPTIONS)
    assert refused.value.status == 503
    assert scheduler.stats()["draining"] is True
    voice.release()
    order = await finish_order(scheduler, jobs)

    assert await bounded(drain) == 0  # nobody was cut off
    assert sorted(order) == [A, B]
    assert scheduler.stats()["totals"]["completed"] == 2


async def test_drain_cuts_off_what_is_left_after_the_grace_period(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    stuck = scheduler.submit(voice, sentences(A, 2), OPTIONS)
    waiting = scheduler.submit(voice, sentences(B, 2), OPTIONS)
    await voice.wait_held()

    assert await scheduler.drain(grace=0.1) == 2

    for job in (stuck, waiting):
        with pytest.raises(ShuttingDown):
            await collect(scheduler, job)
    voice.release()
    assert not voice.calls_of(B)


# ------------------------------------------------------------------ figures


def test_window_percentiles() -> None:
    window = Window()
    assert window.summary() == {"p50": None, "p95": None, "p99": None}
    for value in range(100, 0, -1):
        window.add(float(value))
    assert window.summary() == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    one = Window()
    one.add(0.25)
    assert one.summary() == {"p50": 0.25, "p95": 0.25, "p99": 0.25}


class RecordingObserver(SchedulerObserver):
    def __init__(self) -> None:
        self.events: list[str] = []
        self.lock = threading.Lock()

    def _note(self, name: str) -> None:
        with self.lock:
            self.events.append(name)

    def rejected(self, reason: str) -> None:
        self._note(f"rejected:{reason}")

    def started(self, queue_wait: float) -> None:
        self._note("started")

    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        self._note("sentence")

    def first_audio(self, seconds: float) -> None:
        self._note("first_audio")

    def finished(self, state: JobState, latency: float) -> None:
        self._note(f"finished:{state.value}")


async def test_stats_and_observer_count_what_happened(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    observer = RecordingObserver()
    scheduler = make_scheduler(workers=2, max_queued_requests=1, observer=observer)
    voice = fake(delay=0.002, gate_at=0)  # held, so that nothing finishes before D comes
    jobs = {tag: scheduler.submit(voice, sentences(tag, tag), OPTIONS) for tag in (A, B, C)}
    await voice.wait_held()
    with pytest.raises(Overloaded):
        scheduler.submit(voice, sentences(D, 1), OPTIONS)
    voice.release()
    await finish_order(scheduler, jobs)

    stats = scheduler.stats()
    assert stats["totals"] == {
        "submitted": 3,
        "completed": 3,
        "failed": 0,
        "rejected": 1,
        "timed_out": 0,
        "cancelled": 0,
        "stalled": 0,
        "sentences": 1 + 2 + 3,
    }
    assert stats["policy"] == "fair" and stats["workers"] == 2
    assert stats["capacity_requests"] == 3
    assert stats["queued_requests"] == stats["active_requests"] == 0
    assert stats["queued_sentences"] == 0 and stats["busy_workers"] == 0
    for name in ("latency_seconds", "queue_wait_seconds", "first_audio_seconds"):
        summary = stats[name]
        assert summary["p50"] is not None
        assert 0 <= summary["p50"] <= summary["p95"] <= summary["p99"]
    assert stats["latency_seconds"]["p99"] >= stats["first_audio_seconds"]["p50"]
    events = observer.events
    assert events.count("started") == 3 and events.count("first_audio") == 3
    assert events.count("sentence") == 6 and events.count("finished:done") == 3
    assert events.count("rejected:requests") == 1
    job = jobs[C]
    assert job.audio_seconds == pytest.approx(3 * len(pcm_for(C, 0)) / 2 / voice.sample_rate)
    assert job.synth_seconds > 0 and job.first_audio_at is not None


async def test_stats_show_a_queued_and_an_active_request(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(gate_at=0)
    jobs = {
        A: scheduler.submit(voice, sentences(A, 2), OPTIONS),
        B: scheduler.submit(voice, sentences(B, 3), OPTIONS),
    }
    await voice.wait_held()
    stats = scheduler.stats()
    assert stats["busy_workers"] == 1
    assert stats["active_requests"] == 1 and stats["queued_requests"] == 1
    assert stats["queued_sentences"] == 1 + 3
    voice.release()
    await finish_order(scheduler, jobs)


# ------------------------------------------------------------------ solo first sentence


class SoloVoice(FakeVoice):
    """A voice with an all-cores session: records which calls ran solo."""

    has_solo_session = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.solo_calls: list[Call] = []
        self.active_during_solo = 0

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        if solo:
            with self._lock:
                self.solo_calls.append((phoneme_ids[0], phoneme_ids[1]))
                self.active_during_solo = max(self.active_during_solo, self.active)
        return super().synthesize(phoneme_ids, options)


async def test_a_lone_first_sentence_runs_solo_and_the_rest_share_workers(
    make_scheduler: MakeScheduler, voices: list[FakeVoice]
) -> None:
    voice = SoloVoice(delay=0.01)
    voices.append(voice)
    scheduler = make_scheduler(workers=2, solo_first=True)
    job = scheduler.submit(voice, sentences(A, 4), SynthesisOptions())
    assert await collect(scheduler, job) == b"".join(pcm_for(A, i) for i in range(4))
    assert voice.solo_calls == [(A, 0)]
    assert voice.active_during_solo == 0  # nothing else ran while it did
    assert scheduler.stats()["solo_sentences"] == 1


async def test_no_solo_when_other_work_waits_or_when_off(
    make_scheduler: MakeScheduler, voices: list[FakeVoice]
) -> None:
    voice = SoloVoice(gate_at=0)
    voices.append(voice)
    scheduler = make_scheduler(workers=1, solo_first=True)
    first = scheduler.submit(voice, sentences(A, 2), SynthesisOptions())
    await voice.wait_held()  # A/0 runs solo: nothing else was waiting
    second = scheduler.submit(voice, sentences(B, 2), SynthesisOptions())
    voice.release()
    await bounded(asyncio.gather(scheduler.collect(first), scheduler.collect(second)))
    # B's first sentence started while A still had work: it shares, it does not run solo.
    assert voice.solo_calls == [(A, 0)]

    plain = SoloVoice()
    voices.append(plain)
    off = make_scheduler(workers=2, solo_first=False)
    await collect(off, off.submit(plain, sentences(C, 2), SynthesisOptions()))
    assert plain.solo_calls == []
    fifo = make_scheduler(workers=2, solo_first=True, policy="fifo")
    await collect(fifo, fifo.submit(plain, sentences(D, 2), SynthesisOptions()))
    assert plain.solo_calls == []


# ------------------------------------------------------------------ clients


async def test_one_client_with_many_requests_does_not_delay_another_behind_them(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    """Client "a" holds five one-sentence requests; client "b" arrives after them with one
    of the same length. Request-level fairness would run all of a's first (they are as
    short and came earlier); between clients, b is next after the sentence running now."""
    scheduler = make_scheduler(policy="fair")
    voice = fake(gate_at=0)
    first = scheduler.submit(voice, sentences(A, 1), OPTIONS, client="a")
    await voice.wait_held()
    mine = [scheduler.submit(voice, sentences(tag, 1), OPTIONS, client="a") for tag in (B, C, D)]
    other = scheduler.submit(voice, sentences(E, 1), OPTIONS, client="b")
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (first, *mine, other))))
    assert voice.calls[:2] == [(A, 0), (E, 0)]
    assert voice.calls[2:] == [(B, 0), (C, 0), (D, 0)]


async def test_clients_alternate_sentence_by_sentence(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(policy="fair", max_sentences_ahead=100)
    voice = fake(gate_at=0)
    hold = scheduler.submit(voice, sentences(A, 1), OPTIONS, client="x")
    await voice.wait_held()
    a = [scheduler.submit(voice, sentences(tag, 2), OPTIONS, client="a") for tag in (B, C)]
    b = scheduler.submit(voice, sentences(D, 2), OPTIONS, client="b")
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (hold, *a, b))))
    clients = ["a" if tag in (B, C) else "b" for tag, _ in voice.calls[1:]]
    # b's two sentences are spread among a's four, never both behind all of them
    assert clients[:4].count("b") >= 1 and clients.index("b") <= 1
    assert voice.calls_of(D) == calls(D, 2)


async def test_a_client_may_hold_only_its_share(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(max_client_requests=2)
    voice = fake(gate_at=0)
    jobs = [scheduler.submit(voice, sentences(tag, 1), OPTIONS, client="a") for tag in (A, B)]
    await voice.wait_held()
    with pytest.raises(TooManyClientRequests) as refused:
        scheduler.submit(voice, sentences(C, 1), OPTIONS, client="a")
    assert "2 requests" in refused.value.message and refused.value.retry_after >= 1
    other = scheduler.submit(voice, sentences(D, 1), OPTIONS, client="b")  # others still may
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (*jobs, other))))
    again = scheduler.submit(voice, sentences(E, 1), OPTIONS, client="a")  # slots came back
    await collect(scheduler, again)
    assert scheduler.stats()["totals"]["rejected"] == 1 and scheduler.stats()["clients"] == 0


# ------------------------------------------------------------------ admission by wait


async def test_a_request_that_cannot_start_before_its_deadline_is_refused_at_once(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, max_queued_requests=1000)
    scheduler.gate.speed.mean = 0.05  # as measured: 0.1 s per two-id fake sentence
    voice = fake(gate_at=0)
    running = scheduler.submit(voice, sentences(A, 1), OPTIONS)
    await voice.wait_held()
    # The running sentence and each unstarted request ahead add 0.1 s: with a deadline of
    # 0.75 s usable the 7th waiting one starts in time, the 8th would not.
    timeout = 0.75 / DEADLINE_SHARE
    admitted = [
        scheduler.submit(voice, sentences(B, 1), OPTIONS, timeout=timeout) for _ in range(7)
    ]
    with pytest.raises(Overloaded) as refused:
        scheduler.submit(voice, sentences(C, 1), OPTIONS, timeout=timeout)
    assert "deadline" in refused.value.message and refused.value.retry_after >= 1
    longer = scheduler.submit(voice, sentences(C, 1), OPTIONS, timeout=60.0)  # a patient one fits
    assert scheduler.stats()["predicted_wait_seconds"] > 0.75
    voice.release()
    await bounded(asyncio.gather(*(scheduler.collect(j) for j in (running, *admitted, longer))))
    assert voice.calls_of(C) == [(C, 0)]  # the refused one never ran


async def test_the_estimate_learns_from_measured_sentences(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake(delay=0.05)
    before = scheduler.gate.speed.seconds_per_id
    for tag in (A, B, C):
        await collect(scheduler, scheduler.submit(voice, sentences(tag, 3), OPTIONS))
    # ~0.05 s per two-id sentence is 0.025 s per id, far above the starting guess
    assert scheduler.gate.speed.seconds_per_id > before * 2


async def test_each_voice_is_timed_on_its_own(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    """A small voice many times faster than a large one must not make the large one's
    backlog look short (nor the other way round)."""
    scheduler = make_scheduler(workers=1)
    slow, quick = fake(delay=0.04), fake()
    for voice, tag in ((slow, A), (quick, B), (slow, C), (quick, D)):
        await collect(scheduler, scheduler.submit(voice, sentences(tag, 3), OPTIONS))
    assert (
        scheduler.gate.speed_of(slow).seconds_per_id
        > 10 * scheduler.gate.speed_of(quick).seconds_per_id
    )
    unmeasured = fake()
    assert (
        scheduler.gate.speed_of(unmeasured) is scheduler.gate.speed
    )  # the overall figure until then


# ------------------------------------------------------------------ output cap


async def test_audio_past_the_cap_stops_the_request(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake()  # 8 samples per sentence at 1000 Hz
    job = scheduler.submit(voice, sentences(A, 10), OPTIONS, max_seconds=0.03)
    chunks: list[Chunk] = []
    with pytest.raises(AudioTooLong):
        async for chunk in scheduler.stream(job):
            chunks.append(chunk)
    assert len(chunks) == 3  # 24 samples fit, the 4th sentence would make 32 > 30
    assert len(voice.calls) < 10 and job.state is JobState.FAILED
    fits = scheduler.submit(voice, sentences(B, 3), OPTIONS, max_seconds=0.03)
    assert len(await collect(scheduler, fits)) == 3 * len(pcm_for(B, 0))


# ------------------------------------------------------------------ stalled readers


async def test_a_reader_that_takes_nothing_loses_its_slot(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, stall_timeout=0.2, max_sentences_ahead=2)
    voice = fake()
    stalled = scheduler.submit(voice, sentences(A, 10), OPTIONS)
    await until(lambda: stalled.finished, within=5)
    assert isinstance(stalled.error, ReaderStalled)
    assert len(voice.calls) == 2  # it never ran past what its reader could take
    stats = scheduler.stats()
    assert stats["totals"]["stalled"] == 1 and stats["active_requests"] == 0


async def test_a_slow_reader_that_keeps_taking_is_not_stalled(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=1, stall_timeout=0.3, max_sentences_ahead=1)
    voice = fake()
    job = scheduler.submit(voice, sentences(A, 6), OPTIONS)
    taken = 0
    async for _ in scheduler.stream(job):
        taken += 1
        for _ in range(3):  # 0.45 s per chunk in all, but progress every 0.15 s
            await asyncio.sleep(0.15)
            scheduler.touch(job)
    assert taken == 6 and job.state is JobState.DONE


# ------------------------------------------------------------------ robustness


class ExplodingObserver(SchedulerObserver):
    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    def first_audio(self, seconds: float) -> None:
        raise RuntimeError("metrics backend down")

    def started(self, queue_wait: float) -> None:
        raise RuntimeError("metrics backend down")


async def test_an_observer_that_raises_costs_no_worker_and_no_job(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice]
) -> None:
    scheduler = make_scheduler(workers=2, observer=ExplodingObserver())
    voice = fake()
    assert scheduler.live_workers == 2
    jobs = [scheduler.submit(voice, sentences(tag, 3), OPTIONS) for tag in (A, B, C, D)]
    audio = await bounded(asyncio.gather(*(scheduler.collect(job) for job in jobs)))
    assert all(len(pcm) == 3 * len(pcm_for(A, 0)) for pcm in audio)
    assert scheduler.live_workers == 2


async def test_an_error_outside_synthesis_fails_only_its_job(
    make_scheduler: MakeScheduler, fake: Callable[..., FakeVoice], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = make_scheduler(workers=1)
    voice = fake()
    real_complete = scheduler._maybe_complete

    def broken_complete(job: Job) -> None:  # runs on the worker, after a sentence settles
        if job.sentences[0][0] == A:
            raise RuntimeError("bug in hand-over")
        real_complete(job)

    monkeypatch.setattr(scheduler, "_maybe_complete", broken_complete)
    bad = scheduler.submit(voice, sentences(A, 2), OPTIONS)
    with pytest.raises(SynthesisFailed):
        await collect(scheduler, bad)
    good = scheduler.submit(voice, sentences(B, 2), OPTIONS)
    assert len(await collect(scheduler, good)) == 2 * len(pcm_for(B, 0))
    assert scheduler.live_workers == 1
