"""The access-log middleware in-process: request ids, one structured line per request with
the synthesis figures a route left behind, and a stream cut off by a domain error."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.types import Message

from tts_service.api.access_log import (
    AccessLogMiddleware,
    clean_path,
    domain_error,
    request_id,
)
from tts_service.errors import ShuttingDown
from tts_service.logs import request_id_var
from tts_service.scheduling.jobs import JobState

GENERATED = re.compile(r"[0-9a-f]{32}")


def with_header(value: bytes) -> dict[str, object]:
    return {"headers": [(b"x-request-id", value)]}


def test_sane_request_ids_are_kept_others_replaced() -> None:
    for sane in (b"abc-123", b"0af7651916cd43dd8448eb211c80319c", b"trace:1/2+3=@x_y.z"):
        assert request_id(with_header(sane)) == sane.decode()
    for bad in (b"", b"has space", b"a\nb", b"x" * 129, "é".encode(), b"<script>"):
        assert GENERATED.fullmatch(request_id(with_header(bad))), bad
    assert GENERATED.fullmatch(request_id({"headers": []}))


def test_paths_cannot_forge_log_lines() -> None:
    assert clean_path("/a\nINFO fake line") == "/a\\x0aINFO fake line"
    assert len(clean_path("/" + "x" * 5000)) < 600


def test_domain_error_is_found_behind_wrappers() -> None:
    cause = ShuttingDown("bye")
    try:
        try:
            raise cause
        except ShuttingDown as exc:
            raise RuntimeError("response already started") from exc
    except RuntimeError as wrapped:
        assert domain_error(wrapped) is cause
    assert domain_error(ValueError("x")) is None


def fake_admitted() -> SimpleNamespace:
    voice = SimpleNamespace(info=SimpleNamespace(name="v1"))
    return SimpleNamespace(
        voice=voice,
        sentences=3,
        characters=42,
        queue_wait=0.25,
        synth_seconds=0.5,
        audio_seconds=2.0,
        outcome=JobState.DONE.value,
    )


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/synthesize")
    async def synthesize(request: Request) -> dict[str, str | None]:
        request.state.admitted = fake_admitted()
        logging.getLogger("tts_service.route").info("inside the route")
        return {"seen_id": request.state.request_id, "context_id": request_id_var.get()}

    @app.get("/cut")
    async def cut() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"part"
            raise ShuttingDown("the server shut down before this request finished")

        return StreamingResponse(body())

    app.add_middleware(AccessLogMiddleware)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as made:
        yield made


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "tts_service.access"]


async def test_one_line_per_request_with_synthesis_figures(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await client.post("/synthesize", headers={"X-Request-ID": "req-42"})

    assert response.headers["x-request-id"] == "req-42"
    assert response.json() == {"seen_id": "req-42", "context_id": "req-42"}
    (record,) = access_records(caplog)
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["request_id"] == "req-42"
    assert (fields["method"], fields["path"], fields["status"]) == ("POST", "/synthesize", 200)
    assert fields["voice"] == "v1" and fields["characters"] == 42 and fields["sentences"] == 3
    assert fields["queue_wait"] == 0.25 and fields["synthesis_time"] == 0.5
    assert fields["audio_seconds"] == 2.0 and fields["outcome"] == "done"
    assert fields["duration"] >= 0 and fields["bytes"] == len(response.content)
    assert "POST /synthesize 200" in record.getMessage()
    route_record = next(r for r in caplog.records if r.name == "tts_service.route")
    assert route_record.getMessage() == "inside the route"
    assert request_id_var.get() is None  # reset after the request


async def test_generated_id_when_none_or_insane(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first = await client.get("/nowhere")
    second = await client.get("/nowhere", headers={"X-Request-ID": "bad id"})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(GENERATED.fullmatch(i) for i in ids) and ids[0] != ids[1]
    statuses = [r.fields["status"] for r in access_records(caplog)]  # type: ignore[attr-defined]
    assert statuses == [404, 404]


async def test_a_stream_cut_by_a_domain_error_ends_unfinished_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Driven by hand: an HTTP client library would (rightly) refuse the unfinished body."""
    caplog.set_level(logging.INFO)
    sent: list[Message] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/cut",
        "raw_path": b"/cut",
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("t", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }

    async def receive() -> Message:
        await asyncio.sleep(10)  # the client never hangs up during this test
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await make_app()(scope, receive, send)  # no exception escapes

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert b"".join(m.get("body", b"") for m in bodies) == b"part"
    # never the final empty body that would tell the client the audio ended cleanly
    assert all(m.get("more_body", False) for m in bodies)
    records = access_records(caplog)
    warning = next(r for r in records if r.levelno == logging.WARNING)
    assert "cut off after 4 bytes" in warning.getMessage()
    line = next(r for r in records if r.levelno == logging.INFO)
    assert line.fields["error"] == "shutting_down"  # type: ignore[attr-defined]
