"""Clean-up of a language model's text before it is read: Markdown's marks, code, tables,
emoji and drawing symbols, which espeak would otherwise spell out ("asterisk asterisk").
What is kept keeps its place in the request (MappedText), so word timings still point at
the request's own "Hello" in "**Hello**"."""

from __future__ import annotations

import re
import unicodedata

from tts_service.text import raw
from tts_service.text.mapped import MappedText

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_TABLE_RULE = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", re.MULTILINE
)
_TABLE_EDGE = re.compile(r"^[ \t]*\||\|[ \t]*$", re.MULTILINE)
_TABLE_CELL = re.compile(r"[ \t]*\|[ \t]*")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+|[ \t]+#+[ \t]*$", re.MULTILINE)
_QUOTE = re.compile(r"^[ \t]*(>[ \t]?)+", re.MULTILINE)
_LIST = re.compile(r"^[ \t]*([-*+•‣◦]|\d{1,3}[.)])[ \t]+", re.MULTILINE)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=\S)([^*_\n]+?)(?<=\S)\1(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"`([^`\n]+)`")
_STRAY = re.compile(r"\*+|(?<!\w)#{2,}|(?<!\S)#(?=\s)|`+|~~")
# Emoji and pictographs, dingbats, box drawing, arrows' neighbours (Unicode's "other
# symbol"), with the joiners and selectors that build emoji sequences.
_JOINERS = frozenset("\u200d\ufe0e\ufe0f\u20e3")


def _symbol(char: str) -> bool:
    return char in _JOINERS or unicodedata.category(char) == "So" or 0x1F3FB <= ord(char) <= 0x1F3FF


_SYMBOLS = re.compile(
    "[" + "".join(re.escape(chr(c)) for c in range(0x2000, 0x2FFF) if _symbol(chr(c))) + "]"
    "|[\U0001f000-\U0001faff\u200d\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f]"
)


def clean(text: MappedText) -> MappedText:
    """`text` without Markdown's marks, code blocks, table rules, emoji and symbols; link
    texts are kept, their addresses dropped. Raw phoneme blocks are left alone."""
    return raw.outside(text, _clean)


def _drop(match: re.Match[str]) -> str:
    return ""


def _clean(text: MappedText) -> MappedText:
    text = text.sub(_FENCE, _drop)
    text = text.sub(_TABLE_RULE, _drop)
    text = text.sub(_TABLE_EDGE, _drop)
    text = text.sub(_TABLE_CELL, lambda m: ", ")
    text = text.sub(_RULE, _drop)
    text = text.sub(_HEADING, _drop)
    text = text.sub(_QUOTE, _drop)
    text = text.sub(_LIST, _drop)
    text = text.sub_groups(_IMAGE_OR_LINK, 1)
    text = text.sub_groups(_AUTOLINK, 1)
    text = text.sub_groups(_STRONG, 2)
    text = text.sub_groups(_STRIKE, 1)
    text = text.sub_groups(_EMPHASIS, 2)
    text = text.sub_groups(_CODE, 1)
    text = text.sub(_STRAY, lambda m: " ")
    return text.sub(_SYMBOLS, lambda m: " ")
