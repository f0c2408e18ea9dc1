"""Request ids and one structured access-log line per request (pure ASGI, so it sees every
response, the middlewares' own 401/413 included, and WebSocket sessions too).

A client's `X-Request-ID` is kept if it is sane (bounded, safe characters), otherwise one is
generated; either way it is echoed in the response and stamped on every log line written
while the request runs. The path is logged without its query string, which may hold an
API key (`?api_key=` on WebSockets); headers are never logged.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_service.errors import ServiceError
from tts_service.logs import request_id_var

log = logging.getLogger("tts_service.access")

HEADER = b"x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_PATH = 512


def request_id(scope: Scope) -> str:
    """The client's id when it is safe to echo and log, a fresh one otherwise."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == HEADER:
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def domain_error(exc: BaseException) -> ServiceError | None:
    """The ServiceError behind `exc`, if any (Starlette wraps one raised mid-response)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ServiceError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def clean_path(path: str) -> str:
    """Paths are percent-decoded: escape control characters so a path cannot forge lines."""
    if len(path) > _MAX_PATH:
        path = path[:_MAX_PATH] + "..."
    return _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}", path)


def admitted_fields(admitted: Any) -> dict[str, Any]:
    """What the synthesis routes left in `request.state.admitted` (a service `Admitted`)."""
    return {
        "voice": admitted.voice.info.name,
        "characters": getattr(admitted, "characters", None),
        "sentences": admitted.sentences,
        "queue_wait": round(admitted.queue_wait, 4),
        "synthesis_time": round(admitted.synth_seconds, 4),
        "audio_seconds": round(admitted.audio_seconds, 4),
        "outcome": admitted.outcome,
    }


def _message(fields: dict[str, Any]) -> str:
    """The human-readable line: `POST /synthesize 200 0.532s id=... voice=...`."""
    head = f"{fields['method']} {fields['path']} {fields['status']} {fields['duration']:.3f}s"
    skip = {"method", "path", "status", "duration"}
    rest = " ".join(f"{key}={value}" for key, value in fields.items() if key not in skip)
    return f"{head} {rest}"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        token = request_id_var.set(rid)
        started = time.monotonic()
        outcome: dict[str, Any] = {"status": None, "bytes": 0}

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept", "websocket.http.response.start"):
                outcome["status"] = message.get("status", 101)
                headers = [*message.get("headers", []), (HEADER, rid.encode("latin-1"))]
                message = {**message, "headers": headers}
            elif kind in ("http.response.body", "websocket.http.response.body"):
                outcome["bytes"] += len(message.get("body", b""))
            elif kind == "websocket.close":
                outcome["close_code"] = message.get("code", 1000)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = domain_error(exc)
            if outcome["status"] is None or error is None:
                outcome["status"] = outcome["status"] or 500
                raise
            # A stream cut off after its headers (the drain deadline passed): one clear line
            # instead of a traceback. Returning unfinished makes uvicorn drop the connection,
            # so the client sees an incomplete body, never a silent, clean end.
            outcome["error"] = error.code
            log.warning("response cut off after %d bytes: %s", outcome["bytes"], error.message)
        finally:
            self._log(scope, state, rid, outcome, time.monotonic() - started)
            request_id_var.reset(token)

    @staticmethod
    def _log(
        scope: Scope, state: dict[str, Any], rid: str, outcome: dict[str, Any], elapsed: float
    ) -> None:
        status = outcome["status"]
        if status is None:  # a WebSocket closed before it was accepted: uvicorn answers 403
            status = 403 if scope["type"] == "websocket" else 500
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": scope.get("method", "WS"),
            "path": clean_path(scope.get("path", "")),
            "status": status,
            "duration": round(elapsed, 4),
            "request_id": rid,
            "client": client[0] if client else None,
            "bytes": outcome["bytes"],
        }
        for key in ("close_code", "error"):
            if key in outcome:
                fields[key] = outcome[key]
        admitted = state.get("admitted")
        if admitted is not None:
            fields.update(admitted_fields(admitted))
        log.info(_message(fields), extra={"fields": fields})
