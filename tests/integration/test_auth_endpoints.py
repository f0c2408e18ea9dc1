"""API keys and CORS on a real server: every route with no key, a wrong key and the right key;
the WebSocket with its key in the header or the query; the OpenAI SDK with `api_key`; CORS
for one allowed origin; and, last, that no key ever reached the log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import websockets
from websockets.asyncio.client import connect

from audiocheck import wav_pcm
from conftest import ServerProcess

KEYS = ("key-alpha-7f3c91", "key-beta-0d2e54")
WRONG = "key-gamma-5a6b77"
ENV_KEY = "key-from-env-9b8c2d"  # the --api-key flags override the environment
ORIGIN = "https://app.example"

# Every route the API documents, with a concrete path and a body that succeeds with a key.
PROTECTED: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
    ("GET", "/voices"): ("/voices", None),
    ("GET", "/voices/catalog"): ("/voices/catalog", None),
    # Downloads are on with a key; the bundled voice is the published one: nothing to fetch.
    ("POST", "/voices/{name}/download"): ("/voices/en_US-joe-medium/download", None),
    ("POST", "/synthesize"): ("/synthesize", {"text": "Hi."}),
    ("POST", "/synthesize/binary"): ("/synthesize/binary", {"text": "Hi."}),
    ("GET", "/v1/models"): ("/v1/models", None),
    ("GET", "/v1/models/{model_id}"): ("/v1/models/tts-1", None),
    ("GET", "/v1/audio/voices"): ("/v1/audio/voices", None),
    ("POST", "/v1/audio/speech"): (
        "/v1/audio/speech",
        {"input": "Hi.", "voice": "alloy", "response_format": "wav"},
    ),
    ("POST", "/v1/audio/captioned_speech"): ("/v1/audio/captioned_speech", {"input": "Hi."}),
    ("POST", "/"): ("/", {"text": "Hi."}),  # Piper's request; the page at GET / is public
    ("GET", "/v1/voices"): ("/v1/voices", None),
    **{
        ("POST", f"/v1/text-to-speech/{{voice_id}}{tail}"): (
            f"/v1/text-to-speech/en_US-joe-medium{tail}",
            {"text": "Hi."},
        )
        for tail in ("", "/stream", "/with-timestamps", "/stream/with-timestamps")
    },
}
PUBLIC = {
    ("GET", "/ping"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/favicon.ico"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
}


@pytest.fixture(scope="module")
def secured(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        logs_dir,
        "--workers",
        "1",
        "--api-key",
        KEYS[0],
        "--api-key",
        KEYS[1],
        env={"TTS_API_KEY": ENV_KEY, "TTS_CORS_ORIGINS": f"{ORIGIN},http://localhost:8080"},
    )
    yield proc
    proc.stop()


def call(
    server: ServerProcess, method: str, path: str, body: Any, key: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, server.base_url + path, json=body, headers=headers, timeout=60)


def test_every_documented_route_is_classified(secured: ServerProcess) -> None:
    spec = httpx.get(f"{secured.base_url}/openapi.json", timeout=10).json()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    unknown = documented - set(PROTECTED) - PUBLIC
    assert not unknown, f"routes neither tested as protected nor as public: {unknown}"


@pytest.mark.parametrize("route", sorted(PROTECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_protected_routes_need_the_right_key(
    secured: ServerProcess, route: tuple[str, str]
) -> None:
    method, _ = route
    path, body = PROTECTED[route]
    for key in (None, WRONG, KEYS[0][:-1], KEYS[0] + "x", ENV_KEY):
        refused = call(secured, method, path, body, key)
        assert refused.status_code == 401, (key, refused.text)
        assert refused.headers["www-authenticate"].startswith("Bearer")
        error = refused.json()["error"]
        assert error["code"] == "unauthorized" and error["message"]
        assert not any(k in refused.text for k in (*KEYS, WRONG, ENV_KEY))
    for key in KEYS:
        allowed = call(secured, method, path, body, key)
        assert allowed.status_code == 200, allowed.text
        if path in ("/synthesize/binary", "/v1/audio/speech"):
            assert wav_pcm(allowed.content)


@pytest.mark.parametrize("route", sorted(PUBLIC), ids=lambda r: f"{r[0]} {r[1]}")
def test_public_routes_need_no_key(secured: ServerProcess, route: tuple[str, str]) -> None:
    method, path = route
    assert call(secured, method, path, None, None).status_code == 200


def test_the_openai_sdk_sends_its_api_key(secured: ServerProcess) -> None:
    base = secured.base_url + "/v1"
    with openai.OpenAI(base_url=base, api_key=KEYS[1], max_retries=0) as sdk:
        audio = sdk.audio.speech.create(
            model="tts-1", voice="alloy", input="Hello there.", response_format="wav"
        )
        assert len(wav_pcm(audio.content)) > 10_000
        assert "tts-1" in {model.id for model in sdk.models.list()}
    with openai.OpenAI(base_url=base, api_key=WRONG, max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hello there.")
        assert refused.value.status_code == 401


async def speak_over_websocket(url: str, headers: dict[str, str] | None = None) -> list[Any]:
    """One request over the socket; the messages received up to its end (or the close)."""
    received: list[Any] = []
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"text": "Hi there."}))
        while True:
            message = await asyncio.wait_for(ws.recv(), timeout=30)
            received.append(message if isinstance(message, bytes) else json.loads(message))
            if isinstance(message, str) and received[-1]["type"] in ("end", "error"):
                return received


async def test_websocket_takes_the_key_from_header_or_query(secured: ServerProcess) -> None:
    url = f"{secured.ws_url}/synthesize/stream"
    for messages in (
        await speak_over_websocket(f"{url}?api_key={KEYS[0]}"),
        await speak_over_websocket(url, {"Authorization": f"Bearer {KEYS[1]}"}),
    ):
        assert messages[0]["type"] == "start" and messages[-1]["type"] == "end"
        assert sum(len(m) for m in messages if isinstance(m, bytes)) > 10_000

    for bad_url in (url, f"{url}?api_key={WRONG}"):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await speak_over_websocket(bad_url)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert "API key" in closed.value.rcvd.reason


async def test_elevenlabs_clients_key_header_and_query_are_accepted(
    secured: ServerProcess,
) -> None:
    tts = f"{secured.base_url}/v1/text-to-speech/en_US-joe-medium?output_format=pcm_16000"
    async with httpx.AsyncClient(timeout=60) as client:
        keyed = await client.post(tts, json={"text": "Hi."}, headers={"xi-api-key": KEYS[0]})
        assert keyed.status_code == 200 and len(keyed.content) > 1000
        wrong = await client.post(tts, json={"text": "Hi."}, headers={"xi-api-key": WRONG})
        assert wrong.status_code == 401
    socket = f"{secured.ws_url}/v1/text-to-speech/en_US-joe-medium/stream-input"
    for url, headers in (
        (socket, {"xi-api-key": KEYS[1]}),
        (f"{socket}?xi-api-key={KEYS[0]}", None),
    ):
        async with connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": "Hi there. "}))
            await ws.send(json.dumps({"text": ""}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            assert first["audio"]
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with connect(socket, additional_headers={"xi-api-key": WRONG}) as ws:
            await asyncio.wait_for(ws.recv(), timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_cors_preflight_and_errors_carry_the_allowed_origin(secured: ServerProcess) -> None:
    preflight_headers = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    preflight = httpx.options(
        f"{secured.base_url}/synthesize", headers=preflight_headers, timeout=10
    )
    assert preflight.status_code == 200  # no key needed for a preflight
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()

    refused = httpx.get(f"{secured.base_url}/voices", headers={"Origin": ORIGIN}, timeout=10)
    assert refused.status_code == 401  # and the page's script can read why:
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in refused.headers["access-control-expose-headers"].lower()

    other = dict(preflight_headers, Origin="https://evil.example")
    denied = httpx.options(f"{secured.base_url}/synthesize", headers=other, timeout=10)
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers


def test_cors_is_off_by_default(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/voices", headers={"Origin": ORIGIN}, timeout=10)
    assert response.status_code == 200  # and no API key needed without one configured
    assert "access-control-allow-origin" not in response.headers


def test_no_key_ever_reaches_the_log(secured: ServerProcess) -> None:
    """Runs last in this module: every request above, keys in headers, queries and SDK
    calls included, has been logged by now."""
    log = secured.log()
    assert "POST /v1/audio/speech 401" in log and "/synthesize/stream" in log
    for secret in (*KEYS, WRONG, ENV_KEY):
        assert secret not in log
