"""Audio with its words: each sentence's chunk paired with its timed words, encoded whole
or sentence by sentence (native and OpenAI routes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from tts_service.audio.encoders import WAV_FORMATS, exact_sizes, make_encoder
from tts_service.engine.words import Word
from tts_service.service import Admitted, Chunk, TTSService


@dataclass(frozen=True)
class Piece:
    """Encoded audio for one sentence (`sentence` is its index) with its words, or the
    encoder's tail after the last sentence (`sentence` None, no words)."""

    sentence: int | None
    audio: bytes
    words: list[Word]


async def timed_chunks(
    service: TTSService, admitted: Admitted
) -> AsyncIterator[tuple[Chunk, list[Word]]]:
    """The job's chunks in order, each with its words (none without timestamps)."""
    clock = admitted.word_clock()
    async for chunk in admitted.chunks():
        if clock is None:
            yield chunk, []
            continue
        ids = admitted.phoneme_ids(chunk.index)
        yield chunk, clock.sentence(chunk.index, len(chunk.pcm) // 2, chunk.samples_per_id, ids)


async def encoded_pieces(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> AsyncGenerator[Piece, None]:
    """Each sentence encoded in `fmt` (at `rate`, else the format's default) as it arrives,
    then the encoder's tail (when it has one). Joined, the audio is the file."""
    loop = asyncio.get_running_loop()
    encoder = make_encoder(fmt, admitted.voice.sample_rate, rate)
    async for chunk, words in timed_chunks(service, admitted):
        data = await loop.run_in_executor(None, encoder.encode, chunk.pcm)
        yield Piece(chunk.index, data, words)
    tail = await loop.run_in_executor(None, encoder.flush)
    if tail:
        yield Piece(None, tail, [])


async def encode_whole_timed(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> tuple[list[bytes], list[list[Word]]]:
    """The complete file as parts (WAV with exact sizes) and each sentence's words."""
    sentences: list[list[Word]] = []
    parts: list[bytes] = []
    async for piece in encoded_pieces(service, admitted, fmt, rate):
        parts.append(piece.audio)
        if piece.sentence is not None:
            sentences.append(piece.words)
    return (exact_sizes(parts) if fmt in WAV_FORMATS else parts), sentences


async def timed_words(service: TTSService, admitted: Admitted) -> list[list[Word]]:
    """Each sentence's words, the audio synthesized and dropped (a caption file alone)."""
    return [words async for _, words in timed_chunks(service, admitted)]
