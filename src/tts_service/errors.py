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


class WordTimestampsUnavailable(InvalidRequest):
    """Word timestamps were asked of a voice whose model does not report durations."""

    code = "word_timestamps_unavailable"


class RetryLater(ServiceError):
    """A refusal that passes: the client should retry after `retry_after` seconds."""

    status = 503
    exit_code = 4

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = max(1, retry_after)


class Overloaded(RetryLater):
    """Admission refused: the queue is full, or the request could not start in time."""

    code = "overloaded"


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


class TooManyClientRequests(RetryLater):
    """One client already holds as many requests as it may (max_client_requests)."""

    status = 429
    code = "too_many_requests"


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


class DownloadFailed(ServiceError):
    """A voice download did not give the published files (network, upstream status, size
    or checksum); nothing was installed."""

    status = 502
    code = "download_failed"
    exit_code = 8


class DownloadsDisabled(ServiceError):
    """The download route is off (no API key set and no --voice-downloads)."""

    status = 403
    code = "downloads_disabled"
    exit_code = 2


class ReplicaFailed(RetryLater):
    """Behind Ray Serve: the replica a request went to stopped before it answered (the
    proxy's own answer; another replica takes the retry)."""

    status = 502
    code = "replica_failed"


class DeviceUnavailable(ServiceError):
    """The device asked for (`--device cuda`) cannot be used: the server does not start."""

    status = 500
    code = "device_unavailable"
    exit_code = 9
