"""Wyoming messages without a socket: PCM pieces, the audio events, voice and text checks."""

from __future__ import annotations

from typing import Any

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.tts import SynthesizeVoice

from tts_service.errors import InvalidRequest
from tts_service.wyoming.protocol import (
    SAMPLES_PER_CHUNK,
    audio_chunk,
    audio_start,
    audio_stop,
    check_text_format,
    parse_voice,
    pcm_pieces,
    samples_in,
    text_of,
    voice_wanted,
)

# --------------------------------------------------------------------- audio pieces


@pytest.mark.parametrize("samples", [0, 1, SAMPLES_PER_CHUNK, SAMPLES_PER_CHUNK + 1, 5000])
def test_pcm_pieces_cover_the_audio_in_whole_samples(samples: int) -> None:
    pcm = bytes(range(256)) * (samples * 2 // 256) + bytes(samples * 2 % 256)
    pieces = list(pcm_pieces(pcm))
    assert b"".join(pieces) == pcm
    assert all(0 < len(piece) <= SAMPLES_PER_CHUNK * 2 and len(piece) % 2 == 0 for piece in pieces)
    assert len(pieces) == -(-samples // SAMPLES_PER_CHUNK)


# --------------------------------------------------------------------- events


def test_parse_voice() -> None:
    assert parse_voice(None) is None
    assert parse_voice({}) is None
    parsed = parse_voice({"name": "tiny-multi", "speaker": 1})
    assert parsed is not None and (parsed.name, parsed.speaker) == ("tiny-multi", "1")
    parsed = parse_voice({"language": "en_US"})
    assert parsed is not None and (parsed.name, parsed.language) == (None, "en_US")


@pytest.mark.parametrize(
    "raw",
    ["en_US-joe-medium", ["joe"], {"name": 5}, {"language": ["en"]}, {"speaker": True}],
)
def test_malformed_voices_are_invalid_requests(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_voice(raw)


def test_a_voice_names_the_service_voice_or_its_language() -> None:
    assert voice_wanted(None) == (None, None)
    assert voice_wanted(SynthesizeVoice(name="a", language="en_US", speaker="1")) == ("a", "1")
    assert voice_wanted(SynthesizeVoice(language="en_US")) == ("en_US", None)
    assert voice_wanted(SynthesizeVoice(name="", language="en_US")) == ("", None)
    assert voice_wanted(SynthesizeVoice(language="", speaker="2")) == (None, "2")


@pytest.mark.parametrize("data", [{"text": "Hi."}, {"text": "Hi.", "text_format": "text"}])
def test_plain_text_is_spoken(data: dict[str, Any]) -> None:
    check_text_format(data)
    assert text_of(data) == "Hi."


@pytest.mark.parametrize("data", [{}, {"text": 5}, {"text": None}])
def test_text_must_be_a_string(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        text_of(data)


@pytest.mark.parametrize("text_format", ["ssml", "markdown", 1])
def test_other_text_formats_are_refused(text_format: object) -> None:
    with pytest.raises(InvalidRequest):
        check_text_format({"text": "Hi.", "text_format": text_format})


# --------------------------------------------------------------------- audio events


def test_audio_events_carry_16_bit_mono_and_their_place_in_milliseconds() -> None:
    start = AudioStart.from_event(audio_start(22050))
    assert (start.rate, start.width, start.channels, start.timestamp) == (22050, 2, 1, 0)
    chunk = AudioChunk.from_event(audio_chunk(b"\x01\x00" * 3, 22050, samples_before=44100))
    assert (chunk.rate, chunk.width, chunk.channels) == (22050, 2, 1)
    assert (chunk.audio, chunk.timestamp) == (b"\x01\x00" * 3, 2000)
    assert samples_in(chunk.audio) == 3
    assert AudioStop.from_event(audio_stop(11025, 22050)).timestamp == 500
    assert AudioStop.from_event(audio_stop(0, 16000)).timestamp == 0
