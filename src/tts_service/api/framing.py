"""The records of a streamed answer (JSON lines, server-sent events, WebSocket messages) and
the one rule for a failure in the middle of one: before the first piece, the error is
raised, so the response still answers it with its real status (see
`streaming.JobStreamingResponse`); after it, the status is gone, so the stream ends with an
error record in its own format."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

from tts_service.errors import ServiceError

ErrorRecord = Callable[[ServiceError], bytes]


async def framed(
    body: AsyncGenerator[bytes, None], error_record: ErrorRecord
) -> AsyncGenerator[bytes, None]:
    """`body`'s pieces; a ServiceError once one was sent ends it with `error_record`."""
    opened = False
    try:
        async for piece in body:
            opened = True
            yield piece
    except ServiceError as error:
        if not opened:
            raise
        yield error_record(error)
    finally:
        await body.aclose()


def error_message(error: ServiceError) -> dict[str, Any]:
    """The native API's error record: a JSON line, or a WebSocket message."""
    return {"type": "error", "status": error.status, "error": error.to_dict()}


def json_line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_line(error: ServiceError) -> bytes:
    return json_line(error_message(error))


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
