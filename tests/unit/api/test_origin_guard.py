"""The Host and Origin guard on a tiny app: which hosts and origins pass, what a refusal
looks like (HTTP and WebSocket), and that a refused request never reaches the app."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from tts_service.api.access_log import AccessLogMiddleware
from tts_service.api.origin import (
    HostPolicy,
    OriginGuardMiddleware,
    OriginPolicy,
    host_name,
    same_origin,
)

# ------------------------------------------------------------------------- policies


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:3002", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:3002", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("tts.example.", "tts.example"),
    ],
)
def test_host_name_drops_port_brackets_and_case(header: str, name: str) -> None:
    assert host_name(header) == name


def test_loopback_binding_answers_its_own_names_only() -> None:
    policy = HostPolicy("127.0.0.1", [])
    for host in ("127.0.0.1:3002", "localhost:3002", "LOCALHOST", "[::1]:3002", None):
        assert policy.accepts(host), host
    for host in ("evil.example", "evil.example:3002", "127.0.0.1.evil.example", ""):
        assert not policy.accepts(host), host


def test_allowed_hosts_extend_the_list() -> None:
    policy = HostPolicy("127.0.0.1", ["tts.lan", "Speech.Example:8443"])
    assert policy.accepts("tts.lan:3002") and policy.accepts("speech.example")
    assert not policy.accepts("other.lan")


def test_a_star_or_a_wildcard_bind_without_a_list_accepts_any_host() -> None:
    assert HostPolicy("127.0.0.1", ["*"]).accepts("anything.example")
    for bind in ("0.0.0.0", "::", ""):
        assert HostPolicy(bind, []).accepts("my-server.lan:3002")


def test_a_wildcard_bind_with_a_list_keeps_to_the_list() -> None:
    policy = HostPolicy("0.0.0.0", ["tts.lan"])
    assert policy.accepts("tts.lan") and policy.accepts("localhost")
    assert not policy.accepts("evil.example")


def test_bind_address_is_a_host_name() -> None:
    assert HostPolicy("192.168.1.20", []).accepts("192.168.1.20:3002")
    assert HostPolicy("::1", []).accepts("[::1]:3002")


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:3002", "127.0.0.1:3002", True),
        ("http://LOCALHOST:3002", "localhost:3002", True),
        ("http://tts.lan", "tts.lan:80", True),  # browsers leave the default port out
        ("https://tts.lan", "tts.lan:443", True),
        ("http://127.0.0.1:3003", "127.0.0.1:3002", False),
        ("http://evil.example", "127.0.0.1:3002", False),
        ("https://tts.lan", "tts.lan:80", False),
        ("null", "127.0.0.1:3002", False),
        ("http://127.0.0.1:3002", None, False),
    ],
)
def test_same_origin_compares_the_origin_with_the_host(
    origin: str, host: str | None, same: bool
) -> None:
    assert same_origin(origin, host) is same


def test_origins_pass_when_own_or_allowed() -> None:
    policy = OriginPolicy(["https://app.example", "http://localhost:8080/"])
    assert policy.accepts(None, "127.0.0.1:3002")  # not a browser
    assert policy.accepts("https://app.example", "127.0.0.1:3002")
    assert policy.accepts("http://localhost:8080", "127.0.0.1:3002")
    assert policy.accepts("http://127.0.0.1:3002", "127.0.0.1:3002")
    assert not policy.accepts("https://evil.example", "127.0.0.1:3002")
    assert not policy.accepts("null", "127.0.0.1:3002")
    assert OriginPolicy(["*"]).accepts("https://evil.example", "127.0.0.1:3002")


# ----------------------------------------------------------------------- middleware

PAGE = "http://127.0.0.1:3002"  # the server's own page, as the test client reaches it
STREAM = "ws://127.0.0.1:3002/synthesize/stream"  # absolute: the client's default host is
# "testserver", which the guard rightly refuses


def guarded(**options: object) -> tuple[TestClient, list[str]]:
    """A tiny app behind the guard, and the list of requests that reached it."""
    reached: list[str] = []
    app = FastAPI()

    @app.api_route("/synthesize", methods=["GET", "POST", "PUT", "DELETE"])
    @app.api_route("/v1/audio/speech", methods=["POST"])
    async def work(request: Request) -> dict[str, str]:
        reached.append(f"{request.method} {request.url.path}")
        return {"ok": "yes"}

    @app.websocket("/synthesize/stream")
    async def stream(websocket: WebSocket) -> None:
        reached.append("WS")
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app.add_middleware(OriginGuardMiddleware, bind_host="127.0.0.1", **options)  # type: ignore[arg-type]
    app.add_middleware(AccessLogMiddleware)
    return TestClient(app, base_url=PAGE), reached


def test_cross_site_post_is_refused_before_the_app() -> None:
    client, reached = guarded()
    for method in ("POST", "PUT", "DELETE"):
        refused = client.request(
            method,
            "/synthesize",
            content=b'{"text": "Hi."}',
            headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        )
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "forbidden_origin"
        assert "https://evil.example" in error["message"] and "--cors-origin" in error["message"]
    assert reached == []


def test_openai_routes_get_the_openai_error_shape() -> None:
    client, reached = guarded()
    refused = client.post("/v1/audio/speech", json={}, headers={"Origin": "null"})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "forbidden_origin"
    assert reached == []


def test_reads_no_origin_own_origin_and_allowed_origins_pass() -> None:
    client, reached = guarded(cors_origins=["https://app.example"])
    assert client.get("/synthesize", headers={"Origin": "https://evil.example"}).status_code == 200
    assert client.post("/synthesize").status_code == 200
    assert client.post("/synthesize", headers={"Origin": PAGE}).status_code == 200
    allowed = client.post("/synthesize", headers={"Origin": "https://app.example"})
    assert allowed.status_code == 200
    assert reached == ["GET /synthesize", *["POST /synthesize"] * 3]


def test_foreign_host_is_refused_on_every_method() -> None:
    client, reached = guarded()
    for method in ("GET", "POST"):
        refused = client.request(method, "/synthesize", headers={"Host": "rebound.example"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_host"
        assert "--allowed-host" in refused.json()["error"]["message"]
    assert reached == []


def test_a_rebinding_page_is_refused_although_its_origin_matches_its_host() -> None:
    client, reached = guarded()
    headers = {"Host": "rebound.example:3002", "Origin": "http://rebound.example:3002"}
    assert client.post("/synthesize", headers=headers).status_code == 400
    assert reached == []


def test_websocket_from_a_foreign_origin_is_refused_before_accept() -> None:
    client, reached = guarded()
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(STREAM, headers={"Origin": "https://evil.example"}):
            pass
    assert denied.value.status_code == 403
    assert denied.value.json()["error"]["code"] == "forbidden_origin"
    assert reached == []


def test_websocket_to_a_foreign_host_is_refused_with_400() -> None:
    client, reached = guarded()
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(STREAM, headers={"Host": "evil.example"}):
            pass
    assert denied.value.status_code == 400
    assert reached == []


def test_websocket_from_its_own_page_or_no_browser_is_served() -> None:
    client, reached = guarded()
    for headers in ({"Origin": PAGE}, {}):
        with client.websocket_connect(STREAM, headers=headers) as websocket:
            assert websocket.receive_text() == "hello"
    assert reached == ["WS", "WS"]


def test_a_refused_websocket_is_logged_with_the_status_it_got(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = guarded()
    caplog.set_level(logging.INFO, logger="tts_service.access")
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(STREAM, headers={"Host": "evil.example"}):
            pass
    assert "x-request-id" in denied.value.headers
    logged = [record.fields for record in caplog.records if hasattr(record, "fields")]
    assert [(line["method"], line["status"]) for line in logged] == [("WS", 400)]
