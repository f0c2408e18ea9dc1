"""The text front-end's rows of `tts-service bench`: for a plain text, an SSML document and
an LLM's Markdown answer (cleaned and normalised), what reading it takes against
phonemizing and synthesizing it (bench/frontend.py), in process, on one thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tts_service.bench.frontend import CASES, measure
from tts_service.bench.goals import Goal
from tts_service.bench.table import format_percent, format_seconds, format_table
from tts_service.engine.voice import Voice
from tts_service.voices.loaded import VoiceFiles

GOAL_FRONTEND = Goal("<=", 0.03)


@dataclass(frozen=True)
class FrontendCost:
    name: str
    chars: int
    front_s: float
    synth_s: float

    @property
    def share(self) -> float:
        return self.front_s / (self.front_s + self.synth_s)


def measure_frontend(files: VoiceFiles, runs: int) -> list[FrontendCost]:
    voice = Voice.load(files.name, files.model, files.config, 1)
    costs = []
    for name, (text, options) in CASES.items():
        front, synth = measure(voice, text, options, runs)
        costs.append(FrontendCost(name, len(text), front, synth))
    return costs


def frontend_goals(costs: list[FrontendCost]) -> list[tuple[str, float, Goal]]:
    return [(f"front-end / request, {cost.name}", cost.share, GOAL_FRONTEND) for cost in costs]


def frontend_dicts(costs: list[FrontendCost]) -> list[dict[str, Any]]:
    return [{**vars(cost), "share": cost.share} for cost in costs]


def render_frontend(costs: list[FrontendCost]) -> str:
    rows = [
        [
            cost.name,
            str(cost.chars),
            format_seconds(cost.front_s),
            format_seconds(cost.synth_s),
            format_percent(cost.share),
            GOAL_FRONTEND.verdict(cost.share),
        ]
        for cost in costs
    ]
    header = ["text", "chars", "front-end", "phonemize + synthesis", "share", "goal <= 3%"]
    return "The text front-end (SSML, clean-up, normalisation, pauses), one thread:\n" + (
        format_table(header, rows)
    )
