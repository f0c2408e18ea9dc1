"""Browser-origin safety on a real server: a cross-site page can neither make it speak (a
`text/plain` POST needs no preflight) nor open its WebSocket, a rebound host name is refused,
while its own page, allowed origins and hosts, and clients without `Origin` (curl, SDKs) work."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect

from audiocheck import health, wait_for, wav_pcm
from conftest import ServerProcess

EVIL = "https://evil.example"
APP = "https://app.example"
BODY = json.dumps({"text": "Hi."})


def submitted(server: ServerProcess) -> int:
    count: int = health(server.base_url)["totals"].get("submitted", 0)
    return count


def test_cross_site_text_plain_post_is_refused_and_nothing_is_synthesized(
    server: ServerProcess,
) -> None:
    before = submitted(server)
    for path in ("/synthesize/binary", "/synthesize", "/v1/audio/speech"):
        body = BODY if path.startswith("/synthesize") else json.dumps({"input": "Hi."})
        refused = httpx.post(
            server.base_url + path,
            content=body,
            headers={"Origin": EVIL, "Content-Type": "text/plain"},
            timeout=30,
        )
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden_origin"
        assert "access-control-allow-origin" not in refused.headers
    assert submitted(server) == before
    assert "POST /synthesize/binary 403" in server.log()  # logged like any answer
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert 'endpoint="/synthesize/binary",method="POST",status="403"' in metrics


def test_opaque_origin_null_counts_as_foreign(server: ServerProcess) -> None:
    refused = httpx.post(
        f"{server.base_url}/synthesize/binary",
        content=BODY,
        headers={"Origin": "null", "Content-Type": "text/plain"},
        timeout=30,
    )
    assert refused.status_code == 403


async def test_foreign_origin_websocket_is_refused(server: ServerProcess) -> None:
    url = f"{server.ws_url}/synthesize/stream"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(url, origin=websockets.Origin(EVIL), proxy=None):
            pass
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"]["code"] == "forbidden_origin"
    wait_for(lambda: "WS /synthesize/stream 403" in server.log(), 10, "the refusal logged")

    own = websockets.Origin(server.base_url)  # the server's own page
    async with connect(url, origin=own, proxy=None, max_size=None) as ws:
        await ws.send(BODY)
        messages = [message async for message in _until_end(ws)]
    assert json.loads(messages[0])["type"] == "start"
    assert any(isinstance(message, bytes) for message in messages)


async def _until_end(ws: ClientConnection) -> AsyncIterator[str | bytes]:
    """The messages of one request, up to its `end` (or `error`)."""
    async for message in ws:
        yield message
        if isinstance(message, str) and json.loads(message)["type"] in ("end", "error"):
            return


def test_a_foreign_host_is_refused_on_every_route(server: ServerProcess) -> None:
    for path in ("/ping", "/voices", "/v1/models", "/synthesize/binary"):
        method = "POST" if path.startswith("/synthesize") else "GET"
        refused = httpx.request(
            method,
            server.base_url + path,
            content=BODY,
            headers={"Host": f"rebound.example:{server.port}"},
            timeout=10,
        )
        assert refused.status_code == 400, path
        error = refused.json()["error"]
        assert error["code"] == "invalid_host"
        if path.startswith("/v1/"):
            assert error["type"] == "invalid_request_error"


def test_own_origin_loopback_names_and_no_origin_are_served(server: ServerProcess) -> None:
    cases = [
        {"Origin": server.base_url},  # the page served at /
        {"Host": f"localhost:{server.port}", "Origin": f"http://localhost:{server.port}"},
        {},  # curl -d, SDKs, Home Assistant: no Origin at all
    ]
    for headers in cases:
        response = httpx.post(
            f"{server.base_url}/synthesize/binary", content=BODY, headers=headers, timeout=60
        )
        assert response.status_code == 200, headers
        assert len(wav_pcm(response.content)) > 1000


def test_the_openai_sdk_sends_no_origin_and_still_works(server: ServerProcess) -> None:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as sdk:
        audio = sdk.audio.speech.create(
            model="tts-1", voice="alloy", input="Hi.", response_format="wav"
        )
    assert len(wav_pcm(audio.content)) > 1000


async def test_allowed_origins_and_hosts_work(start_server: type[ServerProcess]) -> None:
    srv = start_server("--workers", "1", "--cors-origin", APP, "--allowed-host", "tts.lan")
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=60) as client:
        headers = {"Origin": APP, "Content-Type": "text/plain"}
        allowed = await client.post("/synthesize/binary", content=BODY, headers=headers)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == APP
        asks = {"Origin": APP, "Access-Control-Request-Method": "POST"}
        preflight = await client.options("/synthesize", headers=asks)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == APP
        evil = await client.post("/synthesize", content=BODY, headers={"Origin": EVIL})
        assert evil.status_code == 403

        named = await client.get("/voices", headers={"Host": "TTS.lan"})
        assert named.status_code == 200
        other = await client.get("/voices", headers={"Host": "other.lan"})
        assert other.status_code == 400

    url = f"{srv.ws_url}/synthesize/stream"
    async with connect(url, origin=websockets.Origin(APP), proxy=None, max_size=None) as ws:
        await ws.send(BODY)
        messages = [message async for message in _until_end(ws)]
    assert json.loads(messages[-1])["type"] == "end"
