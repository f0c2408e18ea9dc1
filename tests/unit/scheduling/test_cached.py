"""Cached sentences through the scheduler: a hit goes to its request at once, without a
worker; what workers make goes into the job's store; each sentence is looked up once.

The store is a plain dict behind the `SentenceStore` protocol, the voice a fake that
records what it was asked to synthesize."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import pytest

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.scheduling.jobs import Chunk, Job
from tts_service.scheduling.scheduler import Scheduler

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

    def get(self, phoneme_ids: Sequence[int]) -> SentenceAudio | None:
        self.lookups.append(tuple(phoneme_ids))
        return self.sentences.get(tuple(phoneme_ids))

    def put(self, phoneme_ids: Sequence[int], made: SentenceAudio) -> None:
        self.sentences[tuple(phoneme_ids)] = made


class Voice:
    sample_rate = 1000
    has_solo_session = False

    def __init__(self) -> None:
        self.calls: list[int] = []

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        self.calls.append(phoneme_ids[1])
        return audio(phoneme_ids[1])


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
