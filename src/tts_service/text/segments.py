"""What the front-end hands the phonemizer: spoken segments, each with the silence after
it and its pace."""

from __future__ import annotations

from dataclasses import dataclass

from tts_service.text.mapped import MappedText

MAX_PAUSE = 10.0
"""Longest single pause, in seconds (as Google's and Amazon's SSML cap a break)."""


@dataclass(frozen=True)
class Mark:
    """An SSML `<mark name>` at character `at` of the request: reached where the first
    word after it starts."""

    name: str
    at: int


@dataclass(frozen=True)
class Segment:
    """Text read in one go (raw `[[ phonemes ]]` blocks in it pass to Piper as they are)."""

    text: MappedText
    pause: float | None = None
    """Seconds of silence after its last sentence; None: the request's sentence_silence."""
    rate: float = 1.0
    """Speed factor (SSML prosody rate): the length scale is divided by it."""
    marks: tuple[Mark, ...] = ()

    @property
    def speakable(self) -> bool:
        return bool(self.text.text.strip())


def with_pause(segment: Segment, seconds: float) -> Segment:
    """`segment` followed by `seconds` more silence (pauses in a row add up)."""
    before = segment.pause or 0.0
    return Segment(segment.text, min(MAX_PAUSE, before + seconds), segment.rate, segment.marks)
