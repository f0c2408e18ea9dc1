"""Piper's raw phoneme blocks, `[[ həlˈoʊ ]]`: passed to the model as they are, so every
stage before the phonemizer leaves them alone."""

from __future__ import annotations

import re
from collections.abc import Callable

from tts_service.text.mapped import MappedText

BLOCK = re.compile(r"\[\[.*?\]\]", re.DOTALL)
"""Piper's own pattern (piper.voice._PHONEME_BLOCK_PATTERN)."""


def inside(text: str, at: int) -> bool:
    """Character `at` of `text` is inside a raw block (its brackets excluded)."""
    return any(block.start() < at < block.end() - 1 for block in BLOCK.finditer(text))


def unclosed(text: str, at: int) -> bool:
    """A raw block opens before `at` and has not closed by it (it may close later)."""
    opened = text.rfind("[[", 0, at + 1)
    return opened >= 0 and text.find("]]", opened, at) < 0


def outside(text: MappedText, change: Callable[[MappedText], MappedText]) -> MappedText:
    """`text` with `change` applied to each stretch between raw blocks."""
    if "[[" not in text.text:
        return change(text)
    parts: list[MappedText] = []
    done = 0
    for block in BLOCK.finditer(text.text):
        parts.append(change(text.slice(done, block.start())))
        parts.append(text.slice(block.start(), block.end()))
        done = block.end()
    parts.append(change(text.slice(done, len(text))))
    return MappedText.join(parts)
