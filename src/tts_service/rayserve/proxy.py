"""Serve's proxy answers some requests itself, in plain text: 503 when every replica is
full and its queue too (backpressure), 404 while the app is not deployed, and nothing at all
(uvicorn's bare 500) when the replica a request went to dies before answering. This
middleware, run in the proxy, turns those into the service's own JSON errors (OpenAI's
shape under /v1/), each with the status that says what happened:

- a plain-text 503: `overloaded`, keeping Serve's `Retry-After` (or adding one);
- a plain-text 404 (no application at `/`: starting, or stopping while replicas drain):
  503 `not_deployed` with `Retry-After`;
- no response at all: 502 `replica_failed` with `Retry-After` (the request did not fail
  for what it asked; another replica will take the retry);
- any other plain-text error status: the same status with a code for it.

The app's own answers are JSON already and pass untouched; so do WebSockets and every
success. Light on purpose: the proxy imports this, not the service (the error shapes come
from `tts_service.error_dialect`, which the app's routes and middlewares use too).

It also keeps the stall timeout at the proxy. Serve streams a response from the replica
to the proxy without backpressure (the replica's sends never wait), so the replica never
sees a slow reader: the proxy holds what the client has not read (at most the output cap,
`max_audio_seconds`, per request), and a send to a client that takes nothing for
`TTS_STALL_TIMEOUT` seconds ends the connection, which cancels the request's work.

Serve loads it from `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=` `PROXY_CALLBACK`, which
must be in the environment of every Ray node that runs a proxy.
"""

from __future__ import annotations

import asyncio
import logging
import os

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_service.config import Settings
from tts_service.error_dialect import error_messages
from tts_service.errors import Overloaded, ReplicaFailed, RetryLater, ServiceError

log = logging.getLogger(__name__)

PROXY_CALLBACK = "tts_service.rayserve.proxy:proxy_middlewares"
RETRY_AFTER = 1
# Serve's own messages are one line; more than this is not one of them.
MAX_HELD_BODY = 16_384
REQUEST_ID = b"x-request-id"
_CODES = {405: "method_not_allowed", 408: "timeout", 429: "too_many_requests"}


class ProxyError(ServiceError):
    """Any other error status Serve's proxy answers by itself."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = _CODES.get(status, "proxy_error")


class NotDeployed(RetryLater):
    """Serve's proxy found no application for the path: with the app at `/`, it is not
    deployed on this proxy right now (starting, or being deleted while replicas drain)."""

    code = "not_deployed"


def proxy_error(status: int, text: str, retry_after: int | None) -> ServiceError:
    """The service's error for one of Serve's plain-text answers."""
    detail = text.strip() or "no detail"
    if status == 404:
        return NotDeployed(
            f"the service is not deployed on this proxy now (starting or stopping); retry "
            f"later ({detail})",
            retry_after=retry_after or RETRY_AFTER,
        )
    if status == 503:
        return Overloaded(
            f"every replica is busy and the proxy's queue is full; retry later ({detail})",
            retry_after=retry_after or RETRY_AFTER,
        )
    if status >= 500:
        return ReplicaFailed(
            f"the replica serving this request failed before answering ({detail}); retry",
            retry_after=retry_after or RETRY_AFTER,
        )
    return ProxyError(status, detail)


def lost_replica() -> ReplicaFailed:
    return ReplicaFailed(
        "the replica serving this request stopped before it answered; retry",
        retry_after=RETRY_AFTER,
    )


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _seconds(value: str | None) -> int | None:
    try:
        return max(1, int(value)) if value is not None else None
    except ValueError:
        return None


class _Stalled(Exception):
    """A send waited longer than the stall timeout for the client to read."""


def _without_repeats(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Serve's proxy adds its `X-Request-ID` to the app's copy of the same id: keep one."""
    ids = [pair for pair in headers if pair[0].lower() == REQUEST_ID]
    kept = [pair for pair in headers if pair[0].lower() != REQUEST_ID]
    return kept + list(dict.fromkeys(ids))


def bounded(send: Send, timeout: float) -> Send:
    """`send` that gives up (raises `_Stalled`) after `timeout` seconds of waiting."""

    async def bounded_send(message: Message) -> None:
        try:
            async with asyncio.timeout(timeout):
                await send(message)
        except TimeoutError:
            raise _Stalled from None

    return bounded_send


class _Response:
    """Watches one response on its way out; holds back a plain-text error to rewrite."""

    def __init__(self, path: str, send: Send) -> None:
        self.path = path
        self.send = send
        self.started = False
        self.held: Message | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            headers = _without_repeats(list(message.get("headers", [])))
            content_type = _header(headers, b"content-type") or ""
            if message["status"] >= 400 and "json" not in content_type:
                self.held = message
                return
            await self.send({**message, "headers": headers})
        elif message["type"] == "http.response.body" and self.held is not None:
            self.body += message.get("body", b"")[: MAX_HELD_BODY - len(self.body)]
            if not message.get("more_body", False):
                await self.finish()
        else:
            await self.send(message)

    async def finish(self) -> None:
        """Send the held error, rewritten."""
        held, self.held = self.held, None
        assert held is not None
        retry_after = _seconds(_header(list(held.get("headers", [])), b"retry-after"))
        text = self.body.decode("utf-8", "replace")
        await self.answer(proxy_error(held["status"], text, retry_after))

    async def answer(self, error: ServiceError) -> None:
        for message in error_messages(self.path, error):  # the app's own error shapes
            await self.send(message)


class ServeErrorsMiddleware:
    def __init__(self, app: ASGIApp, stall_timeout: float) -> None:
        self.app = app
        self.stall_timeout = stall_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        guarded = bounded(send, self.stall_timeout)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, guarded)
            else:
                await self._http(scope, receive, _Response(scope.get("path", ""), guarded))
        except _Stalled:
            # Returning with the response unfinished makes the server close the connection.
            _log_stalled(scope, self.stall_timeout)

    async def _http(self, scope: Scope, receive: Receive, response: _Response) -> None:
        try:
            await self.app(scope, receive, response)
        except _Stalled:
            raise
        except Exception:
            if response.started:
                raise
            log.exception("Serve's proxy failed before answering %s", scope.get("path"))
        if not response.started:
            await response.answer(lost_replica())
        elif response.held is not None:  # the error's body never ended: say it anyway
            await response.finish()


def _log_stalled(scope: Scope, timeout: float) -> None:
    log.info(
        "client at %s took nothing for %g s on %s: connection closed",
        (scope.get("client") or ("?",))[0],
        timeout,
        scope.get("path"),
    )


def stall_timeout_from_env() -> float:
    """The service's stall timeout as the proxy's node has it (`TTS_STALL_TIMEOUT`)."""
    default: float = Settings.model_fields["stall_timeout"].default
    try:
        value = float(os.environ.get("TTS_STALL_TIMEOUT", default))
    except ValueError:
        return default
    return value if value > 0 else default


def proxy_middlewares() -> list[Middleware]:
    """The callback Serve's proxy calls at start (see the module docstring)."""
    return [Middleware(ServeErrorsMiddleware, stall_timeout=stall_timeout_from_env())]
