"""Text that remembers where it came from: every character knows the span of the request
it stands for, so word timings can point at the request's own characters after clean-up,
normalisation and SSML have rewritten it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class MappedText:
    """`text`, where character k stands for request characters [starts[k], ends[k]).

    A character copied from the request stands for itself; the characters of a
    replacement ("three dollars fifty" for "$3.50") all stand for the whole span they
    replace, so every word of it maps to that one span."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def verbatim(cls, text: str, offset: int = 0) -> MappedText:
        """`text` as it stands at `offset` in the request."""
        positions = range(offset, offset + len(text))
        return cls(text, tuple(positions), tuple(p + 1 for p in positions))

    @classmethod
    def standing_for(cls, text: str, start: int, end: int) -> MappedText:
        """`text` standing for request characters [start, end) as a whole."""
        return cls(text, (start,) * len(text), (end,) * len(text))

    @classmethod
    def join(cls, parts: Iterable[MappedText]) -> MappedText:
        listed = list(parts)
        return cls(
            "".join(p.text for p in listed),
            tuple(s for p in listed for s in p.starts),
            tuple(e for p in listed for e in p.ends),
        )

    def __len__(self) -> int:
        return len(self.text)

    def slice(self, start: int, end: int) -> MappedText:
        return MappedText(self.text[start:end], self.starts[start:end], self.ends[start:end])

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The request span that text[start:end] (not empty) stands for."""
        return min(self.starts[start:end]), max(self.ends[start:end])

    def sub(
        self, pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str | None]
    ) -> MappedText:
        """Each match of `pattern` replaced by `replace(match)` (None: kept as it is); a
        replacement stands for the span of the whole match."""
        parts: list[MappedText] = []
        done = 0
        for match in pattern.finditer(self.text):
            new = replace(match)
            if new is None:
                continue
            parts.append(self.slice(done, match.start()))
            if new and match.end() > match.start():
                start, end = self.span(match.start(), match.end())
                parts.append(MappedText.standing_for(new, start, end))
            done = match.end()
        if not parts:
            return self
        parts.append(self.slice(done, len(self.text)))
        return MappedText.join(parts)

    def sub_groups(self, pattern: re.Pattern[str], group: int) -> MappedText:
        """Each match of `pattern` replaced by its `group`, whose characters keep their own
        places ("**Hello**" becomes "Hello", mapped to the request's "Hello")."""
        parts: list[MappedText] = []
        done = 0
        for match in pattern.finditer(self.text):
            parts.append(self.slice(done, match.start()))
            parts.append(self.slice(match.start(group), match.end(group)))
            done = match.end()
        if not parts:
            return self
        parts.append(self.slice(done, len(self.text)))
        return MappedText.join(parts)
