"""Cached sentences through the scheduler: a hit goes to its request at once, without a
worker; what workers make goes into the job's store; each sentence is looked up once.

The store is a plain dict behind the `SentenceStore` protocol, the voice a fake that
records what it was asked to synthesize."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence

import pytest

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.scheduling.batching import BatchRule
from tts_service.scheduling.jobs import Chunk, Job
from tts_service.scheduling.scheduler import Scheduler
from tts_service.scheduling.workers import ExpressRule

OPTIONS = SynthesisOptions()


def ids(n: int) -> list[int]:
    return [7, n]


def audio(n: int) -> SentenceAudio:
    return SentenceAudio(struct.pack("<h", n) * 10, samples_per_id=(4, 6))


class Store:
    """A `SentenceStore` over a dict; counts its lookups."""

    def __init__(self, held: Sequence[int] = ()) -> None:
        self.sentences = {tuple(ids(n)): audio(n) for n in held}
        self.lookups: list[tuple[int, ...]] = []
        self.options: list[SynthesisOptions] = []
        """The options each lookup and each put named, in turn."""

    def get(self, phoneme_ids: Sequence[int], options: SynthesisOptions) -> SentenceAudio | None:
        self.lookups.append(tuple(phoneme_ids))
        self.options.append(options)
        return self.sentences.get(tuple(phoneme_ids))

    def put(
        self, phoneme_ids: Sequence[int], options: SynthesisOptions, made: SentenceAudio
    ) -> None:
        self.options.append(options)
        self.sentences[tuple(phoneme_ids)] = made


class Voice:
    """A `Synthesizer` (and `BatchSynthesizer`) that records how each sentence ran; with
    `gated`, its first sentence waits for `release()`."""

    sample_rate = 1000

    def __init__(self, gated: bool = False, solo: bool = False) -> None:
        self.calls: list[int] = []
        self.runs: list[tuple[str, list[int]]] = []
        self.has_solo_session = solo
        self.held, self._gate = threading.Event(), threading.Event()
        if not gated:
            self._gate.set()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        self.held.set()
        self._gate.wait(10)
        self.calls.append(phoneme_ids[1])
        self.runs.append(("solo" if solo else threading.current_thread().name, [phoneme_ids[1]]))
        return audio(phoneme_ids[1])

    def batch_key(self, options: SynthesisOptions) -> Hashable | None:
        return 1

    def synthesize_batch(
        self, items: Sequence[tuple[list[int], SynthesisOptions]]
    ) -> list[SentenceAudio]:
        self.runs.append(("batch", [one[1] for one, _ in items]))
        return [audio(one[1]) for one, _ in items]

    def release(self) -> None:
        self._gate.set()


@pytest.fixture
def scheduler() -> Iterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(start: bool = True, **kwargs: object) -> Scheduler:
        made.append(Scheduler(workers=1, **kwargs))  # type: ignore[arg-type]
        if start:
            made[-1].start()
        return made[-1]

    yield make
    for one in made:
        one.stop()


async def chunks(scheduler: Scheduler, job: Job) -> list[Chunk]:
    async def read() -> list[Chunk]:
        return [chunk async for chunk in scheduler.stream(job)]

    return await asyncio.wait_for(read(), 10)


async def test_a_cached_request_needs_no_worker(scheduler: Callable[..., Scheduler]) -> None:
    idle = scheduler(start=False)  # no worker thread exists
    voice, store = Voice(), Store(held=range(3))
    job = idle.submit(voice, [ids(n) for n in range(3)], OPTIONS, cache=store)
    got = await chunks(idle, job)
    assert [(c.pcm, c.samples_per_id) for c in got] == [
        (audio(n).pcm, audio(n).samples_per_id) for n in range(3)
    ]
    assert voice.calls == [] and job.state.value == "done"


async def test_hits_and_misses_keep_sentence_order(scheduler: Callable[..., Scheduler]) -> None:
    running = scheduler()
    voice, store = Voice(), Store(held=[0, 2, 3])
    job = running.submit(voice, [ids(n) for n in range(5)], OPTIONS, cache=store)
    got = await chunks(running, job)
    assert [c.pcm for c in got] == [audio(n).pcm for n in range(5)]
    assert sorted(voice.calls) == [1, 4]
    assert sorted(store.lookups) == sorted(tuple(ids(n)) for n in range(5))  # once each


async def test_a_sentence_with_its_own_options_is_looked_up_and_kept_with_them(
    scheduler: Callable[..., Scheduler],
) -> None:
    """A pause after sentence 1 (its own options): its audio is another sentence's."""
    running = scheduler()
    voice, store = Voice(), Store()
    paused = dataclasses.replace(OPTIONS, sentence_silence=0.7)
    job = running.submit(
        voice, [ids(n) for n in range(3)], OPTIONS, cache=store, sentence_options={1: paused}
    )
    await chunks(running, job)
    looked_up = store.options[:1] + [o for o in store.options[1:] if o is paused]
    assert looked_up[0] == OPTIONS and paused in store.options
    assert store.options.count(paused) == 2  # its lookup and its put, nothing else


async def test_what_workers_make_is_kept_for_the_next_request(
    scheduler: Callable[..., Scheduler],
) -> None:
    running = scheduler()
    voice, store = Voice(), Store()
    first = running.submit(voice, [ids(n) for n in range(3)], OPTIONS, cache=store)
    await chunks(running, first)
    assert sorted(voice.calls) == [0, 1, 2]
    again = running.submit(voice, [ids(n) for n in range(3)], OPTIONS, cache=store)
    assert [c.pcm for c in await chunks(running, again)] == [audio(n).pcm for n in range(3)]
    assert sorted(voice.calls) == [0, 1, 2]


async def test_hits_wait_for_a_slow_reader(scheduler: Callable[..., Scheduler]) -> None:
    """The look-ahead bound holds for hits too: a reader that takes nothing is handed no
    more than `max_sentences_ahead` of them; each one it takes frees a place."""
    idle = scheduler(start=False, max_sentences_ahead=2)
    voice, store = Voice(), Store(held=range(6))
    job = idle.submit(voice, [ids(n) for n in range(6)], OPTIONS, cache=store)
    assert job.next_dispatch == 2
    assert len(await chunks(idle, job)) == 6 and voice.calls == []


async def test_streamed_text_is_served_as_it_arrives(scheduler: Callable[..., Scheduler]) -> None:
    idle = scheduler(start=False)
    voice, store = Voice(), Store(held=range(4))
    job = idle.submit(voice, [ids(0)], OPTIONS, closed=False, cache=store)
    stream: AsyncIterator[Chunk] = idle.stream(job)
    assert (await asyncio.wait_for(anext(stream), 5)).pcm == audio(0).pcm
    idle.add_sentences(job, [ids(1), ids(2), ids(3)], close=True)
    rest = await asyncio.wait_for(_drain(stream), 5)
    assert [c.pcm for c in rest] == [audio(n).pcm for n in (1, 2, 3)] and voice.calls == []


async def _drain(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in stream]


async def test_without_a_store_nothing_is_looked_up(scheduler: Callable[..., Scheduler]) -> None:
    running = scheduler()
    voice = Voice()
    job = running.submit(voice, [ids(n) for n in range(2)], OPTIONS)
    assert len(await chunks(running, job)) == 2 and sorted(voice.calls) == [0, 1]


async def _held(voice: Voice) -> None:
    assert await asyncio.to_thread(voice.held.wait, 5), "the gated sentence never ran"


async def test_batched_runs_fill_the_store(scheduler: Callable[..., Scheduler]) -> None:
    batching = scheduler(batch=BatchRule(size=4, wait=0.2))
    voice, store = Voice(gated=True), Store()
    first = batching.submit(voice, [ids(0)], OPTIONS, cache=store)
    await _held(voice)  # the one worker is inside sentence 0: the next three queue up
    rest = [
        batching.submit(voice, [ids(n)], OPTIONS, client=str(n), cache=store) for n in (1, 2, 3)
    ]
    voice.release()
    for job in (first, *rest):
        await chunks(batching, job)
    assert ("batch", [1, 2, 3]) in voice.runs
    assert set(store.sentences) == {tuple(ids(n)) for n in range(4)}


async def test_express_and_solo_sentences_fill_the_store(
    scheduler: Callable[..., Scheduler],
) -> None:
    express = scheduler(express=ExpressRule(enabled=True))
    voice, store = Voice(gated=True), Store()
    long = express.submit(voice, [ids(0), ids(1)], OPTIONS, client="a", cache=store)
    await _held(voice)  # the worker is busy: a newcomer's first sentence takes the lane
    newcomer = express.submit(Voice(), [ids(5)], OPTIONS, client="b", cache=store)
    assert [c.pcm for c in await chunks(express, newcomer)] == [audio(5).pcm]
    voice.release()
    await chunks(express, long)
    assert tuple(ids(5)) in store.sentences and express.figures.express_sentences == 1

    solo = scheduler(solo_first=True)
    alone, kept = Voice(solo=True), Store()
    await chunks(solo, solo.submit(alone, [ids(7)], OPTIONS, cache=kept))
    assert alone.runs == [("solo", [7])] and tuple(ids(7)) in kept.sentences
