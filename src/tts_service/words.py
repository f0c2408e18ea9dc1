"""The words of a request's text, and when each one is spoken.

espeak-ng turns a sentence into phonemes whose spaces separate *its* words, which are not
always the text's: "1984" becomes three ("nineteen hundred" run together, "eighty",
"four"), "$3.50" four, "Wait... what?" one, and "Dr." ends a sentence. To map them back,
each text word is also phonemized alone (`WordShape`), and a dynamic-programming alignment
pairs text words with espeak's words, one to many, many to one, or none, so that phoneme
counts agree best. The pairing is monotonic by construction: an expansion or a merge moves
no later word. Each text word then owns a range of its sentence's phoneme ids
(`PlannedWord`), and the model's per-id sample counts turn that range into seconds
(`WordClock`).

Resolution: the model decides durations in frames of `hop_length` samples (256 at
22.05 kHz: 11.6 ms), so every boundary falls on a frame.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

STRESS = frozenset("ˈˌ")
# Stripped from the edges of a word (quotes, brackets, dashes, sentence punctuation);
# symbols that are spoken ("&", "%", "$", "#", "@") stay.
_EDGE_CATEGORIES = frozenset({"Ps", "Pe", "Pi", "Pf", "Pd", "Pc"})
_EDGE_OTHER = frozenset(".,;:!?…¡¿'\"·‼⁇⁈⁉。、，！？；：")
_TOKEN = re.compile(r"\S+")

COUNT_WEIGHT = 2
"""Cost of one espeak word more or fewer than a text word has alone, in phonemes."""
SILENT_COUNT_WEIGHT = 1
"""The same for a text word espeak reads as nothing alone but may read in context ("€"
after a number in German): what no other word explains is better given to it."""
SKIP_COST = 2
"""Extra cost of leaving a text word or an espeak word unpaired, in phonemes."""
MAX_MERGE = 4
"""Most text words that may share one espeak word ("Wait... what" is one)."""
EXTRA_SPLIT = 3
"""Espeak words a text word may get beyond what it has alone."""
BAND = 8
"""Half-width of the alignment band around the expected diagonal, in espeak words."""
RESYNC_WORDS = 16
"""After a text word espeak reads differently, how far ahead to look for agreement."""
RESYNC_SPREAD = 8
"""How far from where it is expected agreement may be found, in espeak words."""
ANCHOR = 2
"""Text words in a row that must agree with espeak to count as back in step."""


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


@dataclass(frozen=True)
class _Step:
    words: int  # text words taken
    spoken: int  # espeak words taken


def _align(shapes: Sequence[WordShape], spoken: Sequence[_Spoken]) -> list[tuple[int, int]]:
    """For each text word, the range [j0, j1) of espeak words it is paired with (several
    text words may share one espeak word: equal ranges of length 1; a word espeak does
    not say gets an empty range).

    Most words read the same alone and in context: those are paired as they come. Where
    one does not, the stretch up to the next two words that agree again is solved by
    dynamic programming."""
    ranges: list[tuple[int, int]] = []
    i = j = 0
    while i < len(shapes):
        taken = _agrees(shapes[i], spoken, j)
        if taken is not None:
            ranges.append((j, j + taken))
            i, j = i + 1, j + taken
            continue
        i2, j2 = _resync(shapes, spoken, i, j)
        ranges += [(j + a, j + b) for a, b in _solve(shapes[i:i2], spoken[j:j2])]
        i, j = i2, j2
    return ranges


def _agrees(word: WordShape, spoken: Sequence[_Spoken], j: int) -> int | None:
    """How many espeak words from `j` on say `word` as it is read alone, if they do. A word
    read as nothing alone is left to the dynamic programming: in context it may be read."""
    if word.count == 0:
        return None
    end = j + word.count
    if end > len(spoken) or spoken[end - 1].sentence != spoken[j].sentence:
        return None
    said = sum(w.size for w in spoken[j:end])
    return word.count if said == word.size else None


def _resync(
    shapes: Sequence[WordShape], spoken: Sequence[_Spoken], i: int, j: int
) -> tuple[int, int]:
    """The nearest (text word, espeak word) after (i, j) from which ANCHOR words agree;
    the ends of both if there is none within RESYNC_WORDS."""
    expected = j
    for i2 in range(i + 1, min(len(shapes), i + RESYNC_WORDS)):
        expected += shapes[i2 - 1].count
        last = min(len(spoken), expected + RESYNC_SPREAD)
        for j2 in sorted(range(j, last + 1), key=lambda c: abs(c - expected)):
            if _anchored(shapes, spoken, i2, j2):
                return i2, j2
    return len(shapes), len(spoken)


def _anchored(shapes: Sequence[WordShape], spoken: Sequence[_Spoken], i: int, j: int) -> bool:
    said = 0
    for word in shapes[i : i + ANCHOR]:
        taken = _agrees(word, spoken, j)
        if taken is None:
            return False
        said += taken
        j += taken
    return said > 0


def _solve(shapes: Sequence[WordShape], spoken: Sequence[_Spoken]) -> list[tuple[int, int]]:
    """`_align`'s answer by dynamic programming over (text words, espeak words), in a band
    around the diagonal; the full table if the band finds no path."""
    path = _best_path(shapes, spoken, banded=True) or _best_path(shapes, spoken, banded=False)
    assert path is not None  # the full table always has one (skip everything)
    ranges: list[tuple[int, int]] = []
    j = 0
    for step in path:
        ranges += [(j, j + step.spoken)] * step.words
        j += step.spoken
    return ranges


def _best_path(
    shapes: Sequence[WordShape], spoken: Sequence[_Spoken], banded: bool
) -> list[_Step] | None:
    n, m = len(shapes), len(spoken)
    counts = [0, *itertools.accumulate(s.count for s in shapes)]
    sizes = [0, *itertools.accumulate(s.size for s in shapes)]
    spoken_sizes = [0, *itertools.accumulate(w.size for w in spoken)]
    ratio = m / counts[n] if counts[n] else 0.0
    width = BAND + min(abs(m - counts[n]), 64)

    def band(i: int) -> tuple[int, int]:
        if not banded:
            return 0, m
        centre = counts[i] * ratio
        return max(0, math.floor(centre) - width), min(m, math.ceil(centre) + width)

    inf = math.inf
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[_Step | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    limits = [band(i) for i in range(n + 1)]

    def relax(i: int, j: int, step: _Step, value: float) -> None:
        ni, nj = i + step.words, j + step.spoken
        low, high = limits[ni]
        if low <= nj <= high and value < cost[ni][nj]:
            cost[ni][nj] = value
            back[ni][nj] = step

    for i in range(n + 1):
        low, high = limits[i]
        for j in range(low, high + 1):
            here = cost[i][j]
            if here == inf:
                continue
            if j < m:  # an espeak word no text word claims
                relax(i, j, _Step(0, 1), here + spoken[j].size + SKIP_COST)
            if i == n:
                continue
            word = shapes[i]
            relax(i, j, _Step(1, 0), here + word.size + (SKIP_COST if word.count else 0))
            weight = COUNT_WEIGHT if word.count else SILENT_COUNT_WEIGHT
            for b in range(1, min(word.count + EXTRA_SPLIT, m - j) + 1):
                if spoken[j + b - 1].sentence != spoken[j].sentence:
                    break  # a word stays inside one sentence
                said = spoken_sizes[j + b] - spoken_sizes[j]
                value = abs(said - word.size) + weight * abs(b - word.count)
                relax(i, j, _Step(1, b), here + value)
            if j < m:
                for a in range(2, min(MAX_MERGE, n - i) + 1):
                    said = spoken[j].size
                    value = abs(said - (sizes[i + a] - sizes[i]))
                    value += COUNT_WEIGHT * abs(1 - (counts[i + a] - counts[i]))
                    relax(i, j, _Step(a, 1), here + value)
    if cost[n][m] == inf:
        return None
    steps: list[_Step] = []
    i, j = n, m
    while i or j:
        step = back[i][j]
        assert step is not None
        steps.append(step)
        i, j = i - step.words, j - step.spoken
    steps.reverse()
    return steps


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
    ) -> None:
        self.text = text
        self.plans = plans
        self.sample_rate = sample_rate
        self.silence_samples = silence_samples
        self.offset = 0
        """Samples of audio before the next sentence."""

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
