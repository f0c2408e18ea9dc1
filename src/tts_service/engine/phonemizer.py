"""Text to phoneme ids as Piper's espeak-ng reads it: in bounded pieces, by sentence, and
with the words of the text each sentence speaks (for word timestamps).

espeak-ng holds the GIL while it phonemizes, so callers feed it bounded pieces cut where
a sentence ends (cutting there changes nothing), or at whitespace if a "sentence" is huge.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from piper import PiperVoice
from piper.const import BOS, EOS, PAD

from tts_service.engine import words
from tts_service.engine.phonemes import symbols_of
from tts_service.text import raw

PHONEMIZE_PIECE_CHARS = 2000
_SENTENCE_END = re.compile(r"(?<=[.!?。！？\n])\s+")
_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")


def _sentences(text: str) -> Iterator[str]:
    """Consecutive slices of `text`, each ending after a sentence end and its whitespace."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        if raw.unclosed(text, match.start()):
            continue  # a raw [[ phonemes ]] block stays in one piece
        yield text[start : match.end()]
        start = match.end()
    if start < len(text):
        yield text[start:]


def split_for_phonemizer(text: str, limit: int = PHONEMIZE_PIECE_CHARS) -> Iterator[str]:
    """Yield pieces of at most `limit` characters, cut at sentence ends where possible.

    The pieces are slices of `text` that keep its own whitespace: espeak-ng reads a blank
    line as a paragraph break (it drops the sentence's punctuation there), so turning it
    into a space would change the phonemes."""
    for _, piece in pieces_with_offsets(text, limit):
        yield piece


def pieces_with_offsets(text: str, limit: int = PHONEMIZE_PIECE_CHARS) -> Iterator[tuple[int, str]]:
    """`split_for_phonemizer`'s pieces, each with where it starts in `text`."""
    piece, start, offset = "", 0, 0
    for sentence in _sentences(text):
        while len(sentence) > limit:  # a run-on "sentence": cut after the last space
            space = sentence.rfind(" ", 0, limit)
            cut = space + 1 if space > 0 else limit
            if piece.strip():
                yield start, piece
            yield offset, sentence[:cut]
            offset += cut
            piece, start = "", offset
            sentence = sentence[cut:]
        if len(piece) + len(sentence) > limit:
            if piece.strip():
                yield start, piece
            piece, start = "", offset
        piece += sentence
        offset += len(sentence)
    if piece.strip():
        yield start, piece


class Phonemizer:
    """One voice's phonemizer: its espeak voice and phoneme id map, through Piper."""

    def __init__(self, piper_voice: PiperVoice) -> None:
        self._piper = piper_voice

    @functools.cached_property
    def symbols(self) -> dict[int, str]:
        """Phoneme id -> its symbol, for phoneme timings."""
        return symbols_of(self._piper.config.phoneme_id_map)

    @property
    def pad(self) -> int:
        return int(self._piper.config.phoneme_id_map[PAD][0])

    def phonemize(self, text: str) -> list[list[int]]:
        """Text to one list of phoneme ids per sentence (empty sentences dropped)."""
        sentences: list[list[int]] = []
        for piece in split_for_phonemizer(text):
            for phonemes in self._piper.phonemize(piece):
                if phonemes:
                    sentences.append(self._piper.phonemes_to_ids(phonemes))
        return sentences

    def phonemize_words(self, text: str) -> tuple[list[list[int]], list[list[words.PlannedWord]]]:
        """`phonemize(text)`, and for each sentence the words of `text` it speaks, each with
        its phoneme ids (see words.py). The phoneme ids are exactly `phonemize`'s."""
        sentences: list[list[int]] = []
        plans: list[list[words.PlannedWord]] = []
        for offset, piece in pieces_with_offsets(text):
            piece_sentences, piece_plans = self.phonemize_piece_words(text, offset, piece)
            sentences += piece_sentences
            plans += piece_plans
        return sentences, plans

    def phonemize_piece_words(
        self, text: str, offset: int, piece: str
    ) -> tuple[list[list[int]], list[list[words.PlannedWord]]]:
        """`phonemize_words` for one of `pieces_with_offsets(text)`: a caller may let other
        work use the phonemizer between pieces."""
        config = self._piper.config
        phonemes = [p for p in self._piper.phonemize(piece) if p]
        found = words.text_words(text, offset, offset + len(piece))
        alone = self._phonemize_alone([text[w.token_start : w.token_end] for w in found])
        for k, word in enumerate(found):  # a raw [[ phonemes ]] word is its own reading
            if raw.unclosed(text, word.start) and text.find("]]", word.start) >= 0:
                alone[k] = text[word.start : word.end]
        starts = [words.id_starts(p, config.phoneme_id_map, BOS, PAD, EOS) for p in phonemes]
        plans = words.plan(phonemes, starts, found, [words.shape(a) for a in alone])
        return [self._piper.phonemes_to_ids(p) for p in phonemes], plans

    def _phonemize_alone(self, texts: list[str]) -> list[str]:
        """How espeak reads each text on its own, as a phoneme string with its words spaced.

        Piper switches espeak's voice on every call, which costs ten times the reading of
        one word; straight through its espeak bridge, under its lock, the switch is done
        once. If Piper's internals differ from 1.8's, its public (slower) call is used."""
        bridge = _espeak_bridge()
        if bridge is None:
            return [" ".join("".join(s) for s in self._piper.phonemize(t)) for t in texts]
        module, lock = bridge
        with lock:
            module.set_voice(self._piper.config.espeak_voice)
            return [_joined(module.get_phonemes(t)) for t in texts]


def _joined(clauses: list[tuple[str, str, bool]]) -> str:
    """espeak's clauses for one text as one phoneme string, as Piper cleans them."""
    text = " ".join(_LANGUAGE_FLAG.sub("", phonemes) for phonemes, _, _ in clauses)
    return unicodedata.normalize("NFD", text)


def _espeak_bridge() -> tuple[Any, Any] | None:
    """Piper's espeak bridge and the lock it phonemizes under, once Piper has started it."""
    try:
        from piper import espeakbridge
        from piper import voice as piper_module
    except ImportError:  # pragma: no cover - part of piper-tts 1.8
        return None
    lock = getattr(piper_module, "_ESPEAK_PHONEMIZER_LOCK", None)
    started = getattr(piper_module, "_ESPEAK_PHONEMIZER", None) is not None
    if lock is None or not started:
        return None
    return espeakbridge, lock
