"""Size limits on the shared server (defaults: 1 MB bodies, 20 000 characters of text):
refused with 413 and a JSON error before any work, and the server serves the next request."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.sync.client import connect

from audiocheck import seconds, wav_pcm
from conftest import ServerProcess
from tts_service.config import Settings

MAX_BODY = Settings.model_fields["max_body_bytes"].default
MAX_TEXT = Settings.model_fields["max_text_chars"].default
ROUTES = ("/synthesize", "/synthesize/binary", "/v1/audio/speech")


def oversized_body() -> bytes:
    return json.dumps({"text": "a" * MAX_BODY, "input": "a"}).encode()


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def assert_served_next(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.base_url}/synthesize/binary", json={"text": "Still here."}, timeout=60
    )
    assert response.status_code == 200
    assert seconds(wav_pcm(response.content)) > 0.3


def assert_413(response: httpx.Response, code: str) -> None:
    assert response.status_code == 413, response.text[:200]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    if response.request.url.path.startswith("/v1/"):  # OpenAI's error shape there
        assert error["type"] == "invalid_request_error" and "param" in error


@pytest.mark.parametrize("path", ROUTES)
def test_an_oversized_body_is_refused_by_its_declared_length(
    server: ServerProcess, path: str
) -> None:
    response = httpx.post(
        server.base_url + path,
        content=oversized_body(),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert_413(response, "body_too_large")
    assert_served_next(server)


@pytest.mark.parametrize("path", ROUTES)
def test_an_oversized_chunked_body_is_refused_while_it_streams_in(
    server: ServerProcess, path: str
) -> None:
    """No Content-Length: the limit counts bytes as they arrive."""
    response = httpx.post(
        server.base_url + path,
        content=chunks(oversized_body()),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_413(response, "body_too_large")
    assert_served_next(server)


def test_a_body_just_under_the_limit_is_parsed(server: ServerProcess) -> None:
    """The limit is on bytes, not on a rough guess: this one parses (and is refused for
    something else, its unknown field) rather than counted as too large."""
    padding = MAX_BODY - len(json.dumps({"text": "Hi.", "pad": ""})) - 10
    body = json.dumps({"text": "Hi.", "pad": "x" * padding}).encode()
    assert len(body) < MAX_BODY
    response = httpx.post(
        f"{server.base_url}/synthesize",
        content=body,
        timeout=30,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422 and response.json()["error"]["param"] == "pad"


@pytest.mark.parametrize(
    ("path", "field"), [("/synthesize", "text"), ("/v1/audio/speech", "input")]
)
def test_too_long_a_text_is_refused(server: ServerProcess, path: str, field: str) -> None:
    text = "word " * (MAX_TEXT // 5) + "x"
    assert len(text) == MAX_TEXT + 1
    response = httpx.post(server.base_url + path, json={field: text}, timeout=30)
    assert_413(response, "text_too_long")
    assert_served_next(server)


def test_an_oversized_websocket_message_closes_only_that_socket(server: ServerProcess) -> None:
    with connect(f"{server.ws_url}/synthesize/stream", max_size=None) as ws:
        ws.send(json.dumps({"text": "a" * (MAX_BODY + 1)}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009  # message too big
    assert_served_next(server)
