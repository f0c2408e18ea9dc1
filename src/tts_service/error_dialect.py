"""How an error reads to the client: the native shape `{"error": {"code", "message", ...}}`,
or OpenAI's `{"error": {"message", "type", "param", "code"}}` under `/v1/` (its SDKs read
`type`). Plain data, free of FastAPI and of the service, so that the routes, the ASGI
middlewares in front of them and the Ray proxy (which must stay light) all answer alike."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from tts_service.errors import (
    RetryLater,
    ServiceError,
    ShuttingDown,
    SpeakerNotFound,
    ValidationFailed,
    VoiceNotFound,
)

OPENAI_PREFIX: Final = "/v1/"
# The service names fields as the native API does; OpenAI clients know them by these names.
_PARAM_NAMES: Final = {"text": "input", "length_scale": "speed"}


def is_openai(path: str) -> bool:
    return path.startswith(OPENAI_PREFIX)


def error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_status(error: ServiceError) -> int:
    """OpenAI answers every bad parameter, an unknown voice included, with 400. A 404 on
    its routes would read as "endpoint missing" to clients probing for compatibility."""
    if isinstance(error, VoiceNotFound | ValidationFailed):
        return 400
    return error.status


def _param(error: ServiceError) -> str | None:
    """The top-level request field at fault, by its OpenAI name."""
    param = error.details.get("param")
    if param is not None:
        field = str(param).split(".")[0]  # "voice.VoiceRef.id" -> "voice"
        return _PARAM_NAMES.get(field, field)
    if isinstance(error, VoiceNotFound):
        return "voice"
    if isinstance(error, SpeakerNotFound):
        return "speaker"
    return None


def openai_error_body(error: ServiceError) -> dict[str, Any]:
    status = openai_status(error)
    return {
        "error": {
            "message": error.message,
            "type": error_type(status),
            "param": _param(error),
            "code": error.code,
        }
    }


def native_error_body(error: ServiceError) -> dict[str, Any]:
    return {"error": error.to_dict()}


def error_body(path: str, error: ServiceError) -> dict[str, Any]:
    """The body for an error on `path`, in the dialect of the API that path belongs to."""
    return openai_error_body(error) if is_openai(path) else native_error_body(error)


def error_status(path: str, error: ServiceError) -> int:
    return openai_status(error) if is_openai(path) else error.status


def error_headers(error: ServiceError) -> dict[str, str]:
    if isinstance(error, RetryLater | ShuttingDown):
        return {"Retry-After": str(error.retry_after)}
    return {}


Header = tuple[bytes, bytes]


def error_messages(
    path: str, error: ServiceError, extra: Iterable[Header] = (), kind: str = "http"
) -> list[dict[str, Any]]:
    """The two ASGI messages of a JSON error answered before any app runs (a middleware's
    refusal, the proxy's rewrite). `kind` "websocket.http" refuses a WebSocket handshake
    with a real response; `extra` headers follow the standard ones."""
    body = json.dumps(error_body(path, error)).encode()
    headers: list[Header] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in error_headers(error).items()
    ]
    headers += extra
    status = error_status(path, error)
    return [
        {"type": f"{kind}.response.start", "status": status, "headers": headers},
        {"type": f"{kind}.response.body", "body": body},
    ]
