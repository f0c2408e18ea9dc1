"""The main bench's report: ratios to serial Piper and fifo, verdicts, the tables, JSON."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tts_service.bench.chunk_rows import ChunkRows, render_chunk_rows
from tts_service.bench.encoding import COMPRESSED_FORMATS
from tts_service.bench.frontend_rows import (
    FrontendCost,
    frontend_dicts,
    frontend_goals,
    render_frontend,
)
from tts_service.bench.goals import Goal
from tts_service.bench.latency_report import LatencyReport, render_latency
from tts_service.bench.loudness import LoudnessSpread, render_loudness
from tts_service.bench.results import TargetResult
from tts_service.bench.rounds import round_ratios
from tts_service.bench.stats import ratio
from tts_service.bench.table import format_percent, format_ratio, format_seconds, format_table
from tts_service.bench.words import WordCost

GOAL_THROUGHPUT = Goal(">=", 1.0, aim=1.1)
GOAL_SHORT_P95 = Goal("<=", 1 / 20)
GOAL_FIRST_AUDIO = Goal("<=", 1.5)
GOAL_ENCODE = Goal("<=", 0.1)
GOAL_WORDS = Goal("<=", 0.05)


@dataclass
class BenchReport:
    serial: TargetResult
    policies: dict[str, TargetResult]
    encode_s: dict[str, float]
    encode_synth_s: float
    """Serial synthesis time of the sentences the encoders were timed on."""
    encode_audio_s: float
    phonemize_s: float
    meta: dict[str, Any]
    words: WordCost | None = None
    """What word timestamps add to synthesis."""
    loudness: LoudnessSpread | None = None
    """How even the loudness is, peak against loudness normalisation."""
    chunks: ChunkRows | None = None
    """The chunked decoder in process: first chunk, CPU, exactness."""
    frontend: list[FrontendCost] | None = None
    """The text front-end's share of a request."""
    memory: str = ""
    """The memory rows, rendered (memory.py); their figures are in meta["memory"]."""
    latency: LatencyReport | None = None
    """The latency rows, against a default service of their own."""
    cache: str = ""
    """The repeated-phrase rows, rendered (cache.py); their figures are in meta["cache"]."""

    def throughput_ratio(self, name: str) -> float | None:
        """Median of the per-round ratios: one round hit by an outside burst can't swing it."""
        rounds = self.throughput_spread(name)
        if rounds:
            return statistics.median(rounds)
        result = self.policies.get(name)
        return ratio(result.throughput if result else None, self.serial.throughput)

    def throughput_spread(self, name: str) -> list[float]:
        result = self.policies.get(name)
        return round_ratios(result.rounds, self.serial.rounds) if result else []

    def batching_ratio(self, name: str) -> float | None:
        """A batching target's throughput against the same target unbatched, as the median
        of per-round ratios (None unless both ran)."""
        base = name.split("+b")[0]
        result, unbatched = self.policies.get(name), self.policies.get(base)
        if base == name or result is None or unbatched is None:
            return None
        rounds = round_ratios(result.rounds, unbatched.rounds)
        return statistics.median(rounds) if rounds else None

    def short_p95_ratio(self, name: str) -> float | None:
        result, fifo = self.policies.get(name), self.policies.get("fifo")
        return ratio(result.short_p95 if result else None, fifo.short_p95 if fifo else None)

    def first_audio_ratio(self, name: str) -> float | None:
        result = self.policies.get(name)
        return ratio(result.first_audio if result else None, self.serial.first_audio)

    def mp3_first_ratio(self, name: str) -> float | None:
        result = self.policies.get(name)
        return ratio(result.mp3_first_byte if result else None, self.serial.first_audio)

    def encode_ratio(self, fmt: str) -> float | None:
        return ratio(self.encode_s.get(fmt), self.encode_synth_s)

    def goals(self) -> list[dict[str, Any]]:
        """The verdicts, judged on the fair policy (the default)."""
        checks: list[tuple[str, float | None, Goal]] = [
            ("throughput fair / serial", self.throughput_ratio("fair"), GOAL_THROUGHPUT),
            ("short p95 fair / fifo", self.short_p95_ratio("fair"), GOAL_SHORT_P95),
            ("first audio fair / serial", self.first_audio_ratio("fair"), GOAL_FIRST_AUDIO),
            ("mp3 first byte fair / serial", self.mp3_first_ratio("fair"), GOAL_FIRST_AUDIO),
        ]
        checks += [
            (f"{fmt} encode / synthesis", self.encode_ratio(fmt), GOAL_ENCODE)
            for fmt in COMPRESSED_FORMATS
        ]
        words = self.words.ratio if self.words is not None else None
        checks.append(("word timestamps / synthesis", words, GOAL_WORDS))
        checks += self.loudness.goals() if self.loudness is not None else []
        checks += self.chunks.goals() if self.chunks is not None else []
        checks += frontend_goals(self.frontend) if self.frontend is not None else []
        verdicts = [
            {"name": name, "value": value, "goal": goal.describe(), "verdict": goal.verdict(value)}
            for name, value, goal in checks
        ]
        return verdicts + (self.latency.goals() if self.latency is not None else [])

    def to_dict(self) -> dict[str, Any]:
        policies = {
            name: {
                **result.to_dict(),
                "throughput_ratio": self.throughput_ratio(name),
                "throughput_round_ratios": self.throughput_spread(name),
                "throughput_ratio_to_unbatched": self.batching_ratio(name),
                "short_p95_ratio_to_fifo": self.short_p95_ratio(name),
                "first_audio_ratio": self.first_audio_ratio(name),
                "mp3_first_byte_ratio": self.mp3_first_ratio(name),
            }
            for name, result in self.policies.items()
        }
        encode = {
            fmt: {"seconds": secs, "ratio_to_synthesis": self.encode_ratio(fmt)}
            for fmt, secs in self.encode_s.items()
        }
        return {
            **self.meta,
            "serial": {**self.serial.to_dict(), "phonemize_stream_text_s": self.phonemize_s},
            "policies": policies,
            "encode": {
                "synthesis_s": self.encode_synth_s,
                "audio_s": self.encode_audio_s,
                "formats": encode,
            },
            "word_timestamps": self.words.to_dict() if self.words is not None else None,
            "loudness": self.loudness.to_dict() if self.loudness is not None else None,
            "chunked_decoding": self.chunks.to_dict() if self.chunks is not None else None,
            "frontend": frontend_dicts(self.frontend) if self.frontend is not None else None,
            "latency": self.latency.to_dict() if self.latency is not None else None,
            "goals": self.goals(),
        }


def _cell(goal: Goal, value: float | None) -> str:
    return "-" if value is None else f"{format_ratio(value)} {goal.verdict(value)}"


def _spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    return f"{format_ratio(min(values))}-{format_ratio(max(values))}"


def main_rows(report: BenchReport) -> list[list[str]]:
    serial, policies = report.serial, report.policies
    names = list(policies)

    def row(label: str, first: str, cell: Callable[[str], str], goal: str = "") -> list[str]:
        return [label, first, *(cell(name) for name in names), goal]

    def sec(value: float | None) -> str:
        return format_seconds(value)

    batching = [
        row(
            "  ratio to unbatched (median round)",
            "",
            lambda n: format_ratio(report.batching_ratio(n)) if "+b" in n else "",
        )
    ]
    return [
        row(
            "throughput (audio s / wall s)",
            f"{serial.throughput or 0:.2f}",
            lambda n: f"{policies[n].throughput or 0:.2f}",
        ),
        row(
            "  ratio to serial (median round)",
            "1.00x",
            lambda n: _cell(GOAL_THROUGHPUT, report.throughput_ratio(n)),
            GOAL_THROUGHPUT.describe(),
        ),
        row("  per-round ratios", "", lambda n: _spread(report.throughput_spread(n))),
        *(batching if any("+b" in name for name in names) else []),
        row("short p50 under long load", "", lambda n: sec(policies[n].short_p50)),
        row("short p95 under long load", "", lambda n: sec(policies[n].short_p95)),
        row(
            "  short samples / long done",
            "",
            lambda n: f"{len(policies[n].short_latencies_s)} / {policies[n].long_requests_done}",
        ),
        row(
            "  p95 ratio to fifo",
            "",
            lambda n: _cell(GOAL_SHORT_P95, report.short_p95_ratio(n)),
            GOAL_SHORT_P95.describe(),
        ),
        row(
            "first audio, 20 sentences",
            sec(serial.first_audio),
            lambda n: sec(policies[n].first_audio),
        ),
        row(
            "  ratio to serial",
            "1.00x",
            lambda n: _cell(GOAL_FIRST_AUDIO, report.first_audio_ratio(n)),
            GOAL_FIRST_AUDIO.describe(),
        ),
        row("mp3 first byte, streamed", "", lambda n: sec(policies[n].mp3_first_byte)),
        row(
            "  ratio to serial first audio",
            "",
            lambda n: _cell(GOAL_FIRST_AUDIO, report.mp3_first_ratio(n)),
            GOAL_FIRST_AUDIO.describe(),
        ),
        row(
            "other processes' CPU (noise)",
            format_percent(serial.mean_noise),
            lambda n: format_percent(policies[n].mean_noise),
        ),
    ]


def encode_rows(report: BenchReport) -> list[list[str]]:
    rows = []
    for fmt, seconds in report.encode_s.items():
        value = report.encode_ratio(fmt)
        judged = fmt in COMPRESSED_FORMATS
        rows.append(
            [
                fmt,
                format_seconds(seconds),
                format_ratio(value),
                GOAL_ENCODE.describe() if judged else "",
                GOAL_ENCODE.verdict(value) if judged else "",
            ]
        )
    return rows


def word_rows(words: WordCost) -> list[list[str]]:
    return [
        ["synthesis", format_seconds(words.synth_s), "", "", ""],
        [
            "with durations",
            format_seconds(words.synth_timed_s),
            f"{words.model_ratio:+.1%}",
            "",
            "",
        ],
        ["word mapping", format_seconds(words.words_s), f"{words.words_ratio:+.1%}", "", ""],
        [
            "timestamps in all",
            "",
            format_ratio(words.ratio),
            GOAL_WORDS.describe(),
            GOAL_WORDS.verdict(words.ratio),
        ],
    ]


def render(report: BenchReport) -> str:
    header = ["", "serial Piper", *report.policies, "goal (fair)"]
    parts = [
        format_table(header, main_rows(report)),
        f"Encoding {report.encode_audio_s:.1f} s of audio (synthesized serially in "
        f"{report.encode_synth_s:.2f} s), sentence by sentence:",
        format_table(["format", "encode time", "/ synthesis", "goal", ""], encode_rows(report)),
    ]
    if report.words is not None:
        parts += [
            f"Word timestamps, CPU time per sentence ({report.words.sentences} sentences, "
            "voice as it is and with durations taking turns):",
            format_table(["", "time", "/ synthesis", "goal", ""], word_rows(report.words)),
        ]
    if report.loudness is not None:
        parts.append(render_loudness(report.loudness))
    if report.chunks is not None:
        parts.append(render_chunk_rows(report.chunks))
    if report.frontend is not None:
        parts.append(render_frontend(report.frontend))
    if report.latency is not None:
        parts.append(render_latency(report.latency))
    if report.cache:
        parts.append(report.cache)
    if report.memory:
        parts.append(report.memory)
    return "\n\n".join(parts)
