"""Pauses without SSML: the inline `[pause 1s]` form, and silence after commas and
paragraphs.

Why `[pause …]`: square brackets survive chat front-ends, Markdown renderers and HTML
sanitizers that strip `<break/>`; a keyword inside them never occurs in prose, so no
ordinary bracket is taken for one; Kokoro-FastAPI's `[pause:0.5s]` reads the same. Only
`[pause]`, `[pause 700ms]`, `[pause 1.5s]`, `[pause:2]` (seconds) are pauses."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tts_service.text import raw
from tts_service.text.mapped import MappedText
from tts_service.text.segments import MAX_PAUSE, Segment, with_pause

DEFAULT_PAUSE = 0.5
"""`[pause]` alone, and SSML's `<break/>` (its "medium" strength)."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*$", re.IGNORECASE)
INLINE_PAUSE = re.compile(r"\[pause(?:[\s:]+(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?)?\s*\]", re.IGNORECASE)
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")
_COMMA = re.compile(r"(?<=[,;，、])\s+")


def seconds(value: str, what: str = "pause") -> float:
    """`"700ms"`, `"1.5s"` or `"2"` (seconds) in seconds, at most MAX_PAUSE."""
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{what} '{value}' is not a duration such as 500ms or 1.5s")
    number = float(match.group(1))
    found = number / 1000 if (match.group(2) or "s").lower() == "ms" else number
    return min(found, MAX_PAUSE)


def split_inline(text: MappedText, base: Segment) -> list[Segment]:
    """`text` cut at its inline pauses, each piece a segment like `base` with the pause
    after it. Raw `[[ phonemes ]]` blocks are never looked into."""
    segments: list[Segment] = []
    done = 0
    for match in INLINE_PAUSE.finditer(text.text):
        if raw.inside(text.text, match.start()):
            continue
        given = match.group(1)
        pause = DEFAULT_PAUSE if given is None else seconds(given + (match.group(2) or "s"))
        piece = Segment(text.slice(done, match.start()), None, base.rate)
        segments.append(with_pause(piece, pause))
        done = match.end()
    segments.append(Segment(text.slice(done, len(text)), base.pause, base.rate, base.marks))
    return segments


def split_at(segment: Segment, pattern: re.Pattern[str], pause: float) -> Iterator[Segment]:
    """`segment` cut after each match of `pattern` (outside raw blocks), with `pause`
    seconds after each piece but the last, which keeps the segment's own pause."""
    text = segment.text
    done = 0
    for match in pattern.finditer(text.text):
        if raw.inside(text.text, match.start()) or not text.text[done : match.start()].strip():
            continue
        yield Segment(text.slice(done, match.end()), min(pause, MAX_PAUSE), segment.rate)
        done = match.end()
    yield Segment(text.slice(done, len(text)), segment.pause, segment.rate, segment.marks)


def comma_and_paragraph(
    segments: list[Segment], comma: float | None, paragraph: float | None
) -> list[Segment]:
    """Silence after each paragraph and comma, as the request asks."""
    if paragraph is not None:
        segments = [piece for s in segments for piece in split_at(s, _PARAGRAPH, paragraph)]
    if comma is not None:
        segments = [piece for s in segments for piece in split_at(s, _COMMA, comma)]
    return segments
