"""Phoneme timings, and visemes for lip sync: each phoneme id of a sentence with the
samples the model gave it (its padding id after it included), for avatars.

Visemes are the 15 of the Oculus/OVR lip-sync set (sil, PP, FF, TH, DD, kk, CH, SS, nn,
RR, aa, E, I, O, U), from the IPA symbol's place of articulation; a symbol not in the
table is `sil` when it is punctuation or a space and `DD` otherwise (a neutral mouth).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from piper.const import BOS, EOS, PAD

_VISEMES = {
    "PP": "pbm",
    "FF": "fv",
    "TH": "θð",
    "DD": "tdɾ",
    "kk": "kɡgŋxɣ",
    "CH": "ʃʒʧʤ",
    "SS": "szɹ",
    "nn": "nlɫ",
    "RR": "ɚɝr",
    "aa": "aɑæʌɐ",
    "E": "eɛə",
    "I": "iɪj",
    "O": "oɔɒ",
    "U": "uʊw",
}
VISEME = {symbol: viseme for viseme, symbols in _VISEMES.items() for symbol in symbols}
_SILENT = frozenset(" .,;:!?…—-'\"ˈˌː" + BOS + EOS + PAD)


@dataclass(frozen=True)
class PhonemeTime:
    """One phoneme, its viseme and when it is spoken (seconds from the start of the audio)."""

    phoneme: str
    viseme: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "phoneme": self.phoneme,
            "viseme": self.viseme,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
        }


def viseme(symbol: str) -> str:
    if symbol in _SILENT or not symbol.strip():
        return "sil"
    return VISEME.get(symbol, "DD")


def symbols_of(id_map: Mapping[str, Sequence[int]]) -> dict[int, str]:
    """The voice's id -> phoneme symbol (its config's map, inverted)."""
    return {i: symbol for symbol, ids in id_map.items() for i in ids}


def timings(
    ids: Sequence[int],
    samples_per_id: Sequence[int],
    offset: int,
    rate: int,
    symbols: Mapping[int, str],
    pad: int,
) -> list[PhonemeTime]:
    """The spoken phonemes of a sentence (not its padding, start, end, spaces or stress
    marks), each lasting until the next one starts; `offset` samples precede it."""
    before = [0, *itertools.accumulate(samples_per_id)]
    found: list[tuple[str, int]] = []
    for k, phoneme_id in enumerate(ids):
        symbol = symbols.get(phoneme_id, "")
        if phoneme_id == pad or symbol in (BOS, EOS, " ", "ˈ", "ˌ", "ː") or not symbol:
            continue
        found.append((symbol, k))
    result = []
    for index, (symbol, k) in enumerate(found):
        end = found[index + 1][1] if index + 1 < len(found) else min(k + 2, len(ids))
        result.append(
            PhonemeTime(
                symbol, viseme(symbol), (offset + before[k]) / rate, (offset + before[end]) / rate
            )
        )
    return result
