"""The pure pieces of the Wyoming server: PCM pieces, the `info` answer, voice selection,
event validation, bounded event reading."""

from __future__ import annotations

import asyncio
import json

import pytest
from wyoming.event import Event
from wyoming.info import Info

from tts_service.engine.voice import VoiceInfo
from tts_service.errors import InvalidRequest, VoiceNotFound
from tts_service.voices.names import voice_for_language
from tts_service.wyoming.handler import (
    SAMPLES_PER_CHUNK,
    _server_for,
    build_info,
    parse_voice,
    pcm_pieces,
    read_event,
)

# --------------------------------------------------------------------- audio pieces


@pytest.mark.parametrize("samples", [0, 1, SAMPLES_PER_CHUNK, SAMPLES_PER_CHUNK + 1, 5000])
def test_pcm_pieces_cover_the_audio_in_whole_samples(samples: int) -> None:
    pcm = bytes(range(256)) * (samples * 2 // 256) + bytes(samples * 2 % 256)
    pieces = list(pcm_pieces(pcm))
    assert b"".join(pieces) == pcm
    assert all(0 < len(piece) <= SAMPLES_PER_CHUNK * 2 and len(piece) % 2 == 0 for piece in pieces)
    assert len(pieces) == -(-samples // SAMPLES_PER_CHUNK)


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


@pytest.mark.parametrize("uri", ["stdio://", "http://127.0.0.1:10200", "tcp://127.0.0.1"])
def test_only_tcp_and_unix_uris_with_a_port_are_served(uri: str) -> None:
    with pytest.raises(ValueError):
        _server_for(uri)


def test_tcp_and_unix_uris_are_served() -> None:
    assert _server_for("tcp://127.0.0.1:10200") is not None
    assert _server_for("unix:///tmp/wyoming.sock") is not None


# --------------------------------------------------------------------- reading events


def reader_of(*parts: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for part in parts:
        reader.feed_data(part)
    reader.feed_eof()
    return reader


def header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


async def test_an_event_with_data_and_payload_is_read_whole() -> None:
    data = json.dumps({"text": "Hi."}).encode()
    reader = reader_of(
        header(type="synthesize", data={"a": 1}, data_length=len(data), payload_length=3),
        data,
        b"pcm",
        header(type="ping"),
    )
    event = await read_event(reader, max_bytes=1024)
    assert event == Event("synthesize", {"a": 1, "text": "Hi."}, b"pcm")
    assert await read_event(reader, max_bytes=1024) == Event("ping", {}, None)
    assert await read_event(reader, max_bytes=1024) is None  # the end of the connection


@pytest.mark.parametrize(
    "raw",
    [
        header(type="synthesize", data_length=2048),  # declares more than the limit
        header(type="audio-chunk", data_length=600, payload_length=600),
        header(type="synthesize", data_length=-1),
        header(type="synthesize", payload_length="10"),
        header(type="synthesize", data_length=10) + b'{"text":',  # cut short
        header(type="synthesize", data_length=2) + b"[]",  # data that is no object
        header(type="synthesize", data=[1]),
        header(data={}),  # no type
        b"[1, 2]\n",
        b"not json\n",
        b"\xff\xfe\n",
        b"x" * 70_000 + b"\n",  # a line past the reader's limit
    ],
)
async def test_malformed_or_oversized_events_end_the_connection(raw: bytes) -> None:
    assert await read_event(reader_of(raw, header(type="ping")), max_bytes=1024) is None
