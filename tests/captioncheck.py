"""Strict parsers for the caption files the server writes, and the check that their cues
say what the JSON words say. Anything out of shape fails: a missing header, a cue number
out of sequence, a timestamp without three digits of milliseconds, a blank line inside a
cue, an end before its start, cues that overlap or run backwards."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
_SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
_VTT_TIMING = re.compile(rf"^{_VTT_TIME} --> {_VTT_TIME}$")
_SRT_TIMING = re.compile(rf"^{_SRT_TIME} --> {_SRT_TIME}$")


@dataclass(frozen=True)
class ParsedCue:
    start: float
    end: float
    text: str


def _seconds(parts: Sequence[str]) -> float:
    hours, minutes, seconds, millis = (int(part) for part in parts)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _blocks(body: str) -> list[list[str]]:
    assert "\r" not in body, "line ends must be \\n"
    assert body.endswith("\n"), "the file must end with a line end"
    blocks = [block.split("\n") for block in body.rstrip("\n").split("\n\n")]
    for block in blocks:
        assert all(line.strip() for line in block), f"a blank line inside a cue: {block}"
    return blocks


def _cues(blocks: list[list[str]], timing: re.Pattern[str], vtt: bool) -> list[ParsedCue]:
    cues: list[ParsedCue] = []
    for number, block in enumerate(blocks, 1):
        assert len(block) >= 3, f"cue {number}: needs number, timing and text: {block}"
        assert block[0] == str(number), f"cue {number} is numbered {block[0]!r}"
        match = timing.match(block[1])
        assert match, f"cue {number}: bad timing line {block[1]!r}"
        start, end = _seconds(match.groups()[:4]), _seconds(match.groups()[4:])
        assert end > start, f"cue {number} ends at {end} before it starts at {start}"
        text = " ".join(block[2:])
        assert "-->" not in text, f"cue {number}: '-->' in its text"
        if vtt:
            assert "<" not in text and not re.search(r"&(?!amp;|lt;|gt;)", text), text
            text = html.unescape(text)
        if cues:
            assert start >= cues[-1].end, f"cue {number} overlaps the one before"
        cues.append(ParsedCue(start, end, text))
    return cues


def parse_vtt(body: str) -> list[ParsedCue]:
    """A WebVTT file of numbered cues (the subset the server writes), strictly."""
    blocks = _blocks(body)
    assert blocks[0] == ["WEBVTT"], f"no WEBVTT header: {blocks[0]}"
    return _cues(blocks[1:], _VTT_TIMING, vtt=True)


def parse_srt(body: str) -> list[ParsedCue]:
    """A SubRip file, strictly."""
    return _cues(_blocks(body), _SRT_TIMING, vtt=False)


def check_cues_match_words(cues: Sequence[ParsedCue], words: Sequence[dict[str, Any]]) -> None:
    """Each cue starts when its first word starts and ends when its last word ends (to the
    millisecond), shows those words in order, and every spoken word is in exactly one cue."""
    spoken = [w for w in words if w["end"] > w["start"]]
    at = 0
    for cue in cues:
        inside = [
            w for w in spoken if cue.start - 5e-4 <= w["start"] and w["end"] <= cue.end + 5e-4
        ]
        assert inside, f"cue {cue} holds no word"
        assert inside[0] is spoken[at], f"cue {cue} skips {spoken[at]}"
        assert abs(cue.start - inside[0]["start"]) < 1e-3
        assert abs(cue.end - inside[-1]["end"]) < 1e-3
        position = 0
        for word in inside:
            found = cue.text.find(word["text"], position)
            assert found >= 0, f"cue {cue.text!r} lacks {word['text']!r} in order"
            position = found + len(word["text"])
        at += len(inside)
    assert at == len(spoken), f"{len(spoken) - at} spoken words are in no cue"
