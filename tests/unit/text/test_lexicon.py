"""Pronunciation lexicons: case rules, whole words, IPA entries, files per language that
are re-read when they change, and a broken file reported, never fatal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tts_service.text.lexicon import Lexicon, read_lexicon
from tts_service.text.mapped import MappedText
from tts_service.voices.lexicons import LexiconBook


def said(lexicon: Lexicon, text: str) -> str:
    return " ".join(lexicon.apply(MappedText.verbatim(text)).text.split())


def test_lower_case_entries_match_any_case_capitalised_ones_only_as_written() -> None:
    lexicon = Lexicon.of({"piper": "pipe er", "US": "you ess", "Kokoro": "[[ kˈoʊkəɹoʊ ]]"})
    assert said(lexicon, "Piper and PIPER, us and US.") == "pipe er and pipe er, us and you ess."
    assert said(lexicon, "Kokoro vs kokoro") == "[[ kˈoʊkəɹoʊ ]] vs kokoro"


def test_whole_words_only_longest_first_and_raw_blocks_untouched() -> None:
    lexicon = Lexicon.of({"new": "knew", "new york": "noo york"})
    assert said(lexicon, "New York is newer. [[ new ]]") == "noo york is newer. [[ new ]]"


def test_a_replacement_stands_for_its_word() -> None:
    text = "Hello Piper."
    result = Lexicon.of({"piper": "pipe er"}).apply(MappedText.verbatim(text))
    start = result.text.index("pipe")
    assert result.span(start, start + len("pipe er")) == (6, 11)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "not a JSON object"),
        ('{"a": 1}', "non-empty text"),
        ('{"a": "[[ ab"}', "unclosed"),
    ],
)
def test_broken_files_say_why(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "en.lexicon.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=says):
        read_lexicon(path)


def test_the_book_reads_language_files_reloads_them_and_reports_broken_ones(
    tmp_path: Path,
) -> None:
    general, specific = tmp_path / "en.lexicon.json", tmp_path / "en_US.lexicon.json"
    general.write_text(json.dumps({"piper": "pipe er", "tomato": "tomahto"}), encoding="utf-8")
    specific.write_text(json.dumps({"tomato": "tomayto"}), encoding="utf-8")
    book = LexiconBook([tmp_path])
    assert said(book.for_language("en_US"), "piper tomato") == "pipe er tomayto"
    assert said(book.for_language("en_GB"), "piper tomato") == "pipe er tomahto"
    assert said(book.for_language("de_DE"), "piper") == "piper"
    specific.write_text("{broken", encoding="utf-8")
    os.utime(specific, ns=(1, 1))  # a new stamp even within the clock's resolution
    assert said(book.for_language("en_US"), "piper tomato") == "pipe er tomahto"
    (general_file, fine), (specific_file, problem) = book.files("en_US")
    assert (general_file, fine, specific_file) == ("en.lexicon.json", None, "en_US.lexicon.json")
    assert problem is not None and "not valid JSON" in problem
    assert book.files("de_DE") == []
