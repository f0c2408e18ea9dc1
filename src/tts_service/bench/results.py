"""Everything the main bench measures for serial Piper or one target."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from tts_service.bench.rounds import Sample, throughput
from tts_service.bench.stats import percentile_of


@dataclass
class TargetResult:
    """Everything measured for serial Piper or one policy."""

    name: str
    rounds: list[Sample] = field(default_factory=list)
    short_latencies_s: list[float] = field(default_factory=list)
    long_requests_done: int = 0
    first_audio_s: list[float] = field(default_factory=list)
    mp3_first_byte_s: list[float] = field(default_factory=list)
    noise: list[float] = field(default_factory=list)
    """Other processes' share of the CPU during this target's measurements."""

    @property
    def throughput(self) -> float | None:
        return throughput(self.rounds)

    @property
    def short_p50(self) -> float | None:
        return percentile_of(self.short_latencies_s, 0.5)

    @property
    def short_p95(self) -> float | None:
        return percentile_of(self.short_latencies_s, 0.95)

    @property
    def first_audio(self) -> float | None:
        return statistics.median(self.first_audio_s) if self.first_audio_s else None

    @property
    def mp3_first_byte(self) -> float | None:
        return statistics.median(self.mp3_first_byte_s) if self.mp3_first_byte_s else None

    @property
    def mean_noise(self) -> float | None:
        return statistics.fmean(self.noise) if self.noise else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": [vars(sample) for sample in self.rounds],
            "throughput": self.throughput,
            "short_latencies_s": self.short_latencies_s,
            "short_p50_s": self.short_p50,
            "short_p95_s": self.short_p95,
            "long_requests_done": self.long_requests_done,
            "first_audio_s": self.first_audio_s,
            "first_audio_median_s": self.first_audio,
            "mp3_first_byte_s": self.mp3_first_byte_s,
            "mp3_first_byte_median_s": self.mp3_first_byte,
            "foreign_cpu_mean": self.mean_noise,
        }
