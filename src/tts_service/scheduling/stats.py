"""The scheduler's running figures: totals, counters and recent durations for percentiles
(what `Scheduler.stats()`, /health and the metrics gauges report)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TOTALS = (
    "submitted",
    "completed",
    "failed",
    "rejected",
    "timed_out",
    "cancelled",
    "stalled",
    "sentences",
)


@dataclass
class Window:
    """Recent samples of one duration, for percentiles."""

    values: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def add(self, value: float) -> None:
        self.values.append(value)

    def summary(self) -> dict[str, float | None]:
        if not self.values:
            return {"p50": None, "p95": None, "p99": None}
        ordered = sorted(self.values)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

        return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


@dataclass
class Figures:
    """Counts and durations since the scheduler started; changed under its lock."""

    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOTALS, 0))
    latency: Window = field(default_factory=Window)
    """Submission to the end, of requests that completed."""
    queue_wait: Window = field(default_factory=Window)
    first_audio: Window = field(default_factory=Window)
    solo_sentences: int = 0
    """Sentences that ran on a voice's all-cores session."""
    express_sentences: int = 0
    """First sentences that ran on the express lane while every worker was busy."""
    batches: int = 0
    """Model runs of more than one sentence."""
    batched_sentences: int = 0

    def report(self) -> dict[str, Any]:
        """The figures as `Scheduler.stats()` reports them."""
        return {
            "solo_sentences": self.solo_sentences,
            "express_sentences": self.express_sentences,
            "batches": self.batches,
            "batched_sentences": self.batched_sentences,
            "totals": dict(self.totals),
            "latency_seconds": self.latency.summary(),
            "queue_wait_seconds": self.queue_wait.summary(),
            "first_audio_seconds": self.first_audio.summary(),
        }
