"""Subtitles from timed words: WebVTT and SRT.

A cue holds consecutive words of one sentence, at most `MAX_CUE_CHARS` characters and
`MAX_CUE_SECONDS` long, and shows the request's own text for them: the punctuation that
follows its last word included, runs of whitespace and control characters as one space.
A cue runs from its first word's start to its last word's end, so cues never overlap;
words espeak does not say (no duration) ride in the cue of their neighbours, and a cue of
nothing but those is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from tts_service.engine.words import Word

CaptionFormat = Literal["vtt", "srt"]
CAPTION_FORMATS: Final[tuple[str, ...]] = ("vtt", "srt")
CAPTION_CONTENT_TYPES: Final[dict[str, str]] = {
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
}

MAX_CUE_CHARS = 84
"""Two lines of 42 characters, the usual subtitle limit."""
MAX_CUE_SECONDS = 7.0

# Runs of whitespace and control characters: a cue is one line of plain text.
_SPACE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def cues(sentences: Sequence[Sequence[Word]], text: str) -> list[Cue]:
    """The cues for a request's words, grouped by sentence."""
    found: list[Cue] = []
    for words in sentences:
        for group in _groups(words, text):
            cue = Cue(group[0].start, group[-1].end, _shown(group, text))
            if cue.end > cue.start and cue.text:
                found.append(cue)
    return found


def _groups(words: Sequence[Word], text: str) -> Iterator[list[Word]]:
    group: list[Word] = []
    for word in words:
        if group:
            longer = len(_shown([*group, word], text)) > MAX_CUE_CHARS
            later = word.end - group[0].start > MAX_CUE_SECONDS
            if longer or later:
                yield group
                group = []
        group.append(word)
    if group:
        yield group


def _shown(group: Sequence[Word], text: str) -> str:
    """The text from the first word to the last, with what sticks to the last word's end
    (a full stop, a closing quote)."""
    end = group[-1].char_end
    while end < len(text) and not text[end].isspace():
        end += 1
    return _SPACE.sub(" ", text[group[0].char_start : end]).strip()


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _vtt_text(text: str) -> str:
    # A cue's payload is HTML-like: "&" and "<" are markup, and "-->" would end the line.
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped


def webvtt(found: Sequence[Cue]) -> str:
    lines = ["WEBVTT", ""]
    for number, cue in enumerate(found, 1):
        lines += [
            str(number),
            f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}",
            _vtt_text(cue.text),
            "",
        ]
    return "\n".join(lines)


def srt(found: Sequence[Cue]) -> str:
    lines: list[str] = []
    for number, cue in enumerate(found, 1):
        lines += [
            str(number),
            f"{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}",
            cue.text.replace("-->", "->"),
            "",
        ]
    return "\n".join(lines)


def render(fmt: str, sentences: Sequence[Sequence[Word]], text: str) -> str:
    """The caption file in `fmt` ("vtt" or "srt")."""
    found = cues(sentences, text)
    return webvtt(found) if fmt == "vtt" else srt(found)
