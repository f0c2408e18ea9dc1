"""Friendly voice names: catalog aliases and language-only requests.

A request may name a voice by its published alias (`en-gb-alan-low`) or by a language alone
(`en_GB`, `en-gb`, `de`). A language picks the best installed voice for it:

1. voices whose language is exactly the one asked (`en_GB`) before voices that only share
   its family (`en`, or `en_GB` when no British voice is installed);
2. among those, the default voice if it is one of them;
3. then the highest quality (high, medium, low, x_low; a voice that states none last);
4. then the name, alphabetically.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tts_service.engine.voice import VoiceInfo
from tts_service.errors import VoiceNotFound
from tts_service.voices.published import QUALITIES

# `en`, `de_DE`, `en-gb`, `pt_BR`, `fil`: what a request names when it means a language.
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,3})?\Z")


def is_language(name: str) -> bool:
    return _LANGUAGE.match(name) is not None


def language_key(code: str) -> str:
    """`en-US`, `en_us` and `EN_US` alike: `en_us`."""
    return code.strip().lower().replace("-", "_")


def quality_rank(quality: str | None) -> int:
    """Higher is better; unknown qualities rank below every published one."""
    return QUALITIES.index(quality) if quality in QUALITIES else -1


def voice_for_language(voices: Sequence[VoiceInfo], default: str, language: str) -> str:
    """The installed voice a language-only request gets (the rule in the module docstring)."""
    wanted = language_key(language)
    family = wanted.split("_")[0]
    ordered = sorted(
        voices,
        key=lambda info: (info.name != default, -quality_rank(info.quality), info.name),
    )
    for exact in (True, False):
        for info in ordered:
            code = language_key(info.language)
            if code == wanted if exact else code.split("_")[0] == family:
                return info.name
    raise VoiceNotFound(
        f"no installed voice speaks '{language}'",
        available=sorted({info.language for info in voices}),
    )
