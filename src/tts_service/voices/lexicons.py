"""The pronunciation lexicons in the voice folders: `LANG.lexicon.json` (`en.lexicon.json`
for every English voice, `en_US.lexicon.json` over it for US voices), re-read when a file
changes. A broken file is logged and reported in /voices, and the voice speaks without it:
a typo in a lexicon never silences a voice."""

from __future__ import annotations

import logging
from pathlib import Path

from tts_service.text.lexicon import NO_LEXICON, Lexicon, read_lexicon
from tts_service.voices.stamps import Stamp, file_stamp

log = logging.getLogger(__name__)

LEXICON_SUFFIX = ".lexicon.json"


class LexiconBook:
    """Every language's lexicon, from the files in `folders` (the first folder's file of a
    name wins, as for voices)."""

    def __init__(self, folders: list[Path]) -> None:
        self._folders = folders
        self._read: dict[Path, tuple[Stamp, Lexicon | str]] = {}
        self._merged: dict[str, tuple[tuple[Lexicon, ...], Lexicon]] = {}

    def for_language(self, language: str) -> Lexicon:
        """The lexicon a voice of `language` ("en_US") reads with: its own language's
        entries over its base language's. A few stats per request; parsed once per change."""
        parts = tuple(
            lexicon
            for lexicon in (self._from_file(name) for name in _names(language))
            if isinstance(lexicon, Lexicon)
        )
        merged = self._merged.get(language)
        if merged is not None and merged[0] == parts:
            return merged[1]
        found = NO_LEXICON
        for lexicon in parts:
            found = lexicon.over(found) if len(found) else lexicon
        self._merged[language] = (parts, found)
        return found

    def files(self, language: str) -> list[tuple[str, str | None]]:
        """(file name, problem or None) of each lexicon file `language` reads."""
        listed = []
        for name in _names(language):
            lexicon = self._from_file(name)
            if lexicon is not None:
                listed.append((name, lexicon if isinstance(lexicon, str) else None))
        return listed

    def _from_file(self, name: str) -> Lexicon | str | None:
        path = next((f / name for f in self._folders if (f / name).is_file()), None)
        if path is None:
            return None
        stamp = file_stamp(path)
        cached = self._read.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            found: Lexicon | str = read_lexicon(path)
        except (OSError, ValueError) as error:
            reason = (
                f"cannot be read ({error.strerror})" if isinstance(error, OSError) else str(error)
            )
            found = f"lexicon {path.name} is not used: it {reason}"
            log.warning("%s", found)
        self._read[path] = (stamp, found)
        return found


def _names(language: str) -> list[str]:
    """The lexicon files for a language, the general one first ("en", then "en_US")."""
    code = language.replace("-", "_")
    base = code.split("_")[0]
    return list(dict.fromkeys([f"{base}{LEXICON_SUFFIX}", f"{code}{LEXICON_SUFFIX}"]))
