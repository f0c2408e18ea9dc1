"""Streaming pieces shared by the encoders: whole int16 samples out of arbitrary byte
pieces, and one soxr resampler that keeps its filter state from one piece to the next."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

__all__ = ["SAMPLE_WIDTH", "Int16Array", "SampleAligner", "StreamResampler", "resample_pcm"]

SAMPLE_WIDTH: Final = 2  # int16

Int16Array = npt.NDArray[np.int16]
_Float32Array = npt.NDArray[np.float32]


def _check_rate(rate: int) -> None:
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")


def _to_float(samples: Int16Array) -> _Float32Array:
    return samples.astype(np.float32) / np.float32(32768.0)


def _to_int16(samples: _Float32Array) -> Int16Array:
    # Resampling can overshoot full scale slightly (filter ringing), so clip, don't wrap.
    scaled: _Float32Array = np.rint(samples * np.float32(32768.0))
    clipped: _Float32Array = np.clip(scaled, -32768.0, 32767.0)
    return clipped.astype(np.int16)


# soxr is run in float32 rather than int16 on purpose: for int16 output libsoxr adds
# random TPDF dither, which makes the output differ from run to run.


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """One-shot resample of a whole mono int16 PCM buffer (soxr, high quality)."""
    _check_rate(from_rate)
    _check_rate(to_rate)
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH], dtype="<i2")
    out: _Float32Array = soxr.resample(_to_float(samples), from_rate, to_rate, quality="HQ")
    return _to_int16(out).astype("<i2").tobytes()


class StreamResampler:
    """Stateful streaming resampler: no clicks or lost samples at chunk joins.

    Resampling each chunk on its own would restart the filter at every sentence
    boundary; soxr's ResampleStream keeps the filter history across calls instead.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        _check_rate(from_rate)
        _check_rate(to_rate)
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: Int16Array) -> Int16Array:
        out: _Float32Array = self._stream.resample_chunk(_to_float(samples))
        return _to_int16(out)

    def drain(self) -> Int16Array:
        # last=True releases the samples still held back by the filter's delay line.
        out: _Float32Array = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return _to_int16(out)


def maybe_resampler(from_rate: int, to_rate: int) -> StreamResampler | None:
    """A resampler between two rates, or None when they are the same."""
    return StreamResampler(from_rate, to_rate) if from_rate != to_rate else None


class SampleAligner:
    """Turn arbitrary byte pieces into whole int16 samples.

    The engine normally hands over whole samples, but a stray odd byte must not shift
    every later sample by one byte, so it is carried over to the next call.
    """

    def __init__(self) -> None:
        self._carry = b""

    def samples(self, pcm: bytes) -> Int16Array:
        data = self._carry + pcm if self._carry else pcm
        usable = len(data) - (len(data) % SAMPLE_WIDTH)
        self._carry = data[usable:]
        # Copy: frombuffer() views are read-only and tied to the caller's buffer.
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


class ResampledSamples:
    """Byte pieces in, whole samples at the output rate out (the common front of every
    encoder): `take()` per piece, `drain()` once at the end."""

    def __init__(self, input_rate: int, output_rate: int) -> None:
        self._aligner = SampleAligner()
        self._resampler = maybe_resampler(input_rate, output_rate)

    def take(self, pcm: bytes) -> Int16Array:
        samples = self._aligner.samples(pcm)
        if self._resampler is not None and samples.size:
            samples = self._resampler.process(samples)
        return samples

    def drain(self) -> Int16Array:
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        return self._resampler.drain()
