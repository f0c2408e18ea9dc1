"""A goal for one ratio, and its PASS/MISS verdict."""

from __future__ import annotations

from dataclasses import dataclass

from tts_service.bench.table import format_ratio


@dataclass(frozen=True)
class Goal:
    """A target for one ratio: `value <= limit` or `value >= limit`."""

    op: str
    limit: float
    aim: float | None = None
    """A softer, better target shown next to the limit (e.g. aim 1.1x for >= 1.0x)."""

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"goal operator must be <= or >=, got {self.op!r}")

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def verdict(self, value: float | None) -> str:
        met = self.met(value)
        return "n/a" if met is None else "PASS" if met else "MISS"

    def describe(self) -> str:
        text = f"{self.op} {format_ratio(self.limit)}"
        return f"{text} (aim {format_ratio(self.aim)})" if self.aim is not None else text
