"""A streamed request's first sentence in pieces (chunked decoding, issue 25), with a fake
voice whose pieces a test releases one by one: what reaches the reader and when, what
stops the decoding, and when the scheduler decodes whole instead. No clock."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator

import pytest

from tts_service.engine.pieces import SentencePieces
from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.errors import AudioTooLong
from tts_service.scheduling.jobs import Chunk, Job
from tts_service.scheduling.scheduler import Scheduler

OPTIONS = SynthesisOptions(sentence_silence=0.0)
PIECES = 3
SAMPLES = 4  # per piece
TIMINGS = (4, 4, 4)


def pcm(tag: int, piece: int) -> bytes:
    return struct.pack("<hh", tag, piece) * (SAMPLES // 2)


class PiecedVoice:
    """Sentences [tag, ...]: whole, the three pieces joined; in pieces, each piece waits
    for `step()` (so a test sees the reader's side between two of them)."""

    sample_rate = 1000
    has_solo_session = False

    def __init__(self) -> None:
        self.whole: list[int] = []
        self.in_pieces_calls: list[int] = []
        self.decoded: list[tuple[int, int]] = []
        self.closed = threading.Event()
        self._steps = threading.Semaphore(0)

    def step(self, count: int = 1) -> None:
        for _ in range(count):
            self._steps.release()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        tag = phoneme_ids[0]
        self.whole.append(tag)
        return SentenceAudio(b"".join(pcm(tag, k) for k in range(PIECES)), TIMINGS)

    def decodes_in_pieces(self, phoneme_ids: list[int], options: SynthesisOptions) -> bool:
        return len(phoneme_ids) >= 3  # shorter: "too short to gain", decoded whole

    def in_pieces(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentencePieces | None:
        tag = phoneme_ids[0]
        self.in_pieces_calls.append(tag)
        if not self.decodes_in_pieces(phoneme_ids, options):
            return None
        return SentencePieces(PIECES * SAMPLES, TIMINGS, self._pieces(tag))

    def _pieces(self, tag: int) -> Iterator[bytes]:
        try:
            for k in range(PIECES):
                assert self._steps.acquire(timeout=10), "the test never released a piece"
                self.decoded.append((tag, k))
                yield pcm(tag, k)
        finally:
            self.closed.set()


@pytest.fixture
def voice() -> PiecedVoice:
    return PiecedVoice()


@pytest.fixture
def scheduler(voice: PiecedVoice) -> Iterator[Scheduler]:
    made = Scheduler(workers=1, express=None)
    made.start()
    yield made
    voice.step(100)
    made.stop()


async def next_chunk(chunks: object) -> Chunk:
    assert hasattr(chunks, "__anext__")
    return await asyncio.wait_for(chunks.__anext__(), 10)  # type: ignore[no-any-return]


def long(tag: int) -> list[int]:
    return [tag, 0, 0, 0]


async def test_a_streamed_first_sentence_reaches_the_reader_piece_by_piece(
    scheduler: Scheduler, voice: PiecedVoice
) -> None:
    job = scheduler.submit(voice, [long(1), long(2)], OPTIONS, pieces=True)
    chunks = scheduler.stream(job)
    voice.step()  # piece 0 decoded; it is held until piece 1 shows it is not the last
    voice.step()
    first = await next_chunk(chunks)
    assert (first.index, first.first, first.last) == (0, True, False)
    assert first.pcm == pcm(1, 0)
    assert first.samples_per_id == TIMINGS and first.samples == PIECES * SAMPLES
    assert voice.decoded == [(1, 0), (1, 1)]  # the reader had audio before the rest existed
    voice.step()
    second, third = await next_chunk(chunks), await next_chunk(chunks)
    assert (second.first, second.last, third.first, third.last) == (False, False, False, True)
    assert second.samples_per_id is None and third.samples_per_id is None
    assert second.pcm + third.pcm == pcm(1, 1) + pcm(1, 2)
    after = await next_chunk(chunks)  # the second sentence: whole, as ever
    assert (after.index, after.first, after.last) == (1, True, True)
    assert after.pcm == b"".join(pcm(2, k) for k in range(PIECES))
    assert voice.in_pieces_calls == [1] and voice.whole == [2]
    assert job.audio_samples == 2 * PIECES * SAMPLES


async def test_a_request_that_does_not_stream_is_decoded_whole(
    scheduler: Scheduler, voice: PiecedVoice
) -> None:
    job = scheduler.submit(voice, [long(1)], OPTIONS)
    chunk = await next_chunk(scheduler.stream(job))
    assert (chunk.first, chunk.last) == (True, True)
    assert voice.in_pieces_calls == [] and voice.whole == [1]


async def test_a_sentence_the_voice_keeps_whole_comes_whole(
    scheduler: Scheduler, voice: PiecedVoice
) -> None:
    job = scheduler.submit(voice, [[1, 0]], OPTIONS, pieces=True)
    chunk = await next_chunk(scheduler.stream(job))
    assert (chunk.first, chunk.last) == (True, True)
    assert voice.in_pieces_calls == [] and voice.whole == [1]  # asked first, then whole


async def test_with_others_waiting_the_first_sentence_is_decoded_whole(
    voice: PiecedVoice,
) -> None:
    """Pieces cost CPU (the decoder's margins): not while other requests wait for it."""
    scheduler = Scheduler(workers=1)
    try:
        first = scheduler.submit(voice, [long(1)], OPTIONS, pieces=True)
        second = scheduler.submit(voice, [long(2)], OPTIONS, pieces=True)
        scheduler.start()  # both are queued when the worker picks the first
        voice.step(PIECES)
        a = await next_chunk(scheduler.stream(first))
        b = await next_chunk(scheduler.stream(second))
        # The first pick saw the other one waiting: whole. The other, alone by then: pieces.
        picked = voice.whole[0]
        assert picked not in voice.in_pieces_calls
        assert voice.in_pieces_calls == [3 - picked]
        whole, pieced = (a, b) if picked == 1 else (b, a)
        assert (whole.first, whole.last) == (True, True)
        assert (pieced.first, pieced.last) == (True, False)
    finally:
        voice.step(100)
        scheduler.stop()


async def test_cancelling_between_pieces_stops_the_decoding(
    scheduler: Scheduler, voice: PiecedVoice
) -> None:
    job = scheduler.submit(voice, [long(1)], OPTIONS, pieces=True)
    chunks = scheduler.stream(job)
    voice.step(2)
    assert (await next_chunk(chunks)).first
    scheduler.cancel(job)
    voice.step()  # piece 2 is decoded, then its handover finds the request over
    assert await asyncio.to_thread(voice.closed.wait, 10)
    assert voice.decoded == [(1, 0), (1, 1), (1, 2)] or voice.decoded == [(1, 0), (1, 1)]
    await until_idle(scheduler, job)


async def until_idle(scheduler: Scheduler, job: Job) -> None:
    for _ in range(2000):
        if job.finished and job.in_flight == 0 and not scheduler.working:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the job never finished")


async def test_the_audio_cap_counts_pieces(scheduler: Scheduler, voice: PiecedVoice) -> None:
    """A cap of 1.5 pieces: the first piece goes out, the second takes it past the cap."""
    cap = 1.5 * SAMPLES / voice.sample_rate
    job = scheduler.submit(voice, [long(1)], OPTIONS, pieces=True, max_seconds=cap)
    chunks = scheduler.stream(job)
    voice.step(3)
    assert (await next_chunk(chunks)).pcm == pcm(1, 0)
    with pytest.raises(AudioTooLong):
        await next_chunk(chunks)
    assert await asyncio.to_thread(voice.closed.wait, 10)


class SoloPiecedVoice(PiecedVoice):
    has_solo_session = True

    def __init__(self) -> None:
        super().__init__()
        self.solo: list[tuple[int, bool]] = []

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        self.solo.append((phoneme_ids[0], solo))
        return super().synthesize(phoneme_ids, options, solo)

    def in_pieces(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentencePieces | None:
        self.solo.append((phoneme_ids[0], solo))
        return super().in_pieces(phoneme_ids, options, solo)


async def test_a_sentence_in_pieces_leaves_the_other_cores_to_the_next_sentence() -> None:
    """On an idle server a first sentence runs solo (all cores), which holds the other
    workers back; one in pieces runs on one core, and once its first piece is out a second
    worker takes the next sentence while the pieces go on."""
    voice = SoloPiecedVoice()
    scheduler = Scheduler(workers=2, solo_first=True)
    scheduler.start()
    try:
        job = scheduler.submit(voice, [long(1), long(2)], OPTIONS, pieces=True)
        chunks = scheduler.stream(job)
        voice.step(2)
        assert (await next_chunk(chunks)).first
        for _ in range(2000):  # sentence 2 starts while sentence 1's pieces are held
            if voice.whole:
                break
            await asyncio.sleep(0.005)
        assert voice.whole == [2] and voice.decoded == [(1, 0), (1, 1)]
        assert voice.solo[0] == (1, False)
        voice.step(100)
        await asyncio.wait_for(scheduler.collect(job), 10)
        short = scheduler.submit(voice, [[3, 0]], OPTIONS, pieces=True)  # idle again
        await asyncio.wait_for(scheduler.collect(short), 10)
        assert voice.solo[-1] == (3, True)  # a sentence decoded whole still runs solo
    finally:
        voice.step(100)
        scheduler.stop()
