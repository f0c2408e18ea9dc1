"""The audio cache on every transport, against a real server with the bundled voice: a
repeated request answers the same bytes (and word timings) from the cache, the hit counter
in /health and /metrics moves, and `"cache": false` goes around it.

Each test speaks texts of its own, so what it counts is its own hits."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.asyncio.client import connect
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from conftest import DETERMINISTIC, ServerProcess

READ_TIMEOUT = 60.0
FORMATS = ("wav", "pcm", "mp3", "opus", "aac", "flac")


@pytest.fixture(scope="module")
def cached(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        logs_dir,
        *("--workers", "2", "--threads-per-worker", "1", *DETERMINISTIC),
        env={"TTS_CACHE": "true"},
        wyoming=True,
    )
    yield proc
    proc.stop()


def cache_figures(server: ServerProcess) -> dict[str, Any]:
    figures: dict[str, Any] = httpx.get(f"{server.base_url}/health", timeout=10).json()["cache"]
    return figures


def hits(server: ServerProcess) -> int:
    return int(cache_figures(server)["hits"])


def binary(server: ServerProcess, body: dict[str, Any]) -> bytes:
    response = httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.content


@pytest.mark.parametrize("fmt", FORMATS)
def test_native_binary_repeats_byte_for_byte(cached: ServerProcess, fmt: str) -> None:
    body = {"text": f"Playing the {fmt} playlist. Turning on the kitchen lights.", "format": fmt}
    first = binary(cached, body)
    before = hits(cached)
    assert binary(cached, body) == first
    assert hits(cached) - before == 2
    # Chunked, sentence by sentence (a streamed WAV's header has no length: its own bytes).
    streamed = binary(cached, {**body, "stream": True})
    assert binary(cached, {**body, "stream": True}) == streamed
    assert hits(cached) - before == 6


def ndjson(server: ServerProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{server.base_url}/synthesize", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


def without_clocks(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines less the figures that time the work (synthesis time, elapsed, wait)."""
    clocks = {"synthesis_time", "elapsed", "queue_wait"}
    return [{k: v for k, v in line.items() if k not in clocks} for line in lines]


def test_native_json_lines_repeat_with_their_word_timings(cached: ServerProcess) -> None:
    body = {
        "text": "Sorry, I didn't catch that. Please say it again.",
        "stream": True,
        "timestamps": True,
        "format": "mp3",
    }
    first = ndjson(cached, body)
    assert any(line.get("words") for line in first)
    before = hits(cached)
    assert without_clocks(ndjson(cached, body)) == without_clocks(first)
    assert hits(cached) - before == 2


async def websocket_speak(server: ServerProcess, body: dict[str, Any]) -> list[bytes | str]:
    async with connect(server.ws_url + "/synthesize/stream", proxy=None, max_size=None) as ws:
        await ws.send(json.dumps(body))
        messages: list[bytes | str] = []
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                kind = json.loads(message)["type"]
                if kind == "end":
                    return messages
                message = re.sub(r'"(synthesis_time|elapsed|queue_wait)": [0-9.e-]+', "", message)
            messages.append(message)


async def test_websocket_repeats_frame_for_frame(cached: ServerProcess) -> None:
    body = {"text": "Press one for sales. Press two for support.", "timestamps": True}
    first = await websocket_speak(cached, body)
    before = hits(cached)
    assert await websocket_speak(cached, body) == first
    assert hits(cached) - before == 2
    encoded = {**body, "format": "opus"}
    assert await websocket_speak(cached, encoded) == await websocket_speak(cached, encoded)


def test_openai_sdk_repeats_and_cache_false_goes_around(cached: ServerProcess) -> None:
    with openai.OpenAI(base_url=cached.base_url + "/v1", api_key="x", max_retries=0) as sdk:

        def speak(**extra: Any) -> bytes:
            return sdk.audio.speech.create(
                model="tts-1",
                voice="alloy",
                input="The front door is locked. Good night.",
                response_format="opus",
                **extra,
            ).content

        first = speak()
        before = cache_figures(cached)
        assert speak() == first
        after = cache_figures(cached)
        assert after["hits"] - before["hits"] == 2
        assert speak(extra_body={"cache": False}) == first  # synthesized again: the same
        bypassed = cache_figures(cached)
        assert (bypassed["hits"], bypassed["misses"]) == (after["hits"], after["misses"])


def test_captioned_speech_repeats_with_its_timestamps(cached: ServerProcess) -> None:
    body = {"input": "Your timer is done. It rang twice.", "response_format": "wav"}

    def speak() -> dict[str, Any]:
        url = f"{cached.base_url}/v1/audio/captioned_speech"
        response = httpx.post(url, json=body, timeout=60)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    first = speak()
    before = hits(cached)
    again = speak()
    assert again["timestamps"] == first["timestamps"] and first["timestamps"]
    assert base64.b64decode(again["audio"]) == base64.b64decode(first["audio"])
    assert hits(cached) - before == 2


async def wyoming_speak(server: ServerProcess, text: str) -> bytes:
    assert server.wyoming_port is not None
    client = AsyncTcpClient("127.0.0.1", server.wyoming_port, read_timeout=READ_TIMEOUT)
    audio = b""
    async with client:
        await client.write_event(Synthesize(text=text).event())
        while (event := await client.read_event()) is not None:
            if event.type == "audio-chunk":
                audio += event.payload or b""
            if event.type in ("audio-stop", "error"):
                assert event.type == "audio-stop", event.data
                return audio
    raise AssertionError("the server closed the connection mid-answer")


async def test_wyoming_repeats_byte_for_byte(cached: ServerProcess) -> None:
    text = "The garage door is open. Shall I close it?"
    first = await wyoming_speak(cached, text)
    before = hits(cached)
    assert await wyoming_speak(cached, text) == first
    assert hits(cached) - before == 2


def test_cache_false_neither_serves_nor_keeps(cached: ServerProcess) -> None:
    body = {"text": "Nobody has said this before. Nor this.", "cache": False}
    first = binary(cached, body)
    before = cache_figures(cached)
    assert binary(cached, body) == first
    after = cache_figures(cached)
    assert (after["hits"], after["misses"], after["entries"]) == (
        before["hits"],
        before["misses"],
        before["entries"],
    )
    assert binary(cached, {"text": body["text"]}) == first  # a miss: it was never kept
    assert cache_figures(cached)["misses"] - after["misses"] == 2


def test_metrics_count_the_cache(cached: ServerProcess) -> None:
    binary(cached, {"text": "Counting on the metrics."})
    binary(cached, {"text": "Counting on the metrics."})
    text = httpx.get(f"{cached.base_url}/metrics", timeout=10).text
    figures = cache_figures(cached)
    samples = dict(line.split(" ") for line in text.splitlines() if line.startswith("tts_cache"))
    assert {name: float(value) for name, value in samples.items()} == {
        "tts_cache_hits_total": figures["hits"],
        "tts_cache_misses_total": figures["misses"],
        "tts_cache_evictions_total": figures["evictions"],
        "tts_cache_entries": figures["entries"],
        "tts_cache_bytes": figures["bytes"],
        "tts_cache_budget_bytes": 32 * 2**20,
    }
    assert figures["hits"] >= 1 and 0 < figures["bytes"] <= figures["budget_bytes"]
