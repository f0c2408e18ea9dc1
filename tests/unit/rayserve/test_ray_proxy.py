"""The middleware in Serve's proxy: Serve's own plain-text answers become the service's JSON
errors with the right status and Retry-After, a replica that dies before answering is a 502,
the app's own answers pass untouched, and a client that reads nothing is cut off."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from tts_service.error_dialect import error_body
from tts_service.rayserve.proxy import (
    ServeErrorsMiddleware,
    proxy_error,
    proxy_middlewares,
    stall_timeout_from_env,
)

BACKPRESSURE = (
    b"Request dropped due to backpressure (num_queued_requests=4, max_queued_requests=4)."
)


def plain(status: int, body: bytes, *extra: tuple[bytes, bytes]) -> Any:
    """An app that answers like Serve's proxy does by itself."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def call(app: Any, path: str = "/synthesize") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": []}
    await ServeErrorsMiddleware(app, stall_timeout=30)(scope, receive, send)
    return sent


def response(sent: list[Message]) -> tuple[int, dict[str, str], Any]:
    start, *bodies = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    raw = b"".join(m.get("body", b"") for m in bodies)
    is_json = headers.get("content-type") == "application/json"
    return start["status"], headers, json.loads(raw) if is_json else raw


async def test_backpressure_becomes_overloaded_json_keeping_retry_after() -> None:
    sent = await call(plain(503, BACKPRESSURE, (b"retry-after", b"3")))
    status, headers, body = response(sent)
    assert status == 503 and headers["retry-after"] == "3"
    assert body["error"]["code"] == "overloaded"
    assert "backpressure" in body["error"]["message"]


async def test_a_503_without_retry_after_gets_one() -> None:
    status, headers, body = response(await call(plain(503, b"Deployment is unavailable.")))
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "overloaded"


async def test_a_replica_that_never_answers_is_a_502_to_retry() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    async def raising(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("actor died")

    for app in (silent, raising):
        status, headers, body = response(await call(app))
        assert status == 502 and int(headers["retry-after"]) >= 1
        assert body["error"]["code"] == "replica_failed"


async def test_openai_routes_get_openais_error_shape() -> None:
    status, _, body = response(await call(plain(503, BACKPRESSURE), path="/v1/audio/speech"))
    assert status == 503
    assert body["error"]["type"] == "server_error" and body["error"]["code"] == "overloaded"
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_error_shapes_are_the_apps() -> None:
    """The proxy answers in the app's own error dialect, native or OpenAI's by the path."""
    for path in ("/synthesize", "/v1/audio/speech"):
        _, _, body = response(await call(plain(503, BACKPRESSURE), path=path))
        expected = proxy_error(503, BACKPRESSURE.decode(), None)
        assert body == error_body(path, expected)


def test_the_proxy_does_not_import_the_app() -> None:
    """Serve's proxy loads this module: it must not pull in FastAPI or the service."""
    code = "import sys, tts_service.rayserve.proxy; print(sorted(m for m in sys.modules"
    code += " if m.split('.')[0] == 'fastapi' or m.startswith('tts_service.api')))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


async def test_no_application_is_a_503_to_retry_and_other_errors_keep_their_status() -> None:
    status, headers, body = response(await call(plain(404, b"Path '/x' not found.")))
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert body["error"]["code"] == "not_deployed"
    status, _, body = response(await call(plain(408, b"Request timed out.")))
    assert status == 408 and body["error"]["code"] == "timeout"


async def test_the_apps_answers_pass_untouched_and_one_request_id_stays() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"x-request-id", b"abc"),
            (b"x-request-id", b"abc"),  # the app's and Serve's copy of one id
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"error": {"code": "x"}}'})

    status, _, body = response(await call(app))
    assert status == 413 and body == {"error": {"code": "x"}}
    sent = await call(app)
    assert [k for k, _ in sent[0]["headers"]].count(b"x-request-id") == 1


async def test_a_client_that_reads_nothing_is_cut_off() -> None:
    """A send that cannot complete within the stall timeout ends the call, unfinished."""
    blocked = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": []}
        await send(start)
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise AssertionError("the second send never completes")

    async def stuck_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            blocked.set()
            await asyncio.Event().wait()  # the client reads nothing
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    middleware = ServeErrorsMiddleware(app, stall_timeout=0.05)
    scope = {"type": "http", "path": "/synthesize/binary", "headers": []}
    await asyncio.wait_for(middleware(scope, receive, stuck_send), 10)
    assert blocked.is_set() and [m["type"] for m in sent] == ["http.response.start"]


def test_the_callback_reads_the_stall_timeout(monkeypatch: Any) -> None:
    monkeypatch.setenv("TTS_STALL_TIMEOUT", "7.5")
    assert stall_timeout_from_env() == 7.5
    (middleware,) = proxy_middlewares()
    assert middleware.cls is ServeErrorsMiddleware and middleware.kwargs == {"stall_timeout": 7.5}
    monkeypatch.setenv("TTS_STALL_TIMEOUT", "soon")
    assert stall_timeout_from_env() == 30.0
