"""A sentence's PCM piece by piece as the chunked decoder makes it (chunked.py): the
voice's calibrated gain (known before the first chunk: calibration.py), the same limiter
a whole sentence gets (loudness.py), then volume, as 16-bit PCM.

A whole sentence in loudness mode is measured and given its own gain; a sentence in
pieces cannot be (its end does not exist yet), so it gets its voice's: its loudness is
the voice's typical one, within a few LU of the target, and its samples equal the whole
sentence's leveled with that same gain up to the decoder's margins' error (tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tts_service.engine.chunked import ChunkedSentence
from tts_service.engine.loudness import Limiter, LoudnessTarget, gain_to
from tts_service.engine.options import SynthesisOptions

_MAX_WAV_VALUE = 32767.0
"""Piper's own int16 conversion, so our bytes equal `PiperVoice.synthesize()`'s."""


@dataclass
class SentencePieces:
    """One sentence decoded piece by piece (each piece as the decoder makes it): what is
    known before its first piece, and the pieces."""

    samples: int
    """All of its samples, the request's silence after it included."""
    samples_per_id: tuple[int, ...] | None
    pieces: Iterator[bytes]
    """16-bit mono PCM in order; joined, the sentence (the last one ends with the silence).
    Closing the iterator early stops the decoding."""


def to_pcm(audio: np.ndarray, volume: float) -> bytes:
    """Float audio (full scale 1.0) times `volume` to 16-bit PCM, as Piper converts it."""
    if volume != 1.0:
        audio = audio * volume
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    pcm = np.clip(audio * _MAX_WAV_VALUE, -_MAX_WAV_VALUE, _MAX_WAV_VALUE).astype(np.int16)
    return pcm.tobytes()


def chunk_gain(raw_lufs: float, target: LoudnessTarget) -> float:
    """What a chunked sentence of a voice whose raw output measures `raw_lufs` gets."""
    return gain_to(target, raw_lufs)


def leveled_pieces(
    sentence: ChunkedSentence, raw_lufs: float, options: SynthesisOptions, rate: int
) -> SentencePieces:
    """The sentence at the gain for a voice whose raw output measures `raw_lufs`, in PCM
    pieces, with the request's volume and its silence after the last one."""
    target = LoudnessTarget(lufs=options.loudness_target)
    gain = chunk_gain(raw_lufs, target)
    silence = int(rate * options.sentence_silence)
    pieces = _pieces(sentence, gain, target, rate, options.volume, silence)
    return SentencePieces(sentence.total_samples + silence, sentence.samples_per_id, pieces)


def _pieces(
    sentence: ChunkedSentence,
    gain: float,
    target: LoudnessTarget,
    rate: int,
    volume: float,
    silence: int,
) -> Iterator[bytes]:
    """The sentence's chunks as PCM pieces, then the limiter's last few milliseconds and
    the silence. Closing it early closes the decoder's iterator too (no more chunks are
    decoded)."""
    limiter = Limiter(target.ceiling, rate)
    chunks = sentence.chunks
    try:
        for raw in chunks:
            out = limiter.process(np.asarray(raw, dtype=np.float64) * gain)
            if out.size:
                yield to_pcm(out, volume)
        yield to_pcm(limiter.flush(), volume) + bytes(2 * silence)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
