"""The chunked decoder's rows of `tts-service bench`, in process, on the service's worker
threads: a 26-word and a 2-word sentence, first chunk against the whole sentence, the CPU
the margins cost, and how far the joined chunks are from the whole (bench/chunking.py)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_service.bench.chunking import LONG_SENTENCE, SHORT_SENTENCE, ChunkCost, measure_chunking
from tts_service.bench.goals import Goal
from tts_service.bench.table import format_ratio, format_seconds, format_table
from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.voice import Voice
from tts_service.voices.loaded import VoiceFiles

GOAL_LSB = Goal("<=", 4.0)


@dataclass(frozen=True)
class ChunkRows:
    threads: int
    long: ChunkCost
    short: ChunkCost

    def goals(self) -> list[tuple[str, float, Goal]]:
        return [("chunked vs whole, most LSB of 16-bit", self.long.max_lsb, GOAL_LSB)]

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "long": self.long.to_dict(), "short": self.short.to_dict()}


def measure_chunk_rows(files: VoiceFiles, threads: int, passes: int) -> ChunkRows:
    with tempfile.TemporaryDirectory() as cache:
        voice = Voice.load(
            files.name,
            files.model,
            files.config,
            threads,
            chunking=ChunkPlan(),
            split_cache=Path(cache),
        )
    return ChunkRows(
        threads,
        measure_chunking(voice, LONG_SENTENCE, passes),
        measure_chunking(voice, SHORT_SENTENCE, passes),
    )


def render_chunk_rows(rows: ChunkRows) -> str:
    table = [
        [
            label,
            format_seconds(cost.first_chunk_s),
            format_seconds(cost.whole_s),
            format_ratio(cost.first_audio_ratio),
            format_ratio(cost.cpu_ratio),
            f"{cost.max_lsb:.2f}",
        ]
        for label, cost in (("26 words", rows.long), ("2 words", rows.short))
    ]
    header = ["sentence", "first chunk", "whole", "ratio", "CPU chunked/whole", "most LSB"]
    return "\n".join(
        [
            f"Chunked decoding in process ({rows.threads} thread(s), as a worker runs it; the "
            f"service uses it for a streamed first sentence of 60 ids or more; goal: most LSB "
            f"{GOAL_LSB.describe()} {GOAL_LSB.verdict(rows.long.max_lsb)}):",
            format_table(header, table),
        ]
    )
