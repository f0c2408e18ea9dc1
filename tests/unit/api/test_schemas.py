"""The patterns the document states for text and voice names agree with what the service
itself accepts (it enforces them in its own words; the document only predicts them)."""

from __future__ import annotations

import re

import pytest

from tts_service.api.schemas import SPEAKABLE, VOICE_NAME, SynthesizeBody
from tts_service.errors import InvalidRequest
from tts_service.voices.loaded import validate_voice_name

NAMES = ["en_US-joe-medium", "a", "x.y+z", "", "_x", "-x", "a..b", "a/b", "a b", "a" * 129]


@pytest.mark.parametrize("name", NAMES)
def test_the_voice_name_pattern_is_the_services_rule(name: str) -> None:
    try:
        accepted = name == "" or validate_voice_name(name) == name  # "": the default voice
    except InvalidRequest:
        accepted = False
    assert bool(re.search(VOICE_NAME, name)) == accepted


@pytest.mark.parametrize("text", ["\u001b", " \t\n", "\x00\x7f", "\u0085\u3000", "\x9b"])
def test_text_with_nothing_to_speak_does_not_match(text: str) -> None:
    assert re.search(SPEAKABLE, text) is None


@pytest.mark.parametrize("text", ["Hi.", "0", "\u00e9", "a\u001b"])
def test_text_with_a_character_to_speak_matches(text: str) -> None:
    assert re.search(SPEAKABLE, text)


def test_the_body_schema_states_the_patterns_but_does_not_enforce_them() -> None:
    schema = SynthesizeBody.model_json_schema()["properties"]
    assert schema["text"]["pattern"] == SPEAKABLE
    assert schema["voice"]["anyOf"][0]["pattern"] == VOICE_NAME
    body = SynthesizeBody.model_validate({"text": "\u001b", "voice": "a..b"})
    assert body.text == "\u001b"  # the service refuses it, with its own message
