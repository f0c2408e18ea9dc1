"""The latency rows: what a short request waits beside long ones, and what a request meets
on a server that sat idle, each as a ratio to a reference measured in the same run.

- A short (one-sentence) request's p95 beside 1, 4, 12 and 32 long clients, every client
  on its own address, over HTTP and over Wyoming, against the same request alone on the
  idle server (median). Goal: at most 2x alone.
- First audio of a 20-sentence streamed text after 3 s idle, against in-process Piper's
  first sentence of the same text. Goal: at most 1x.
- A lone one-sentence request after 3 s idle (its whole time), against in-process Piper
  synthesizing the same sentence. Goal: at most 1.15x.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tts_service.bench.first_audio import FirstAudio
from tts_service.bench.goals import Goal
from tts_service.bench.stats import percentile_of, ratio
from tts_service.bench.table import format_percent, format_ratio, format_seconds, format_table

GOAL_UNDER_LOAD = Goal("<=", 2.0)
GOAL_IDLE_FIRST_AUDIO = Goal("<=", 1.0)
GOAL_IDLE_SENTENCE = Goal("<=", 1.15)


def median_of(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class ShortUnderLoad:
    """Short requests sent while `long_clients` long ones kept the server busy."""

    long_clients: int
    short_s: list[float] = field(default_factory=list)
    """Each served short request's whole time."""
    refused: int = 0
    """Short requests the server refused: never within the goal."""

    @property
    def p95(self) -> float | None:
        return percentile_of(self.short_s, 0.95)

    def to_dict(self) -> dict[str, Any]:
        return {"short_s": self.short_s, "short_p95_s": self.p95, "refused": self.refused}


@dataclass
class TransportLatency:
    """One transport's short requests: alone on the idle server, and under each load."""

    name: str
    alone_s: list[float] = field(default_factory=list)
    loads: dict[int, ShortUnderLoad] = field(default_factory=dict)
    """Long clients -> what the short requests took beside them."""

    @property
    def alone(self) -> float | None:
        return median_of(self.alone_s)

    def ratio(self, long_clients: int) -> float | None:
        return ratio(self.loads[long_clients].p95, self.alone)

    def verdict(self, long_clients: int) -> str:
        if self.loads[long_clients].refused:
            return "MISS"
        return GOAL_UNDER_LOAD.verdict(self.ratio(long_clients))

    def to_dict(self) -> dict[str, Any]:
        return {
            "alone_s": self.alone_s,
            "alone_median_s": self.alone,
            "by_long_clients": {
                str(n): {
                    **load.to_dict(),
                    "ratio_to_alone": self.ratio(n),
                    "verdict": self.verdict(n),
                }
                for n, load in self.loads.items()
            },
        }


@dataclass
class LatencyReport:
    transports: list[TransportLatency]
    idle_s: float
    """How long the server sat idle before each idle-row request."""
    first_audio_s: list[float] = field(default_factory=list)
    """The service's first audio of the 20-sentence streamed text, after idle."""
    piper_first_audio_s: list[float] = field(default_factory=list)
    """In-process Piper's first sentence of the same text."""
    sentence_s: list[float] = field(default_factory=list)
    """A lone one-sentence request's whole time, after idle."""
    piper_sentence_s: list[float] = field(default_factory=list)
    """In-process Piper synthesizing the same sentence."""
    noise: float | None = None
    """Other processes' share of the CPU meanwhile."""
    meta: dict[str, Any] = field(default_factory=dict)
    first_audio: FirstAudio | None = None
    """First audio of a long sentence and of 20 sentences on every streaming transport."""

    @property
    def first_audio_ratio(self) -> float | None:
        return ratio(median_of(self.first_audio_s), median_of(self.piper_first_audio_s))

    @property
    def sentence_ratio(self) -> float | None:
        return ratio(median_of(self.sentence_s), median_of(self.piper_sentence_s))

    def goals(self) -> list[dict[str, Any]]:
        checks = [
            (
                f"short p95 beside {n} long / alone, {t.name}",
                t.ratio(n),
                GOAL_UNDER_LOAD,
                t.verdict(n),
            )
            for t in self.transports
            for n in t.loads
        ]
        idle = f"{self.idle_s:g} s idle"
        checks += [
            (
                f"first audio after {idle} / Piper",
                self.first_audio_ratio,
                GOAL_IDLE_FIRST_AUDIO,
                GOAL_IDLE_FIRST_AUDIO.verdict(self.first_audio_ratio),
            ),
            (
                f"one sentence after {idle} / Piper",
                self.sentence_ratio,
                GOAL_IDLE_SENTENCE,
                GOAL_IDLE_SENTENCE.verdict(self.sentence_ratio),
            ),
        ]
        if self.first_audio is not None:
            checks += [(n, v, g, g.verdict(v)) for n, v, g in self.first_audio.goals()]
        return [
            {"name": name, "value": value, "goal": goal.describe(), "verdict": verdict}
            for name, value, goal, verdict in checks
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.meta,
            "idle_s": self.idle_s,
            "transports": {t.name: t.to_dict() for t in self.transports},
            "first_audio_after_idle_s": self.first_audio_s,
            "piper_first_audio_s": self.piper_first_audio_s,
            "first_audio_ratio": self.first_audio_ratio,
            "sentence_after_idle_s": self.sentence_s,
            "piper_sentence_s": self.piper_sentence_s,
            "sentence_ratio": self.sentence_ratio,
            "first_audio": self.first_audio.to_dict() if self.first_audio else None,
            "foreign_cpu": self.noise,
            "goals": self.goals(),
        }


def _samples(served: int, refused: int = 0) -> str:
    return f"{served} ({refused} refused)" if refused else str(served)


def _judged(value: float | None, verdict: str) -> str:
    return "-" if value is None else f"{format_ratio(value)} {verdict}"


def latency_rows(report: LatencyReport) -> list[list[str]]:
    sec = format_seconds
    rows: list[list[str]] = []
    for t in report.transports:
        clients = "long connection(s)" if t.name == "Wyoming" else "long client(s)"
        alone = [f"{t.name}: short alone, idle", _samples(len(t.alone_s)), sec(t.alone)]
        rows.append([*alone, "", "", ""])
        for n, load in t.loads.items():
            rows.append(
                [
                    f"  short p95 beside {n} {clients}",
                    _samples(len(load.short_s), load.refused),
                    sec(load.p95),
                    sec(t.alone),
                    _judged(t.ratio(n), t.verdict(n)),
                    GOAL_UNDER_LOAD.describe(),
                ]
            )
    idle = f"{report.idle_s:g} s idle"
    for label, service, piper, value, goal in (
        (
            f"first audio, 20 sentences, after {idle}",
            report.first_audio_s,
            report.piper_first_audio_s,
            report.first_audio_ratio,
            GOAL_IDLE_FIRST_AUDIO,
        ),
        (
            f"one sentence, after {idle}",
            report.sentence_s,
            report.piper_sentence_s,
            report.sentence_ratio,
            GOAL_IDLE_SENTENCE,
        ),
    ):
        rows.append(
            [
                label,
                _samples(len(service)),
                sec(median_of(service)),
                sec(median_of(piper)),
                _judged(value, goal.verdict(value)),
                goal.describe(),
            ]
        )
    rows += first_audio_rows(report.first_audio) if report.first_audio is not None else []
    rows.append(["other processes' CPU (noise)", "", format_percent(report.noise), "", "", ""])
    return rows


def first_audio_rows(found: FirstAudio) -> list[list[str]]:
    """First audio per text and transport, against Piper's whole first sentence."""
    rows = []
    for name, value, goal in found.goals():
        text = "sentence" if "26-word" in name else "text"
        transport = name.split(", ")[-1].split(" / ")[0]
        mine = found.service_s.get(text, {}).get(transport, [])
        rows.append(
            [
                name.removesuffix(" / Piper"),
                _samples(len(mine)),
                format_seconds(median_of(mine)),
                format_seconds(median_of(found.piper_s.get(text, []))),
                _judged(value, goal.verdict(value)),
                goal.describe(),
            ]
        )
    return rows


def render_latency(report: LatencyReport) -> str:
    sizing = report.meta.get("service", {})
    size = f"{sizing.get('workers', '?')} x {sizing.get('threads_per_worker', '?')}"
    header = [f"latency (fair, {size}, defaults)", "samples", "measured", "reference"]
    return "\n".join(
        [
            format_table([*header, "ratio", "goal"], latency_rows(report)),
            "reference: the short request alone on the idle server (p95 rows); in-process "
            "Piper's first sentence of the same text, and the same sentence (idle and first "
            "audio rows)",
        ]
    )
