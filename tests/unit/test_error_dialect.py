"""The error dialects without a server: the native shape, OpenAI's under /v1/, and the raw
ASGI answer that the middlewares and the Ray proxy send."""

from __future__ import annotations

import json

import pytest

from tts_service.error_dialect import (
    error_body,
    error_messages,
    error_status,
    is_openai,
    native_error_body,
    openai_error_body,
)
from tts_service.errors import (
    BodyTooLarge,
    Overloaded,
    ServiceError,
    ShuttingDown,
    Unauthorized,
    ValidationFailed,
    VoiceNotFound,
)


def test_the_dialect_follows_the_path() -> None:
    assert is_openai("/v1/audio/speech") and is_openai("/v1/models/x")
    assert not is_openai("/v1") and not is_openai("/synthesize") and not is_openai("/v1x/")
    error = Unauthorized("missing API key")
    assert error_body("/synthesize", error) == native_error_body(error)
    assert error_body("/v1/models", error) == openai_error_body(error)


def test_native_body_keeps_the_details() -> None:
    error = VoiceNotFound("no voice 'x'", available=["a"])
    assert native_error_body(error) == {
        "error": {"code": "voice_not_found", "message": "no voice 'x'", "available": ["a"]}
    }


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Unauthorized("no key"), "authentication_error"),
        (BodyTooLarge("big"), "invalid_request_error"),
        (Overloaded("busy"), "server_error"),
    ],
)
def test_openai_body_has_its_four_members(error: ServiceError, kind: str) -> None:
    assert openai_error_body(error) == {
        "error": {"message": error.message, "type": kind, "param": None, "code": error.code}
    }


def test_openai_answers_a_bad_parameter_or_voice_with_400() -> None:
    for error in (ValidationFailed("bad", param="speed"), VoiceNotFound("none")):
        assert error_status("/v1/audio/speech", error) == 400
        assert error_status("/synthesize", error) == error.status


def _answer(messages: list[dict[str, object]]) -> tuple[int, dict[bytes, bytes], bytes]:
    start, body = messages
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    headers = start["headers"]
    assert isinstance(headers, list) and isinstance(start["status"], int)
    raw = body["body"]
    assert isinstance(raw, bytes)
    return start["status"], dict(headers), raw


def test_raw_answer_is_json_with_its_length_and_extra_headers_last() -> None:
    error = BodyTooLarge("request body exceeds 10 bytes")
    messages = error_messages("/synthesize", error, extra=[(b"connection", b"close")])
    status, headers, body = _answer(messages)
    assert status == 413
    assert (
        body == b'{"error": {"code": "body_too_large", "message": "request body exceeds 10 bytes"}}'
    )
    assert list(headers) == [b"content-type", b"content-length", b"connection"]
    assert headers[b"content-length"] == str(len(body)).encode()
    assert json.loads(body) == error_body("/synthesize", error)


def test_raw_answer_says_when_to_retry() -> None:
    for error in (Overloaded("busy", retry_after=4), ShuttingDown("stopping")):
        _, headers, body = _answer(error_messages("/v1/audio/speech", error))
        assert headers[b"retry-after"] == str(error.retry_after).encode()  # type: ignore[attr-defined]
        assert json.loads(body)["error"]["type"] == "server_error"
    _, headers, _ = _answer(error_messages("/synthesize", Unauthorized("no key")))
    assert b"retry-after" not in headers


def test_raw_answer_can_refuse_a_websocket_handshake() -> None:
    start, body = error_messages("/synthesize/stream", Unauthorized("no"), kind="websocket.http")
    assert start["type"] == "websocket.http.response.start" and start["status"] == 401
    assert body["type"] == "websocket.http.response.body"
