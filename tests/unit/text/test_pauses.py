"""Pauses without SSML: `[pause …]`, and silence after commas and paragraphs."""

from __future__ import annotations

from tts_service.text.frontend import read
from tts_service.text.options import TextOptions


def pauses(text: str, **options: float) -> list[tuple[str, float | None]]:
    return [(s.text.text, s.pause) for s in read(text, TextOptions(**options), "en_US")]  # type: ignore[arg-type]


def test_inline_pauses_in_their_forms() -> None:
    assert pauses("A [pause] b [pause 700ms] c [PAUSE:2] d [pause 1.5s] e") == [
        ("A ", 0.5),
        (" b ", 0.7),
        (" c ", 2.0),
        (" d ", 1.5),
        (" e", None),
    ]


def test_other_brackets_and_raw_phonemes_are_no_pauses() -> None:
    assert pauses("[pause soon] [[ pˈɔːz ]] [1s]") == [("[pause soon] [[ pˈɔːz ]] [1s]", None)]


def test_pauses_in_a_row_and_at_the_end_add_up() -> None:
    assert pauses("A [pause 1s][pause 1s] [pause]") == [("A ", 2.5)]


def test_comma_and_paragraph_pauses() -> None:
    text = "One, two; three.\n\nNext part, here."
    assert pauses(text, comma_pause=0.2, paragraph_pause=0.8) == [
        ("One, ", 0.2),
        ("two; ", 0.2),
        ("three.\n\n", 0.8),
        ("Next part, ", 0.2),
        ("here.", None),
    ]


def test_without_options_the_text_is_one_segment_as_it_was() -> None:
    text = "Hello, world.\n\nAgain."
    (segment,) = read(text, TextOptions(), "en_US")
    assert segment.text.text == text and segment.pause is None
