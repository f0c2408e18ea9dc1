"""How one request wants its sentences spoken: the engine's per-request settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request settings. `None` means: the voice's own default."""

    speaker_id: int | None = None
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    volume: float = 1.0
    sentence_silence: float = 0.0
    """Seconds of silence appended after each sentence."""
    normalization: str = "loudness"
    """"loudness": every sentence at `loudness_target` LUFS, peaks limited (loudness.py);
    "peak": Piper's own, each sentence's peak at full scale."""
    loudness_target: float = -18.0
