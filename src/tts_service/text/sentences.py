"""Streamed text cut into sentences as their ends arrive, for streaming text input (a
language model's answer spoken while it is still being written)."""

from __future__ import annotations

import re

from tts_service.text import raw, ssml

# A sentence ends at . ! ? (or their CJK forms), possibly closed by quotes or brackets,
# followed by whitespace; a newline ends one whatever precedes it.
_BOUNDARY = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*\s+|\n\s*")
_LAST_WORD = re.compile(r"(\S+)$")
_SSML_END = "</speak>"
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs"})


def _is_abbreviation(before: str) -> bool:
    """True if `before` (the text up to and including a '.') ends in an abbreviation such
    as "Dr.", "e.g." or "J.": cutting there would make espeak read it letter by letter."""
    match = _LAST_WORD.search(before)
    if match is None:
        return False
    word = match.group(1).lstrip("\"'“‘«([")
    if not word.endswith(".") or word.endswith(".."):
        return False
    core = word[:-1]
    return "." in core or (len(core) == 1 and core.isalpha()) or core.lower() in _TITLES


class SentenceSplitter:
    """Buffers streamed text and releases the sentences whose end has arrived.

    Cutting only where a sentence ends changes nothing for the phonemizer (espeak ends its
    sentences there too); a cut that is only maybe an end (after an abbreviation) waits
    for more text, which costs latency but never pronunciation.
    """

    def __init__(self) -> None:
        self._buffer = ""

    @property
    def pending(self) -> str:
        """The unfinished tail."""
        return self._buffer

    def add(self, text: str) -> list[str]:
        """Take more text; return the sentences it completed, in order. An SSML document
        (`<speak>…</speak>`) is one piece, released when it closes: it is read whole."""
        self._buffer += text
        if ssml.is_ssml(self._buffer):
            end = self._buffer.find(_SSML_END)
            if end < 0:
                return []
            end += len(_SSML_END)
            document, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
            return [document, *self.add("")]
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            mark = match.group()
            if raw.unclosed(self._buffer, match.start()):
                continue  # never inside [[ phonemes ]]: Piper reads them whole
            if (
                mark.startswith(".")
                and "\n" not in mark
                and _is_abbreviation(self._buffer[start : match.start() + 1])
            ):
                continue
            sentence = self._buffer[start : match.start() + len(mark.rstrip())].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> str:
        """The end of the stream: whatever is left is the last sentence."""
        tail, self._buffer = self._buffer.strip(), ""
        return tail
