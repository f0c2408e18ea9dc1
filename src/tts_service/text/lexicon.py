"""A pronunciation lexicon: words said otherwise than espeak says them, as other text
("Piper" -> "pipe er") or as IPA ("Kokoro" -> "[[ kˈoʊkəɹoʊ ]]", Piper's raw phonemes).

Case: an entry written in lower case matches the word in any case ("piper" matches
"Piper", "PIPER"); one with a capital matches only as written ("US" is not "us"). Entries
match whole words (not inside a longer word); the longest entry wins where several match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tts_service.text import raw
from tts_service.text.mapped import MappedText

MAX_LEXICON_BYTES = 1024 * 1024
MAX_ENTRY_CHARS = 200


@dataclass(frozen=True, eq=False)
class Lexicon:
    """Entries by the word as written (case-sensitive ones) and lowered (the others)."""

    exact: dict[str, str]
    folded: dict[str, str]
    pattern: re.Pattern[str] | None

    @classmethod
    def of(cls, entries: dict[str, str]) -> Lexicon:
        exact = {word: said for word, said in entries.items() if word != word.lower()}
        folded = {word: said for word, said in entries.items() if word == word.lower()}
        words = sorted(entries, key=len, reverse=True)
        if not words:
            return cls(exact, folded, None)
        alternatives = "|".join(re.escape(word) for word in words)
        pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return cls(exact, folded, pattern)

    def __len__(self) -> int:
        return len(self.exact) + len(self.folded)

    def over(self, base: Lexicon) -> Lexicon:
        """These entries, and `base`'s where these have none."""
        return Lexicon.of({**base.exact, **base.folded, **self.exact, **self.folded})

    def apply(self, text: MappedText) -> MappedText:
        """`text` with its entries' words replaced (raw phoneme blocks left alone)."""
        pattern = self.pattern
        if pattern is None:
            return text
        return raw.outside(text, lambda stretch: stretch.sub(pattern, self._said))

    def _said(self, match: re.Match[str]) -> str | None:
        word = match.group()
        said = self.exact.get(word)
        if said is None:
            said = self.folded.get(word.lower())
        return said  # whole words: the text around it keeps them apart


NO_LEXICON = Lexicon.of({})


def read_lexicon(path: Path) -> Lexicon:
    """One lexicon file: a JSON object of word -> text or "[[ IPA ]]". ValueError says
    what is wrong with it."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_LEXICON_BYTES + 1)
    if len(data) > MAX_LEXICON_BYTES:
        raise ValueError(f"is larger than {MAX_LEXICON_BYTES} bytes")
    try:
        entries = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"is not valid JSON ({error})") from None
    if not isinstance(entries, dict):
        raise ValueError("is not a JSON object of word -> pronunciation")
    for word, said in entries.items():
        if not isinstance(said, str) or not said.strip() or not word.strip():
            raise ValueError(f"entry {word!r}: a word needs a non-empty text or [[ IPA ]]")
        if len(word) > MAX_ENTRY_CHARS or len(said) > MAX_ENTRY_CHARS:
            raise ValueError(f"entry {word[:40]!r}: longer than {MAX_ENTRY_CHARS} characters")
        if said.count("[[") != said.count("]]"):
            raise ValueError(f"entry {word!r}: an unclosed [[ phonemes ]] block")
    return Lexicon.of({word.strip(): said.strip() for word, said in entries.items()})
