"""The text clean-up before the phonemizer: what it cannot take becomes a space."""

from __future__ import annotations

import re

# espeak-ng reads C strings: a NUL raises, and an unpaired UTF-16 surrogate (JSON "\ud800")
# cannot even be encoded. No control character is ever spoken: make them all spaces.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def speakable(text: str) -> str:
    """`text` without what the phonemizer chokes on; tabs and line breaks stay. Every
    character keeps its place, so offsets into the result are offsets into `text`."""
    return _UNSPEAKABLE.sub(" ", text)
