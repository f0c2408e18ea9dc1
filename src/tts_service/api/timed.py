"""Audio with its words: each sentence's chunk paired with its timed words, encoded whole
or sentence by sentence (native and OpenAI routes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from tts_service.audio.encoders import WAV_FORMATS, exact_sizes, make_encoder
from tts_service.engine.phonemes import PhonemeTime
from tts_service.engine.words import Reached, Word
from tts_service.service import Admitted, Chunk, TTSService


@dataclass(frozen=True)
class Piece:
    """Encoded audio for one sentence (`sentence` is its index) with its words, or for a
    piece of it (`first`: the piece with the words), or the encoder's tail after the last
    sentence (`sentence` None, no words)."""

    sentence: int | None
    audio: bytes
    words: list[Word]
    marks: list[Reached] = field(default_factory=list)
    """The SSML marks reached in the sentence (with timestamps)."""
    phonemes: list[PhonemeTime] = field(default_factory=list)
    """Its phonemes' timings, when asked for."""
    first: bool = True
    """False on the later pieces of a sentence that came in pieces (its words, marks and
    phonemes come with its first)."""


async def timed_chunks(
    service: TTSService, admitted: Admitted, phonemes: bool = False
) -> AsyncIterator[tuple[Chunk, list[Word], list[Reached], list[PhonemeTime]]]:
    """The job's chunks in order, each sentence's first with its words, the SSML marks
    reached in it and (`phonemes`) its phonemes' timings; none without timestamps, and
    none on the later pieces of a sentence that came in pieces."""
    clock = admitted.word_clock(phonemes)
    async for chunk in admitted.chunks():
        if clock is None or not chunk.first:
            yield chunk, [], [], []
            continue
        ids = admitted.phoneme_ids(chunk.index)
        words = clock.sentence(chunk.index, chunk.samples, chunk.samples_per_id, ids)
        yield chunk, words, clock.reached, clock.phonemes


async def encoded_pieces(
    service: TTSService,
    admitted: Admitted,
    fmt: str,
    phonemes: bool = False,
    rate: int | None = None,
) -> AsyncGenerator[Piece, None]:
    """Each sentence encoded in `fmt` (at `rate`, else the format's default) as it arrives,
    then the encoder's tail (when it has one). Joined, the audio is the file."""
    loop = asyncio.get_running_loop()
    encoder = make_encoder(fmt, admitted.voice.sample_rate, rate)
    async for chunk, words, marks, timed in timed_chunks(service, admitted, phonemes):
        data = await loop.run_in_executor(None, encoder.encode, chunk.pcm)
        yield Piece(chunk.index, data, words, marks, timed, chunk.first)
    tail = await loop.run_in_executor(None, encoder.flush)
    if tail:
        yield Piece(None, tail, [])


async def encode_whole_timed(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> tuple[list[bytes], list[list[Word]], list[Reached]]:
    """The complete file as parts (WAV with exact sizes), each sentence's words and the
    SSML marks reached."""
    sentences: list[list[Word]] = []
    reached: list[Reached] = []
    parts: list[bytes] = []
    async for piece in encoded_pieces(service, admitted, fmt, rate=rate):
        parts.append(piece.audio)
        if piece.sentence is not None and piece.first:
            sentences.append(piece.words)
            reached += piece.marks
    return (exact_sizes(parts) if fmt in WAV_FORMATS else parts), sentences, reached


async def timed_words(service: TTSService, admitted: Admitted) -> list[list[Word]]:
    """Each sentence's words, the audio synthesized and dropped (a caption file alone)."""
    return [words async for chunk, words, _, _ in timed_chunks(service, admitted) if chunk.first]
