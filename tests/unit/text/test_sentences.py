"""Sentence splitting of streamed text: complete sentences are released as their ends
arrive, abbreviations do not end one, and how the text is cut into chunks changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tts_service.text.sentences import SentenceSplitter


def feed(*chunks: str) -> tuple[list[str], str]:
    """Released sentences and the flushed tail after feeding `chunks` in order."""
    splitter = SentenceSplitter()
    released = [sentence for chunk in chunks for sentence in splitter.add(chunk)]
    return released, splitter.flush()


def test_complete_sentences_are_released_and_the_tail_kept() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("Hello there. How are") == ["Hello there."]
    assert splitter.pending == "How are"
    assert splitter.add(" you? Fine") == ["How are you?"]
    assert splitter.flush() == "Fine"
    assert splitter.pending == "" and splitter.flush() == ""


def test_an_end_mark_waits_for_the_whitespace_after_it() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("It costs 3.") == []  # could still be 3.50
    assert splitter.add("50 dollars.") == []
    assert splitter.add(" Next") == ["It costs 3.50 dollars."]


def test_a_newline_ends_a_sentence_without_punctuation() -> None:
    assert feed("A title\nThe text", " goes on.\n\n") == (["A title", "The text goes on."], "")


def test_a_newline_after_an_abbreviation_still_ends_the_sentence() -> None:
    assert feed("Ask Dr.\nWho knows") == (["Ask Dr."], "Who knows")


def test_exclamations_questions_ellipses_and_closing_quotes() -> None:
    released, tail = feed('Wait... What?! He said "Stop." Then (he left.) Bye')
    assert released == ["Wait...", "What?!", 'He said "Stop."', "Then (he left.)"]
    assert tail == "Bye"


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith is here. ",
        "Dr. Who arrived. ",
        "Use a tool, e.g. a hammer. ",
        "The U.S. Army marched. ",
        "J. R. R. Tolkien wrote books. ",
    ],
)
def test_abbreviations_do_not_end_a_sentence(text: str) -> None:
    assert feed(text) == ([text.strip()], "")


def test_cjk_sentence_ends() -> None:
    assert feed("你好。 再见！ 还有") == (["你好。", "再见！"], "还有")


_TEXT = st.text(alphabet=st.sampled_from(list("ab Mr.!?\n\"'e.g")), max_size=60)


@given(_TEXT, st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_how_the_text_is_cut_into_chunks_changes_nothing(text: str, cuts: list[int]) -> None:
    bounds = sorted({min(cut, len(text)) for cut in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    released, tail = feed(*chunks)
    assert (released, tail) == feed(text)
    # Nothing is lost or invented: only whitespace at sentence ends is dropped.
    assert " ".join([*released, tail]).split() == text.split()
    assert all(sentence and sentence == sentence.strip() for sentence in released)


def test_an_ssml_document_is_one_piece_released_when_it_closes() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("<speak>One. Two. ") == []
    assert splitter.add('<break time="1s"/> Three.</speak> After. ') == [
        '<speak>One. Two. <break time="1s"/> Three.</speak>',
        "After.",
    ]
    assert splitter.add("<speak>Unclosed. ") == [] and splitter.flush() == "<speak>Unclosed."


def test_raw_phonemes_are_never_cut() -> None:
    splitter = SentenceSplitter()
    assert splitter.add("Say [[ a. b ]] now. Next ") == ["Say [[ a. b ]] now."]
