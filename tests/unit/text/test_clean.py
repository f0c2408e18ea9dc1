"""The clean-up before the phonemizer: what espeak-ng cannot take becomes a space, in place."""

from __future__ import annotations

from tts_service.text.clean import speakable


def test_control_characters_and_lone_surrogates_become_spaces_in_place() -> None:
    text = "a\x00b\x1fc\x7fd\ud800e"
    cleaned = speakable(text)
    assert cleaned == "a b c d e"
    assert len(cleaned) == len(text)


def test_tabs_line_breaks_and_other_scripts_stay() -> None:
    text = "Hello,\tworld.\nZweite Zeile.\r\n日本語 – ok"
    assert speakable(text) == text
