"""Rounds taken in turns: one round's figures, throughput over rounds, who goes first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tts_service.bench.stats import ratio


@dataclass(frozen=True)
class Sample:
    """One throughput round of one target."""

    wall_s: float
    audio_s: float
    foreign_cpu: float | None


def throughput(samples: Sequence[Sample]) -> float | None:
    """Audio seconds per wall second over all of a target's rounds."""
    wall = sum(s.wall_s for s in samples)
    return sum(s.audio_s for s in samples) / wall if wall > 0 else None


def round_ratios(samples: Sequence[Sample], reference: Sequence[Sample]) -> list[float]:
    """Per-round throughput ratios: their spread shows how noisy the run was."""
    ratios = [
        ratio(throughput([s]), throughput([r])) for s, r in zip(samples, reference, strict=True)
    ]
    return [value for value in ratios if value is not None]


def rotation(items: Sequence[Any], offset: int) -> list[Any]:
    """`items` starting at `offset` (wrapping): who goes first changes from round to round."""
    if not items:
        return []
    offset %= len(items)
    return [*items[offset:], *items[:offset]]
