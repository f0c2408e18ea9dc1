"""Mapping espeak's words back to the text's words, without espeak: phoneme strings are
built by hand (and by Hypothesis) the way espeak shapes them, with numbers that expand,
words that merge, words it drops and sentences it cuts, so the expected answer is known."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from piper.const import BOS, EOS, PAD
from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP, phonemes_to_ids

from tts_service.engine.words import PlannedWord, WordClock, id_starts, plan, shape, text_words

ID_MAP = DEFAULT_PHONEME_ID_MAP
LETTERS = "abdefhiklmnoprstuvzəɪʊ"


def starts_of(sentences: list[list[str]]) -> list[list[int]]:
    return [id_starts(items, ID_MAP, BOS, PAD, EOS) for items in sentences]


# ------------------------------------------------------------------------ the text side


def test_text_words_trim_quotes_brackets_and_punctuation() -> None:
    text = ' "Hello,"  (world)  — it\'s  $3.50,  U.S.A.  *bold*  & well-known...  \n« Ça » '
    found = text_words(text)
    assert [text[w.start : w.end] for w in found] == [
        "Hello",
        "world",
        "it's",
        "$3.50",
        "U.S.A",
        "*bold*",
        "&",
        "well-known",
        "Ça",
    ]
    assert [text[w.token_start : w.token_end] for w in found][:2] == ['"Hello,"', "(world)"]
    assert all(w.token_start <= w.start < w.end <= w.token_end for w in found)


def test_text_words_within_a_range_keep_offsets_into_the_whole_text() -> None:
    text = "First part. Second part here."
    found = text_words(text, 12, len(text))
    assert [text[w.start : w.end] for w in found] == ["Second", "part", "here"]
    assert found[0].start == 12


def test_shape_counts_espeak_words_and_their_phonemes() -> None:
    assert shape("nˈaɪntiːnhˈʌndɹɪd ˈeɪɾi fˈɔːɹ") == shape("naɪntiːnhʌndɹɪd eɪɾi fɔːɹ")
    assert shape("dˈɑːlɚ θɹˈiː, ") == shape("dɑːlɚ θɹiː")
    assert shape("dˈɑːlɚ θɹˈiː").count == 2 and shape("dˈɑːlɚ θɹˈiː").size == 9
    assert shape("").count == 0 and shape(" , ").size == 0


@pytest.mark.parametrize("seed", range(20))
def test_id_starts_mirror_pipers_phoneme_ids(seed: int) -> None:
    rng = random.Random(seed)
    symbols = [*ID_MAP, "✗", "q̃"]  # two items Piper has no id for: skipped, as Piper does
    items = [rng.choice(symbols) for _ in range(rng.randint(0, 40))]
    ids = phonemes_to_ids(items, ID_MAP)
    starts = id_starts(items, ID_MAP, BOS, PAD, EOS)
    assert len(starts) == len(items) + 1
    assert ids[: starts[0]] == ID_MAP[BOS] + ID_MAP[PAD]
    for k, item in enumerate(items):
        expected = [*ID_MAP[item], *ID_MAP[PAD]] if item in ID_MAP else []
        assert ids[starts[k] : starts[k + 1]] == expected
    assert ids[starts[-1] :] == ID_MAP[EOS]


# ------------------------------------------------------------- espeak shapes, by hand


@dataclass
class Case:
    """A text and what espeak makes of it, with the phoneme items each word truly owns."""

    text: str = ""
    alone: list[str] = field(default_factory=list)
    sentences: list[list[str]] = field(default_factory=lambda: [[]])
    owned: list[tuple[int, int, int] | None] = field(default_factory=list)
    """Per word: (sentence, first item, end item), None where espeak says nothing."""

    def word(self, written: str, alone: str, said: str | None = None, merge: bool = False) -> None:
        """Add a word read as `alone` on its own and as `said` here (default: the same);
        `merge`: espeak runs it into the previous word with no space."""
        self.text += ("" if not self.text else " ") + written
        self.alone.append(alone)
        said = alone if said is None else said
        items = self.sentences[-1]
        if not said:
            self.owned.append(None)
            return
        if items and not merge:
            items.append(" ")
        first = len(items)
        items.extend(said)
        self.owned.append((len(self.sentences) - 1, first, len(items)))

    def end_sentence(self, mark: str = ".") -> None:
        self.sentences[-1].append(mark)
        self.sentences.append([])

    def planned(self) -> list[list[PlannedWord]]:
        sentences = [items for items in self.sentences if items]
        return plan(
            sentences, starts_of(sentences), text_words(self.text), [shape(a) for a in self.alone]
        )

    def expected(self, k: int) -> tuple[int, int, int] | None:
        owned = self.owned[k]
        if owned is None:
            return None
        sentence, first, end = owned
        starts = starts_of([items for items in self.sentences if items])[sentence]
        return sentence, starts[first], starts[end]


def flat(plans: list[list[PlannedWord]]) -> list[tuple[int, PlannedWord]]:
    return [(k, word) for k, words in enumerate(plans) for word in words]


def check_exact(case: Case) -> None:
    placed = flat(case.planned())
    found = text_words(case.text)
    assert [(w.char_start, w.char_end) for _, w in placed] == [(w.start, w.end) for w in found]
    for k, (sentence, word) in enumerate(placed):
        expected = case.expected(k)
        if expected is not None:
            assert (sentence, word.id_start, word.id_end) == expected, (k, case.text)


def test_a_number_read_as_several_espeak_words() -> None:
    case = Case()
    case.word("In", "ˈɪn", "ɪn")
    case.word("1984", "nˈaɪntiːnhˈʌndɹɪd ˈeɪɾi fˈɔːɹ")
    case.word("it", "ɪt")
    case.word("cost", "kˈɔst")
    case.word("$3.50", "θɹˈiː dˈɑːlɚz fˈɪfti sˈɛnts")
    case.end_sentence()
    check_exact(case)


def test_words_espeak_runs_together_share_its_word_by_their_phonemes() -> None:
    case = Case()
    case.word("Wait...", "wˈeɪt")
    case.word("what?", "wˌʌt", merge=True)
    case.word("no", "nˈoʊ")
    case.end_sentence("?")
    check_exact(case)
    wait, what, _ = flat(case.planned())
    assert wait[1].id_end == what[1].id_start  # one after the other, no gap and no overlap


def test_a_sentence_espeak_ends_inside_the_text() -> None:
    case = Case()
    case.word("said", "sˈɛd")
    case.word("Dr.", "dˈɑːktɚ")
    case.end_sentence()
    case.word("Smith.", "smˈɪθ")
    case.end_sentence()
    placed = case.planned()
    assert [len(words) for words in placed] == [2, 1]
    check_exact(case)


def test_a_word_espeak_skips_takes_no_time_where_the_last_one_ended() -> None:
    case = Case()
    case.word("Hello", "həlˈoʊ")
    case.word("❦", "fləʊɹən", said="")
    case.word("there", "ðˈɛɹ")
    case.end_sentence()
    (_, hello), (_, skipped), (_, there) = flat(case.planned())
    assert skipped.id_start == skipped.id_end == hello.id_end
    assert there.id_start > hello.id_end
    check_exact(case)


def test_a_word_silent_alone_gets_what_espeak_says_for_it_in_context() -> None:
    """German "3,50 €": espeak reads "€" as nothing alone, as "Euro" after a number."""
    case = Case()
    case.word("3,50", "drˈaɪ kɔmɑː fˈʏnf nˈʊl")
    case.word("€,", "", said="ˈɔøroː")
    case.word("sagte", "zˈɑːɡtə")
    case.end_sentence()
    check_exact(case)


def test_context_variants_of_a_word_still_pair_one_to_one() -> None:
    """Alone and in context a word may differ in a phoneme or two ("the": ðə / ðɪ)."""
    case = Case()
    for written, alone, said in [("the", "ðə", "ðɪ"), ("apple", "ˈæpəl", "ˈæpl"), ("a", "ɐ", "eɪ")]:
        case.word(written, alone, said)
    case.word("pie", "pˈaɪ")
    case.end_sentence()
    check_exact(case)


# --------------------------------------------------------------- espeak shapes, at random


@st.composite
def cases(draw: st.DrawFn, drops: bool) -> Case:
    """Random texts with what espeak might make of them: words read the same or with a
    phoneme changed, numbers read as several words, runs of two words merged, sentence
    breaks, and (with `drops`) words espeak says nothing for."""
    case = Case()
    count = draw(st.integers(1, 40))
    previous_single = False
    for k in range(count):
        stress = draw(st.sampled_from(["", "ˈ", "ˌ"]))
        parts = draw(st.lists(st.text(LETTERS, min_size=1, max_size=6), min_size=1, max_size=4))
        alone = " ".join(stress + part for part in parts)
        kind = draw(st.sampled_from(["same", "changed", "merged", "dropped"]))
        said = alone
        if kind == "changed":
            said = alone[:-1] + draw(st.sampled_from(LETTERS))
        if kind == "dropped" and not drops:
            kind = "same"
        merge = kind == "merged" and previous_single and len(parts) == 1
        case.word(f"w{k}", alone, "" if kind == "dropped" else said, merge=merge)
        previous_single = len(parts) == 1 and kind != "dropped" and not merge
        if draw(st.integers(0, 9)) == 0:
            case.end_sentence(draw(st.sampled_from([".", "!", "?"])))
            previous_single = False
    case.end_sentence()
    return case


@settings(max_examples=60, deadline=None)
@given(cases(drops=False))
def test_every_word_is_placed_exactly_where_espeak_said_it(case: Case) -> None:
    check_exact(case)


@settings(max_examples=60, deadline=None)
@given(cases(drops=True))
def test_words_stay_in_order_whatever_espeak_drops(case: Case) -> None:
    placed = flat(case.planned())
    found = text_words(case.text)
    assert [(w.char_start, w.char_end) for _, w in placed] == [(w.start, w.end) for w in found]
    sentences = [items for items in case.sentences if items]
    for (s1, a), (s2, b) in itertools.pairwise(placed):
        assert a.id_start <= a.id_end
        assert s1 < s2 or (s1 == s2 and a.id_end <= b.id_start)
    for sentence, word in placed:
        assert word.id_end <= starts_of(sentences)[sentence][-1]


# ------------------------------------------------------------------------------ timing


def test_the_clock_counts_the_audio_and_silence_before_each_sentence() -> None:
    text = "One two. Three."
    plans = [
        [PlannedWord(0, 3, 2, 4), PlannedWord(4, 7, 6, 9)],
        [PlannedWord(9, 14, 2, 7)],
    ]
    clock = WordClock(text, plans, sample_rate=1000, silence_samples=500)
    first = clock.sentence(0, 10 * 100 + 500, [100] * 10, 10)
    assert [(w.text, w.start, w.end) for w in first] == [("One", 0.2, 0.4), ("two", 0.6, 0.9)]
    second = clock.sentence(1, 8 * 50 + 500, [10, 20, 30, 40, 50, 60, 70, 120], 8)
    assert [w.text for w in second] == ["Three"]
    assert (second[0].start, second[0].end) == pytest.approx((1.53, 1.78))
    assert [(w.char_start, w.char_end) for w in first + second] == [(0, 3), (4, 7), (9, 14)]


def test_without_durations_the_clock_spreads_the_speech_evenly() -> None:
    clock = WordClock("Hi you.", [[PlannedWord(0, 2, 2, 4), PlannedWord(3, 6, 5, 8)]], 100, 50)
    words = clock.sentence(0, 10 * 10 + 50, None, 10)
    assert [(w.start, w.end) for w in words] == [(0.2, 0.4), (0.5, 0.8)]
    assert clock.offset == 150
