"""The `info` answer built from voice descriptions, and the voice a language picks."""

from __future__ import annotations

import pytest
from wyoming.info import Info

from tts_service.engine.voice import VoiceInfo
from tts_service.errors import VoiceNotFound
from tts_service.voices.names import voice_for_language
from tts_service.wyoming.info import build_info

# --------------------------------------------------------------------- info and voices


def voice(
    name: str,
    language: str = "en_US",
    speakers: dict[str, int] | None = None,
    num_speakers: int = 1,
) -> VoiceInfo:
    return VoiceInfo(
        name=name,
        language=language,
        sample_rate=22050,
        quality="medium",
        speakers=speakers or {},
        num_speakers=num_speakers,
        dataset=name.split("-")[1] if "-" in name else None,
    )


VOICES = [
    voice("en_US-joe-medium"),
    voice("de_DE-thorsten-medium", language="de_DE"),
    voice("en_GB-many-medium", "en_GB", {"zoe": 1, "adam": 0, "mia": 2}, num_speakers=3),
    voice("en_US-ids-medium", num_speakers=2),
]


def test_info_lists_every_voice_as_one_streaming_program() -> None:
    info = Info.from_event(build_info(VOICES).event())  # as Home Assistant parses it
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.installed and program.supports_synthesize_streaming and program.version
    names = [v.name for v in program.voices]
    assert names == sorted(info.name for info in VOICES)
    by_name = {v.name: v for v in program.voices}
    assert by_name["de_DE-thorsten-medium"].languages == ["de_DE"]
    assert by_name["en_US-joe-medium"].description == "joe (medium)"
    assert by_name["en_US-joe-medium"].speakers is None
    assert [s.name for s in by_name["en_GB-many-medium"].speakers or []] == ["adam", "zoe", "mia"]
    assert [s.name for s in by_name["en_US-ids-medium"].speakers or []] == ["0", "1"]
    assert all(v.installed and v.attribution.url for v in program.voices)


@pytest.mark.parametrize(
    ("language", "default", "expected"),
    [
        ("en_US", "en_US-joe-medium", "en_US-joe-medium"),
        ("en-us", "en_US-joe-medium", "en_US-joe-medium"),
        ("en_US", "de_DE-thorsten-medium", "en_US-ids-medium"),  # first by name
        ("en_GB", "en_US-joe-medium", "en_GB-many-medium"),  # exact before family
        ("en", "en_US-joe-medium", "en_US-joe-medium"),  # family: the default first
        ("de", "en_US-joe-medium", "de_DE-thorsten-medium"),
    ],
)
def test_voice_for_language(language: str, default: str, expected: str) -> None:
    assert voice_for_language(VOICES, default, language) == expected


def test_voice_for_an_unknown_language_is_an_error() -> None:
    with pytest.raises(VoiceNotFound):
        voice_for_language(VOICES, "en_US-joe-medium", "fr_FR")
