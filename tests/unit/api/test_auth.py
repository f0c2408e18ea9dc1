"""The API-key gate on its own: key matching, header and query parsing, and the middleware's
answers over HTTP and WebSocket, in-process on a small app."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, WebSocket
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tts_service.api.auth import (
    POLICY_VIOLATION,
    ApiKeyMiddleware,
    KeyRing,
    bearer_token,
    is_public,
    query_token,
)
from tts_service.config import Settings

KEYS = ["first-key", "second-kéy"]


def scope(headers: dict[str, str] | None = None, query: str = "") -> dict[str, object]:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "headers": raw, "query_string": query.encode()}


def test_every_configured_key_matches_and_nothing_else() -> None:
    ring = KeyRing(KEYS)
    assert ring.matches("first-key")
    assert ring.matches("second-kéy")
    for wrong in ("first-ke", "first-key ", "FIRST-KEY", "second-key", "", None):
        assert not ring.matches(wrong), wrong


def test_blank_keys_never_open_the_gate() -> None:
    assert not KeyRing([])
    assert not KeyRing([""])
    assert not KeyRing(["", "k"]).matches("")


def test_bearer_token_parsing() -> None:
    assert bearer_token(scope({"Authorization": "Bearer abc"})) == "abc"
    assert bearer_token(scope({"Authorization": "bearer   abc "})) == "abc"
    assert bearer_token(scope({"Authorization": "Basic abc"})) is None
    assert bearer_token(scope({"Authorization": "Bearer "})) is None
    assert bearer_token(scope()) is None
    # a non-ASCII key arrives as UTF-8 bytes and must compare equal to the configured one
    utf8 = {"type": "http", "headers": [(b"authorization", "Bearer second-kéy".encode())]}
    assert KeyRing(KEYS).matches(bearer_token(utf8))


def test_query_token_parsing() -> None:
    assert query_token(scope(query="api_key=abc&x=1")) == "abc"
    assert query_token(scope(query="api_key=a%2Fb")) == "a/b"
    assert query_token(scope(query="x=1")) is None


def test_public_paths() -> None:
    for path in ("/ping", "/health", "/metrics", "/", "/static/app.js", "/docs", "/openapi.json"):
        assert is_public(path), path
    for path in ("/synthesize", "/voices", "/v1/audio/speech", "/pingx", "/static", "/metrics/x"):
        assert not is_public(path), path


def test_the_page_is_public_but_piper_synthesis_at_the_root_is_not() -> None:
    assert is_public("/", "GET") and is_public("/", "HEAD")
    assert not is_public("/", "POST")


def app_with_keys(keys: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/voices")
    async def voices() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/models")
    async def models() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/")
    async def piper() -> dict[str, str]:
        return {"ok": "yes"}

    @app.websocket("/synthesize/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    app.add_middleware(ApiKeyMiddleware, keys=keys)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(app_with_keys(KEYS))


def test_missing_and_wrong_keys_get_401_json_with_a_challenge(client: TestClient) -> None:
    missing = client.get("/voices")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "invalid_token" not in missing.headers["www-authenticate"]

    wrong = client.get("/voices", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert "nope" not in wrong.text  # a key is never echoed

    # HTTP takes the key from the header only; a query string leaks into proxies' logs
    assert client.get("/voices?api_key=first-key").status_code == 401


def test_right_keys_and_public_routes_pass(client: TestClient) -> None:
    for key in KEYS:
        ok = client.get("/voices", headers={"Authorization": f"Bearer {key}".encode()})
        assert ok.status_code == 200 and ok.json() == {"ok": "yes"}
    assert client.get("/ping").status_code == 200


def test_elevenlabs_clients_key_header_is_accepted(client: TestClient) -> None:
    assert client.get("/voices", headers={"xi-api-key": "first-key"}).status_code == 200
    assert client.get("/voices", headers={"xi-api-key": "wrong"}).status_code == 401
    # a wrong bearer beside a right xi-api-key still passes: either header may carry it
    both = {"Authorization": "Bearer nope", "xi-api-key": "first-key"}
    assert client.get("/voices", headers=both).status_code == 200


def test_post_to_the_root_needs_a_key(client: TestClient) -> None:
    assert client.post("/").status_code == 401
    assert client.post("/", headers={"xi-api-key": "first-key"}).status_code == 200


def test_openai_routes_get_openai_shaped_errors(client: TestClient) -> None:
    error = client.get("/v1/models").json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "unauthorized" and error["message"]


def test_without_keys_everything_passes() -> None:
    assert TestClient(app_with_keys([])).get("/voices").status_code == 200


def test_websocket_needs_a_key_in_header_or_query(client: TestClient) -> None:
    with client.websocket_connect("/synthesize/stream?api_key=first-key") as ws:
        assert ws.receive_text() == "hello"
    headers = {"Authorization": "Bearer second-kéy".encode()}
    with client.websocket_connect("/synthesize/stream", headers=headers) as ws:
        assert ws.receive_text() == "hello"
    with client.websocket_connect("/synthesize/stream?xi-api-key=first-key") as ws:
        assert ws.receive_text() == "hello"
    for url in ("/synthesize/stream", "/synthesize/stream?api_key=wrong"):
        with client.websocket_connect(url) as ws, pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == POLICY_VIOLATION
        assert "API key" in closed.value.reason


def test_keys_come_from_the_environment_and_stay_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TTS_API_KEY", "env-key-1, env:key-2,")  # ":" is no separator here
    monkeypatch.setenv("TTS_CORS_ORIGINS", "https://a.example,http://localhost:8080")
    settings = Settings()
    assert settings.api_key == ["env-key-1", "env:key-2"]
    assert settings.cors_origins == ["https://a.example", "http://localhost:8080"]
    assert "key-" not in repr(settings) and "key-" not in str(settings)
