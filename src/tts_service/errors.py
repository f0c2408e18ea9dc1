"""Domain errors: each maps to one HTTP status, one error code and one CLI exit code."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a client can be told about."""

    status: int = 500
    code: str = "internal_error"
    exit_code: int = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"
    exit_code = 2


class MalformedJSON(InvalidRequest):
    code = "malformed_json"


class ValidationFailed(ServiceError):
    """The request parsed but a field has the wrong type or value."""

    status = 422
    code = "validation_error"
    exit_code = 2


class TextTooLong(ServiceError):
    status = 413
    code = "text_too_long"
    exit_code = 2


class BodyTooLarge(ServiceError):
    status = 413
    code = "body_too_large"
    exit_code = 2


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"
    exit_code = 2


class VoiceNotFound(ServiceError):
    status = 404
    code = "voice_not_found"
    exit_code = 3


class SpeakerNotFound(InvalidRequest):
    code = "invalid_speaker"


class Overloaded(ServiceError):
    """Admission refused: the queue is full. Clients should retry after `retry_after` s."""

    status = 503
    code = "overloaded"
    exit_code = 4

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)


class ShuttingDown(ServiceError):
    status = 503
    code = "shutting_down"
    exit_code = 4

    retry_after = 5


class DeadlineExceeded(ServiceError):
    status = 504
    code = "deadline_exceeded"
    exit_code = 5


class Cancelled(ServiceError):
    status = 499
    code = "cancelled"
    exit_code = 6


class SynthesisFailed(ServiceError):
    status = 500
    code = "synthesis_failed"
    exit_code = 7


class AudioTooLong(ServiceError):
    """The request would produce more audio than one request may (max_audio_seconds)."""

    status = 413
    code = "audio_too_long"
    exit_code = 2


class ForbiddenOrigin(ServiceError):
    """A browser page from another site tried to use the server."""

    status = 403
    code = "forbidden_origin"
    exit_code = 2


class InvalidHost(InvalidRequest):
    """The Host header names no host this server answers for (DNS rebinding guard)."""

    code = "invalid_host"


class VoiceUnavailable(ServiceError):
    """The voice is installed but its files cannot be read or loaded."""

    status = 500
    code = "voice_unavailable"
    exit_code = 3


class TooManyClientRequests(ServiceError):
    """One client already holds as many requests as it may (max_client_requests)."""

    status = 429
    code = "too_many_requests"
    exit_code = 4

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)


class IdleTimeout(ServiceError):
    """A connection sent no text for idle_timeout seconds."""

    status = 408
    code = "idle_timeout"
    exit_code = 5


class ReaderStalled(ServiceError):
    """The client took no audio for stall_timeout seconds while audio waited for it."""

    status = 408
    code = "reader_stalled"
    exit_code = 5


class VoiceMemoryFull(Overloaded):
    """Voices that requests are using fill the memory budget: another cannot load now."""

    code = "memory_budget_full"
