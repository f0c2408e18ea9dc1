"""The words of a request's text, and when each one is spoken.

espeak-ng turns a sentence into phonemes whose spaces separate *its* words, which are not
always the text's: "1984" becomes three ("nineteen hundred" run together, "eighty",
"four"), "$3.50" five, "Wait... what?" one, and "Dr." ends a sentence. To map them back,
each text word is also phonemized alone (`WordShape`), and a dynamic-programming
alignment pairs text words with espeak's words, one to many, many to one, or none, so
that word and phoneme counts agree best. The pairing is monotonic by construction: an
expansion or a merge moves no later word. Each text word then owns a range of its
sentence's phoneme ids (`PlannedWord`), and the model's per-id sample counts turn that
range into seconds (`WordClock`).

Resolution: the model decides durations in frames of `hop_length` samples (256 at
22.05 kHz: 11.6 ms), so every boundary falls on a frame.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tts_service.engine.phonemes import PhonemeTime, timings

STRESS = frozenset("ˈˌ")
# Stripped from the edges of a word (quotes, brackets, dashes, sentence punctuation);
# symbols that are spoken ("&", "%", "$", "#", "@") stay.
_EDGE_CATEGORIES = frozenset({"Ps", "Pe", "Pi", "Pf", "Pd", "Pc"})
_EDGE_OTHER = frozenset(".,;:!?…¡¿'\"·‼⁇⁈⁉。、，！？；：")
_TOKEN = re.compile(r"\S+")

MISMATCH_WEIGHT = 1.5
"""Cost of a phoneme more or fewer than a text word has alone, where each phoneme of a
word left unpaired costs 1: above 1, so that a word read exactly wins over an equally
cheap pairing that shifts it (next to a word espeak drops)."""
COUNT_WEIGHT = 2
"""Cost of one espeak word more or fewer than a text word has alone, in phonemes."""
SILENT_WEIGHT = 1
"""COUNT_WEIGHT for a text word espeak reads as nothing alone but may read in context
("€" after a number in German); its phonemes cost 1 each, as if left unpaired."""
SKIP_COST = 2
"""Extra cost of leaving a text word or an espeak word unpaired, in phonemes."""
MAX_MERGE = 4
"""Most text words that may share one espeak word ("Wait... what" is one)."""
EXTRA_SPLIT = 3
"""Espeak words a text word may get beyond what it has alone."""
BEAM = 8
"""Alignment states kept per text word: those within this cost of the best, in phonemes."""


@dataclass(frozen=True)
class WordShape:
    """How espeak reads a text word on its own: its words and its phonemes."""

    count: int
    size: int


@dataclass(frozen=True)
class PlannedWord:
    """A word of the request text and the phoneme ids that speak it in its sentence.

    `id_start == id_end` means espeak says nothing for it here (the word takes no time)."""

    char_start: int
    char_end: int
    id_start: int
    id_end: int


@dataclass(frozen=True)
class Word:
    """A spoken word: its text, when (seconds from the start of the whole audio) and where
    in the request text (code point offsets, end exclusive)."""

    text: str
    start: float
    end: float
    char_start: int
    char_end: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "char_start": self.char_start,
            "char_end": self.char_end,
        }


@dataclass(frozen=True)
class PlannedMark:
    """An SSML `<mark>` in a sentence: reached when phoneme id `id_at` starts."""

    name: str
    id_at: int


@dataclass(frozen=True)
class Reached:
    """A mark and when (seconds from the start of the whole audio) it is reached."""

    name: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "time": round(self.time, 3)}


@dataclass(frozen=True)
class PhonemeSource:
    """What timing phonemes takes: each sentence's phoneme ids, and the voice's symbols."""

    sentences: Sequence[Sequence[int]]
    symbols: Mapping[int, str]
    pad: int


@dataclass(frozen=True)
class TextWord:
    """A word of the text: [start, end) is the word, [token_start, token_end) the run of
    non-space it came from (what espeak is given, quotes and all)."""

    start: int
    end: int
    token_start: int
    token_end: int


@dataclass(frozen=True)
class _Spoken:
    """One espeak word: its sentence, its items [first, last) and its phoneme count."""

    sentence: int
    first: int
    last: int
    size: int


# ------------------------------------------------------------------------ the text side


def _edge(char: str) -> bool:
    return char in _EDGE_OTHER or unicodedata.category(char) in _EDGE_CATEGORIES


def text_words(text: str, start: int = 0, end: int | None = None) -> list[TextWord]:
    """The words in text[start:end] (offsets into `text`): runs of non-space with quotes,
    brackets, dashes and punctuation trimmed from their edges. A run of nothing but those
    ("—", "...") is no word."""
    found: list[TextWord] = []
    for match in _TOKEN.finditer(text, start, len(text) if end is None else end):
        first, last = match.start(), match.end()
        while first < last and _edge(text[first]):
            first += 1
        while last > first and _edge(text[last - 1]):
            last -= 1
        if first < last:
            found.append(TextWord(first, last, match.start(), match.end()))
    return found


@functools.lru_cache(maxsize=4096)  # a voice has a few hundred distinct items
def _core(item: str) -> int:
    """Phonemes in a phoneme item, leaving out spaces, stress marks and punctuation."""
    return sum(
        1
        for char in item
        if not char.isspace() and char not in STRESS and not unicodedata.category(char)[0] == "P"
    )


def shape(phonemes: str) -> WordShape:
    """A text word's shape from how espeak reads it alone (phoneme string, words spaced)."""
    sizes = [_core(part) for part in phonemes.split()]
    return WordShape(sum(1 for size in sizes if size), sum(sizes))


# ---------------------------------------------------------------------- the espeak side


def _spoken_words(sentence: int, phonemes: Sequence[str]) -> list[_Spoken]:
    """Espeak's words in one sentence's phoneme items (split at " "), each spanning its
    first phoneme or stress mark to its last phoneme; pure punctuation is no word."""
    words: list[_Spoken] = []
    start = 0
    for index in range(len(phonemes) + 1):
        if index < len(phonemes) and phonemes[index] != " ":
            continue
        sizes = [_core(item) for item in phonemes[start:index]]
        spoken = [k for k, size in enumerate(sizes) if size or phonemes[start + k] in STRESS]
        if sum(sizes):
            last = max(k for k, size in enumerate(sizes) if size)
            words.append(_Spoken(sentence, start + spoken[0], start + last + 1, sum(sizes)))
        start = index + 1
    return words


def id_starts(
    phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]], bos: str, pad: str, eos: str
) -> list[int]:
    """Where each phoneme item's ids begin in the sentence's phoneme ids, plus where the
    end-of-sentence ids begin; mirrors Piper's `phonemes_to_ids` (BOS, PAD, then each
    known item followed by PAD, then EOS). An item's range includes its PAD."""
    position = len(id_map[bos]) + len(id_map[pad])
    starts = [position]
    for item in phonemes:
        if item in id_map:
            position += len(id_map[item]) + len(id_map[pad])
        starts.append(position)
    return starts


# --------------------------------------------------------------------------- alignment


def _align(shapes: Sequence[WordShape], spoken: Sequence[_Spoken]) -> list[tuple[int, int]]:
    """For each text word, the range [j0, j1) of espeak words it is paired with (several
    text words may share one espeak word: equal ranges of length 1; a word espeak does
    not say gets an empty range)."""
    ranges: list[tuple[int, int]] = []
    j = 0
    for words, said in _best_path(shapes, spoken):
        ranges += [(j, j + said)] * words
        j += said
    return ranges


def _best_path(shapes: Sequence[WordShape], spoken: Sequence[_Spoken]) -> list[tuple[int, int]]:
    """The cheapest monotonic pairing, as steps (text words taken, espeak words taken).

    Dynamic programming over (text words done, espeak words done), row by row, keeping in
    each row only the states within BEAM of its best: most words read the same alone and
    in context, so a row holds a handful of states and the work grows with the text, not
    with its square. The last row keeps every state, so the end is always reached."""
    n, m = len(shapes), len(spoken)
    rows: list[dict[int, tuple[float, int, int]]] = [{} for _ in range(n + 1)]
    rows[0][0] = (0.0, 0, 0)
    for i in range(n + 1):
        row = rows[i]
        limit = min(cost for cost, _, _ in row.values()) + BEAM if i < n else math.inf
        pending = sorted(row)
        while pending:
            j = heapq.heappop(pending)
            cost = row[j][0]
            if cost > limit:
                continue
            for words, said, value in _moves(shapes, spoken, i, j):
                target, at = rows[i + words], j + said
                if at not in target or cost + value < target[at][0]:
                    if words == 0 and at not in target:
                        heapq.heappush(pending, at)
                    target[at] = (cost + value, words, said)
    steps: list[tuple[int, int]] = []
    i, j = n, m
    while i or j:
        _, words, said = rows[i][j]
        steps.append((words, said))
        i, j = i - words, j - said
    steps.reverse()
    return steps


def _moves(
    shapes: Sequence[WordShape], spoken: Sequence[_Spoken], i: int, j: int
) -> Iterator[tuple[int, int, float]]:
    """From (i, j): (text words, espeak words, cost) of each step the pairing may take."""
    m = len(spoken)
    if j < m:  # an espeak word no text word claims
        yield 0, 1, spoken[j].size + SKIP_COST
    if i == len(shapes):
        return
    word = shapes[i]
    yield 1, 0, word.size + (SKIP_COST if word.count else 0)  # a word espeak does not say
    # What no other word explains is better given to a word silent alone than left over.
    per_phoneme, per_word = (MISMATCH_WEIGHT, COUNT_WEIGHT) if word.count else (1, SILENT_WEIGHT)
    said = 0
    for b in range(1, min(word.count + EXTRA_SPLIT, m - j) + 1):
        if spoken[j + b - 1].sentence != spoken[j].sentence:
            break  # a word stays inside one sentence
        said += spoken[j + b - 1].size
        yield 1, b, per_phoneme * abs(said - word.size) + per_word * abs(b - word.count)
    if j < m:  # several text words that espeak runs together into one
        alone = word.size
        count = word.count
        for a in range(2, min(MAX_MERGE, len(shapes) - i) + 1):
            alone += shapes[i + a - 1].size
            count += shapes[i + a - 1].count
            mismatch = MISMATCH_WEIGHT * abs(spoken[j].size - alone)
            yield a, 1, mismatch + COUNT_WEIGHT * abs(1 - count)


# ------------------------------------------------------------------------------- plans


def plan(
    sentences: Sequence[Sequence[str]],
    starts: Sequence[Sequence[int]],
    found: Sequence[TextWord],
    shapes: Sequence[WordShape],
) -> list[list[PlannedWord]]:
    """For each sentence of a piece of text (its phoneme items and their id starts), the
    words of that piece (`found`, with how espeak reads each alone) it speaks, in order."""
    plans: list[list[PlannedWord]] = [[] for _ in sentences]
    if not sentences:
        return plans
    spoken = [w for k, items in enumerate(sentences) for w in _spoken_words(k, items)]
    sentence, position = 0, starts[0][0]
    for k0, k1, j0, j1 in _groups(_align(shapes, spoken)):
        if j1 == j0:  # espeak says nothing for it: no time, where the last word ended
            ids = [(position, position)]
        else:
            sentence = spoken[j0].sentence
            first, last = spoken[j0].first, spoken[j1 - 1].last
            cuts = (
                [first, last]
                if k1 - k0 == 1
                else _share(sentences[sentence], first, last, shapes[k0:k1])
            )
            ids = [(starts[sentence][a], starts[sentence][b]) for a, b in itertools.pairwise(cuts)]
            position = ids[-1][1]
        for word, (id_start, id_end) in zip(found[k0:k1], ids, strict=True):
            plans[sentence].append(PlannedWord(word.start, word.end, id_start, id_end))
    return plans


def _groups(ranges: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int, int, int]]:
    """Text words [k0, k1) and the espeak words [j0, j1) they are paired with: one text
    word each, except where several share one espeak word."""
    k = 0
    while k < len(ranges):
        j0, j1 = ranges[k]
        end = k + 1
        while j1 - j0 == 1 and end < len(ranges) and ranges[end] == (j0, j1):
            end += 1
        yield k, end, j0, j1
        k = end


def _share(items: Sequence[str], first: int, last: int, shapes: Sequence[WordShape]) -> list[int]:
    """Cut one espeak word's items [first, last) among text words in proportion to their
    phonemes alone; a stress mark stays with the phoneme after it."""
    core = [k for k in range(first, last) if _core(items[k])]
    weights = [s.size for s in shapes] if any(s.size for s in shapes) else [1] * len(shapes)
    total = sum(weights)
    cuts = [first]
    for running in itertools.accumulate(weights[:-1]):
        index = round(running * len(core) / total)
        cut = core[index] if index < len(core) else last
        while cut > first and items[cut - 1] in STRESS:
            cut -= 1
        cuts.append(max(cuts[-1], cut))
    cuts.append(last)
    return cuts


# ------------------------------------------------------------------------------ timing


class WordClock:
    """Times the words of each sentence as its audio arrives, in order: keeps the running
    offset of all audio before it (speech and the silence after each sentence)."""

    def __init__(
        self,
        text: str,
        plans: Sequence[Sequence[PlannedWord]],
        sample_rate: int,
        silence_samples: int = 0,
        marks: Sequence[Sequence[PlannedMark]] = (),
        phonemes: PhonemeSource | None = None,
    ) -> None:
        self.text = text
        self.plans = plans
        self.sample_rate = sample_rate
        self.silence_samples = silence_samples
        self.offset = 0
        """Samples of audio before the next sentence."""
        self.marks = marks
        self.reached: list[Reached] = []
        """The marks of the sentence `sentence` timed last."""
        self.phoneme_source = phonemes
        self.phonemes: list[PhonemeTime] = []
        """With a phoneme source: the phonemes of the sentence timed last."""

    def sentence(
        self, index: int, samples: int, samples_per_id: Sequence[int] | None, ids: int
    ) -> list[Word]:
        """The words of sentence `index`, whose audio has `samples` samples (its silence
        included) and `ids` phoneme ids that took `samples_per_id` samples each."""
        if samples_per_id is None or len(samples_per_id) != ids:
            samples_per_id = _even(max(0, samples - self.silence_samples), ids)
        before = [0, *itertools.accumulate(samples_per_id)]
        words = [
            Word(
                self.text[w.char_start : w.char_end],
                (self.offset + before[w.id_start]) / self.sample_rate,
                (self.offset + before[w.id_end]) / self.sample_rate,
                w.char_start,
                w.char_end,
            )
            for w in self.plans[index]
        ]
        marks = self.marks[index] if index < len(self.marks) else ()
        at = [before[min(m.id_at, len(before) - 1)] for m in marks]
        self.reached = [
            Reached(m.name, (self.offset + a) / self.sample_rate)
            for m, a in zip(marks, at, strict=True)
        ]
        source = self.phoneme_source
        if source is not None:
            self.phonemes = timings(
                source.sentences[index],
                samples_per_id,
                self.offset,
                self.sample_rate,
                source.symbols,
                source.pad,
            )
        self.offset += samples
        return words


def _even(samples: int, ids: int) -> list[int]:
    """`samples` spread over `ids` ids (a voice that reports no durations: an estimate)."""
    if ids <= 0:
        return []
    share, extra = divmod(samples, ids)
    return [share + (1 if k < extra else 0) for k in range(ids)]


def all_words(sentences: Sequence[Sequence[Word]]) -> Iterator[Word]:
    for words in sentences:
        yield from words
