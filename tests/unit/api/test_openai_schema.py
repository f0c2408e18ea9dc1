"""The OpenAI API's own logic without a server: body validation, error mapping, voice and
model resolution, and the SSE framing."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from tts_service.api.body import validate
from tts_service.api.errors import openai_error_response
from tts_service.api.openai import (
    MODELS,
    ModelNotFound,
    SpeechBody,
    check_model,
    mapped_voice,
    sse_stream,
    voice_aliases,
    voice_not_found,
)
from tts_service.config import OPENAI_VOICE_NAMES, Settings
from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.error_dialect import openai_error_body
from tts_service.errors import (
    MalformedJSON,
    Overloaded,
    ServiceError,
    SpeakerNotFound,
    SynthesisFailed,
    TextTooLong,
    ValidationFailed,
    VoiceNotFound,
)
from tts_service.scheduling.jobs import Job, Priority
from tts_service.service import Admitted

INSTALLED = ["en_US-joe-medium", "tiny-multi"]


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


# ---------------------------------------------------------------------------- body


def test_body_defaults_follow_openai() -> None:
    body = validate(SpeechBody, {"input": "Hi."})
    assert body.response_format == "mp3"
    assert body.speed == 1.0
    assert body.stream_format == "audio"
    assert body.model is None and body.voice_name is None


def test_voice_may_be_a_name_or_an_id_object() -> None:
    assert validate(SpeechBody, {"input": "a", "voice": "alloy"}).voice_name == "alloy"
    assert validate(SpeechBody, {"input": "a", "voice": {"id": "tiny-multi"}}).voice_name == (
        "tiny-multi"
    )


def test_unknown_fields_are_ignored_and_instructions_accepted() -> None:
    body = validate(
        SpeechBody, {"input": "a", "instructions": "Speak like a pirate.", "temperature": 0.3}
    )
    assert body.instructions == "Speak like a pirate."


@pytest.mark.parametrize("speed", [0.25, 1.0, 4.0])
def test_speed_range_is_inclusive(speed: float) -> None:
    assert validate(SpeechBody, {"input": "a", "speed": speed}).speed == speed


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("speed", 0.24),
        ("speed", 4.01),
        ("speed", "fast"),
        ("response_format", "ogg"),
        ("stream_format", "chunks"),
        ("input", None),
        ("voice", 3),
    ],
)
def test_invalid_fields_name_the_param(field: str, value: Any) -> None:
    with pytest.raises(ValidationFailed) as raised:
        validate(SpeechBody, {"input": "a", field: value})
    assert openai_error_body(raised.value)["error"]["param"] == field


def test_speed_goes_to_the_service_as_a_factor() -> None:
    """The service turns it into a length scale relative to the voice's default pace
    (tests/unit/test_voice_defaults.py checks that on a real voice)."""
    body = validate(SpeechBody, {"input": "Hi.", "speed": 2.0, "speaker": "bob"})
    request = body.to_request("slow-voice")
    assert request.voice == "slow-voice"
    assert request.speed == 2.0 and request.length_scale is None
    assert request.speaker == "bob"
    assert request.text == "Hi."


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("error", "status", "param"),
    [
        (ValidationFailed("speed: too big", param="speed"), 400, "speed"),
        (ValidationFailed("bad", param="voice.VoiceRef.id"), 400, "voice"),
        (ValidationFailed("text must not be empty", param="text"), 400, "input"),
        (MalformedJSON("not JSON"), 400, None),
        (VoiceNotFound("voice 'x' is not installed", available=["a"]), 400, "voice"),
        (SpeakerNotFound("no speaker 'm'"), 400, "speaker"),
        (ModelNotFound("no model", param="model"), 400, "model"),
        (TextTooLong("too long", param="text"), 413, "input"),
        (Overloaded("busy", retry_after=3), 503, None),
        (SynthesisFailed("boom"), 500, None),
    ],
)
def test_errors_take_openais_shape(error: ServiceError, status: int, param: str | None) -> None:
    response = openai_error_response(error)
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body == {
        "error": {
            "message": error.message,
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": param,
            "code": error.code,
        }
    }


def test_overloaded_tells_when_to_retry() -> None:
    response = openai_error_response(Overloaded("busy", retry_after=7))
    assert response.headers["retry-after"] == "7"


# ------------------------------------------------------------------- voices, models


def test_openai_voices_map_to_the_default_voice() -> None:
    config = settings()
    for name in OPENAI_VOICE_NAMES:
        assert mapped_voice(config, name) == "en_US-joe-medium"
    assert mapped_voice(config, None) == "en_US-joe-medium"
    assert mapped_voice(config, "tiny-multi") == "tiny-multi"


def test_configured_map_wins_and_a_missing_target_is_named() -> None:
    config = settings(openai_voice_map={"nova": "tiny-multi", "sage": "gone"})
    assert mapped_voice(config, "nova") == "tiny-multi"
    assert mapped_voice(config, "sage") == "gone"
    error = voice_not_found("sage", "gone", VoiceNotFound("voice 'gone' is not installed"))
    assert "'sage' maps to 'gone'" in error.message and error.details["param"] == "voice"
    assert voice_aliases(config)["nova"] == "tiny-multi"
    assert voice_aliases(config)["alloy"] == "en_US-joe-medium"


def test_a_piper_name_keeps_the_lookups_reason() -> None:
    reason = "voice 'de_DE-thorsten-low' is not installed; it is in the voice catalog"
    error = voice_not_found("de_DE-thorsten-low", "de_DE-thorsten-low", VoiceNotFound(reason))
    assert error.message.startswith(reason) and "/v1/audio/voices" in error.message


def test_unknown_voice_echo_is_bounded() -> None:
    error = voice_not_found("x" * 10_000, "y" * 10_000, VoiceNotFound("voice is not installed"))
    assert len(error.message) < 250


def test_models() -> None:
    for model in (*MODELS, None):
        check_model(model)
    with pytest.raises(ModelNotFound) as raised:
        check_model("whisper-1")
    assert openai_error_body(raised.value)["error"]["code"] == "model_not_found"


# ----------------------------------------------------------------------------- SSE


class _Voice:
    sample_rate = 16000
    has_solo_session = False

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        raise AssertionError("not used")


def _admitted(samples: int) -> Admitted:
    job = Job(
        voice=_Voice(),
        sentences=[[1, 2, 3], [4, 5]],
        options=SynthesisOptions(),
        priority=Priority.NORMAL,
        timeout=1.0,
    )
    job.audio_samples = samples
    return Admitted(job=job, scheduler=None, voice=None, sentences=2)  # type: ignore[arg-type]


def _events(frames: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for frame in frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        events.append(json.loads(frame[len(b"data: ") :]))
    return events


async def test_sse_deltas_then_done_with_usage() -> None:
    async def audio() -> AsyncGenerator[bytes, None]:
        yield b"first"
        yield b"second"

    frames = [frame async for frame in sse_stream(audio(), _admitted(samples=1024))]
    events = _events(frames)
    assert [event["type"] for event in events] == [
        "speech.audio.delta",
        "speech.audio.delta",
        "speech.audio.done",
    ]
    assert [base64.b64decode(event["audio"]) for event in events[:2]] == [b"first", b"second"]
    assert events[2]["usage"] == {"input_tokens": 5, "output_tokens": 4, "total_tokens": 9}


async def test_sse_failure_midway_is_an_error_event() -> None:
    async def audio() -> AsyncGenerator[bytes, None]:
        yield b"first"
        raise SynthesisFailed("synthesis failed: boom")

    events = _events([frame async for frame in sse_stream(audio(), _admitted(samples=0))])
    assert [event["type"] for event in events] == ["speech.audio.delta", "error"]
    assert events[1]["error"]["code"] == "synthesis_failed"
    assert events[1]["error"]["type"] == "server_error"


async def test_closing_sse_early_closes_the_audio_stream() -> None:
    closed = False

    async def audio() -> AsyncGenerator[bytes, None]:
        nonlocal closed
        try:
            while True:
                yield b"more"
        finally:
            closed = True

    events = sse_stream(audio(), _admitted(samples=0))
    assert (await anext(events)).startswith(b"data: ")
    await events.aclose()
    assert closed
