"""What each encoder costs against synthesis, timed in this process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tts_service.audio.encoders import AUDIO_FORMATS, make_encoder
from tts_service.bench.errors import BenchError
from tts_service.bench.serial import SerialPiper

COMPRESSED_FORMATS = ("mp3", "opus", "aac")
RESAMPLED_RATES = (8000, 16000, 44100, 48000)
"""Raw PCM at these rates: the resampler's cost alone (rows `pcm@<rate>`)."""
ENCODINGS = (*AUDIO_FORMATS, *(f"pcm@{rate}" for rate in RESAMPLED_RATES))


def encode_seconds(fmt: str, pcm: Sequence[bytes], rate: int) -> float:
    """Time to encode `pcm` sentence by sentence with a fresh streaming encoder (`pcm@R`:
    raw PCM resampled to R)."""
    started = time.perf_counter()
    name, _, to_rate = fmt.partition("@")
    encoder = make_encoder(name, rate, int(to_rate) if to_rate else None)
    size = sum(len(encoder.encode(part)) for part in pcm) + len(encoder.flush())
    if size == 0:
        raise BenchError(f"the {fmt} encoder produced no bytes")
    return time.perf_counter() - started


@dataclass(frozen=True)
class EncodeResult:
    audio_s: float
    synth_s: float
    """Median serial synthesis time of the encoded sentences."""
    encode_s: dict[str, float]
    """Median encoding time per format."""


def measure_encoding(serial: SerialPiper, text: str, sentences: int, repeats: int) -> EncodeResult:
    """Synthesis and each encoder take turns, so outside load hits both alike."""
    synth: list[float] = []
    encode: dict[str, list[float]] = {fmt: [] for fmt in ENCODINGS}
    pcm: list[bytes] = []
    for _ in range(repeats):
        pcm, seconds = serial.first_sentences(text, sentences)
        synth.append(seconds)
        for fmt in ENCODINGS:
            encode[fmt].append(encode_seconds(fmt, pcm, serial.sample_rate))
    return EncodeResult(
        audio_s=sum(len(part) for part in pcm) / 2 / serial.sample_rate,
        synth_s=statistics.median(synth),
        encode_s={fmt: statistics.median(times) for fmt, times in encode.items()},
    )
