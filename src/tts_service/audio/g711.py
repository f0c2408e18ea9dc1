"""G.711 μ-law and A-law, the telephone network's 8 kHz codecs, written with numpy
(Python's audioop is gone from 3.13). The bit layouts are the ITU's, as in Sun's
reference g711.c; each 16-bit sample becomes one byte."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from tts_service.audio.resample import Int16Array, ResampledSamples
from tts_service.audio.wav import wav_header

__all__ = ["G711_RATE", "LAWS", "G711Encoder", "alaw", "ulaw"]

G711_RATE: Final = 8000
WAV_FORMAT_TAG: Final[dict[str, int]] = {"alaw": 6, "ulaw": 7}
LAWS: Final = tuple(WAV_FORMAT_TAG)

_ULAW_SEGMENT_ENDS: Final = np.array(
    [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32
)
_ALAW_SEGMENT_ENDS: Final = np.array(
    [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32
)
_ULAW_CLIP: Final = 8159
_ULAW_BIAS: Final = 0x21

_Bytes = npt.NDArray[np.uint8]


def ulaw(samples: Int16Array) -> bytes:
    """μ-law bytes of int16 samples (14-bit magnitude, biased, 8 segments, inverted)."""
    value = samples.astype(np.int32) >> 2
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), _ULAW_CLIP) + _ULAW_BIAS
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    code = (np.minimum(segment, 7) << 4) | np.where(segment >= 8, 0x0F, mantissa)
    mask = np.where(negative, 0x7F, 0xFF)
    out: _Bytes = (code ^ mask).astype(np.uint8)
    return out.tobytes()


def alaw(samples: Int16Array) -> bytes:
    """A-law bytes of int16 samples (13-bit magnitude, 8 segments, even bits inverted)."""
    value = samples.astype(np.int32) >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    mantissa = (magnitude >> shift) & 0x0F
    code = (np.minimum(segment, 7) << 4) | np.where(segment >= 8, 0x0F, mantissa)
    mask = np.where(negative, 0x55, 0xD5)
    out: _Bytes = (code ^ mask).astype(np.uint8)
    return out.tobytes()


_CODERS: Final = {"ulaw": ulaw, "alaw": alaw}


class G711Encoder:
    """8 kHz G.711, raw (what telephony sockets carry) or in WAV (format tag 7 or 6), the
    voice's audio resampled on the way as one continuous stream."""

    def __init__(self, law: str, input_rate: int, wav: bool = False) -> None:
        if law not in _CODERS:
            raise ValueError(f"unknown G.711 law {law!r}; expected one of {LAWS}")
        self.rate = G711_RATE
        self._law = law
        self._code = _CODERS[law]
        self._samples = ResampledSamples(input_rate, G711_RATE)
        self._header_due = wav
        self._written = 0
        self._done = False

    def _out(self, samples: Int16Array) -> bytes:
        data = self._code(samples) if samples.size else b""
        self._written += len(data)
        if data and self._header_due:
            self._header_due = False
            return self._header(None) + data
        return data

    def _header(self, size: int | None) -> bytes:
        tag = WAV_FORMAT_TAG[self._law]
        return wav_header(G711_RATE, sample_width=1, data_size=size, format_tag=tag)

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise RuntimeError("encoder was already flushed")
        return self._out(self._samples.take(pcm))

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        tail = self._out(self._samples.drain())
        if self._header_due:  # no audio at all: an exact, empty file
            self._header_due = False
            return self._header(0)
        return tail
