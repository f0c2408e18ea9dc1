"""How even the loudness is, for `tts-service bench`: assistant-style sentences of very
different length, spoken with Piper's per-sentence peak normalisation and with the
service's default (every sentence at the loudness target, peaks limited), each measured
by ITU-R BS.1770 (engine/loudness.py). Also what levelling costs against synthesis (this
process's CPU time)."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tts_service.bench.goals import Goal
from tts_service.bench.table import format_percent, format_table
from tts_service.engine.loudness import LoudnessTarget, integrated_loudness, leveled
from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.voices.loaded import VoiceFiles

SENTENCES = (
    "Warning!",
    "Yes.",
    "Sorry, I didn't catch that.",
    "Turning on the kitchen lights.",
    "Your timer is done.",
    "The weather today will be mostly sunny with a high of twenty three degrees and light "
    "winds from the west.",
    "I have added milk, eggs and bread to your shopping list, and I will remind you "
    "tomorrow morning at eight.",
)
GOAL_SPREAD = Goal("<=", 2.0)
"""LU between the loudest and the quietest sentence: within +-1 LU of the target."""
GOAL_LEVEL_COST = Goal("<=", 0.03)
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)


@dataclass(frozen=True)
class Mode:
    lufs: tuple[float, ...]
    """Each sentence's integrated loudness."""
    peak_dbfs: float
    """The highest sample of all of them."""

    @property
    def spread(self) -> float:
        return max(self.lufs) - min(self.lufs)


@dataclass(frozen=True)
class LoudnessSpread:
    peak: Mode
    loudness: Mode
    target: float
    level_ratio: float
    """CPU time of levelling (measure, gain, limiter) / synthesis, same sentences."""

    def goals(self) -> list[tuple[str, float, Goal]]:
        return [
            ("loudness spread, LU", self.loudness.spread, GOAL_SPREAD),
            ("levelling / synthesis", self.level_ratio, GOAL_LEVEL_COST),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "peak_spread_lu": self.peak.spread,
            "loudness_spread_lu": self.loudness.spread,
        }


def _mode(voice: Voice, ids: list[list[int]], options: SynthesisOptions) -> Mode:
    levels, peak = [], 0
    for one in ids:
        pcm = np.frombuffer(voice.synthesize(one, options).pcm, dtype=np.int16)
        levels.append(integrated_loudness(pcm.astype(np.float64) / 32768.0, voice.sample_rate))
        peak = max(peak, int(np.abs(pcm.astype(np.int32)).max()))
    return Mode(tuple(levels), 20 * math.log10(max(peak, 1) / 32768.0))


def _level_ratio(voice: Voice, ids: list[list[int]], target: LoudnessTarget) -> float:
    """Levelling's CPU time against synthesis (in peak mode, which levels nothing), on the
    same sentences' audio."""
    synth = level = 0.0
    peak = dataclasses.replace(QUIET, normalization="peak")
    for one in ids:
        started = time.process_time()
        pcm = np.frombuffer(voice.synthesize(one, peak).pcm, dtype=np.int16)
        middle = time.process_time()
        leveled(pcm.astype(np.float64) / 32768.0, voice.sample_rate, target)
        synth, level = synth + middle - started, level + time.process_time() - middle
    return level / synth if synth > 0 else math.nan


def measure_loudness(files: VoiceFiles, threads: int, target: float = -18.0) -> LoudnessSpread:
    voice = Voice.load(files.name, files.model, files.config, threads)
    ids = [voice.phonemize(text)[0] for text in SENTENCES]
    loud = dataclasses.replace(QUIET, loudness_target=target)
    return LoudnessSpread(
        peak=_mode(voice, ids, dataclasses.replace(QUIET, normalization="peak")),
        loudness=_mode(voice, ids, loud),
        target=target,
        level_ratio=_level_ratio(voice, ids, LoudnessTarget(lufs=target)),
    )


def render_loudness(spread: LoudnessSpread) -> str:
    rows = [
        [
            name,
            f"{min(mode.lufs):.1f} .. {max(mode.lufs):.1f}",
            f"{mode.spread:.1f}",
            f"{mode.peak_dbfs:.1f}",
        ]
        for name, mode in (("peak (Piper)", spread.peak), ("loudness (default)", spread.loudness))
    ]
    cost = spread.level_ratio
    return "\n".join(
        [
            f"Loudness of {len(SENTENCES)} sentences of 1 to 19 words (BS.1770, target "
            f"{spread.target:.0f} LUFS; goal: spread <= {GOAL_SPREAD.limit:.0f} LU "
            f"{GOAL_SPREAD.verdict(spread.loudness.spread)}):",
            format_table(["normalisation", "LUFS", "spread LU", "max sample dBFS"], rows),
            f"Levelling costs {format_percent(cost)} of synthesis (goal "
            f"{GOAL_LEVEL_COST.describe()} {GOAL_LEVEL_COST.verdict(cost)}).",
        ]
    )
