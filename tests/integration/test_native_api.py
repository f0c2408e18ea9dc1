"""The native HTTP API against the real server: good requests give real audio, every bad
input gets its status and a JSON error body, and the server keeps serving afterwards."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiocheck import DEFAULT_VOICE, RATE, eventually, piper_pcm, seconds, sentences, wav_pcm
from conftest import DETERMINISTIC, ServerProcess


def post(server: ServerProcess, body: Any, path: str = "/synthesize/binary") -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=60)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def assert_still_serving(server: ServerProcess) -> None:
    response = post(server, {"text": "Still fine.", "voice": "tiny-single"})
    assert response.status_code == 200
    assert seconds(wav_pcm(response.content, rate=16000), rate=16000) > 0.1


# ------------------------------------------------------------------ good requests


def test_binary_wav_is_piper_audio(server: ServerProcess) -> None:
    text = "Good morning. It is a fine day."
    response = post(server, {"text": text})
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-voice"] == DEFAULT_VOICE
    assert response.headers["x-sentences"] == "2"
    pcm = wav_pcm(response.content)
    assert float(response.headers["x-duration"]) == pytest.approx(seconds(pcm), abs=1e-3)
    assert pcm == piper_pcm(text)


def test_json_response_carries_the_audio_and_its_figures(server: ServerProcess) -> None:
    response = post(
        server, {"text": "One. Two.", "voice": "tiny-multi", "speaker": "bob"}, "/synthesize"
    )
    assert response.status_code == 200
    body = response.json()
    pcm = wav_pcm(base64.b64decode(body["audio"]), rate=16000)
    assert body["voice"] == "tiny-multi" and body["format"] == "wav"
    assert body["sample_rate"] == 16000 and body["sentences"] == 2
    assert body["duration"] == pytest.approx(seconds(pcm, 16000), abs=1e-3)
    assert body["synthesis_time"] >= 0 and body["queue_wait"] >= 0 and body["elapsed"] > 0


def test_streamed_wav_equals_the_whole_file(server: ServerProcess) -> None:
    text = "Streaming works. Sentence by sentence."
    whole = post(server, {"text": text})
    streamed = post(server, {"text": text, "stream": True})
    assert streamed.status_code == 200
    assert streamed.content[4:8] == b"\xff\xff\xff\xff"  # size unknown while streaming
    assert wav_pcm(streamed.content) == wav_pcm(whole.content)


def test_voices_lists_the_default_and_the_folder(server: ServerProcess) -> None:
    body = httpx.get(f"{server.base_url}/voices").json()
    voices = {voice["name"]: voice for voice in body["voices"]}
    assert body["default"] == DEFAULT_VOICE
    assert {DEFAULT_VOICE, "tiny-multi", "tiny-single"} <= set(voices)
    assert voices[DEFAULT_VOICE]["sample_rate"] == RATE and voices[DEFAULT_VOICE]["loaded"]
    assert voices["tiny-multi"]["speakers"] == {"alice": 0, "bob": 1, "carol": 2}


def test_ping_and_health(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/ping").json() == {"status": "ok"}
    health = httpx.get(f"{server.base_url}/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["workers"] == 2 and body["policy"] == "fair"
    assert DEFAULT_VOICE in body["loaded_voices"]
    assert body["pid"] == server.proc.pid


# ------------------------------------------------------------------ bad requests

BAD_BODIES: list[tuple[str, Any, int, str]] = [
    ("empty text", {"text": ""}, 422, "validation_error"),
    ("blank text", {"text": "  \n "}, 422, "validation_error"),
    ("number as text", {"text": 5}, 422, "validation_error"),
    ("null text", {"text": None}, 422, "validation_error"),
    ("no text", {"voice": DEFAULT_VOICE}, 422, "validation_error"),
    ("body is a list", ["hello"], 422, "validation_error"),
    ("unknown field", {"text": "Hi.", "bogus": 1}, 422, "validation_error"),
    ("zero length scale", {"text": "Hi.", "length_scale": 0}, 422, "validation_error"),
    ("unknown format", {"text": "Hi.", "format": "ogg"}, 422, "validation_error"),
    ("unknown priority", {"text": "Hi.", "priority": "urgent"}, 422, "validation_error"),
    ("negative timeout", {"text": "Hi.", "timeout": -1}, 422, "validation_error"),
    ("text over the limit", {"text": "a" * 20_001}, 413, "text_too_long"),
    ("traversal ../x", {"text": "Hi.", "voice": "../x"}, 400, "invalid_request"),
    ("absolute path", {"text": "Hi.", "voice": "/etc/passwd"}, 400, "invalid_request"),
    ("a/b", {"text": "Hi.", "voice": "a/b"}, 400, "invalid_request"),
    ("dot dot", {"text": "Hi.", "voice": ".."}, 400, "invalid_request"),
    (
        "unknown speaker name",
        {"text": "Hi.", "voice": "tiny-multi", "speaker": "dave"},
        400,
        "invalid_speaker",
    ),
    (
        "speaker out of range",
        {"text": "Hi.", "voice": "tiny-multi", "speaker": 3},
        400,
        "invalid_speaker",
    ),
    ("speaker of a one-speaker voice", {"text": "Hi.", "speaker": 1}, 400, "invalid_speaker"),
]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
@pytest.mark.parametrize("path", ["/synthesize", "/synthesize/binary"])
def test_bad_input_gets_its_status(
    server: ServerProcess, path: str, body: Any, status: int, code: str
) -> None:
    assert_error(post(server, body, path), status, code)
    assert_still_serving(server)


def test_malformed_json_is_400(server: ServerProcess) -> None:
    for raw in (b"{not json", b"", b'{"text": "unterminated', b"\xff\xfe"):
        response = httpx.post(
            f"{server.base_url}/synthesize/binary",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert_error(response, 400, "malformed_json")
    assert_still_serving(server)


def test_unknown_voice_is_404_listing_voices(server: ServerProcess) -> None:
    error = assert_error(post(server, {"text": "Hi.", "voice": "nope"}), 404, "voice_not_found")
    assert {DEFAULT_VOICE, "tiny-multi", "tiny-single"} <= set(error["available"])
    assert_still_serving(server)


def test_body_too_large_is_413(server: ServerProcess) -> None:
    big = b'{"text": "' + b"a" * 1_100_000 + b'"}'
    response = httpx.post(
        f"{server.base_url}/synthesize/binary",
        content=big,
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, "body_too_large")

    def chunks() -> Any:  # no Content-Length: the limit must hold for a stream too
        for _ in range(40):
            yield b"a" * 50_000

    response = httpx.post(f"{server.base_url}/synthesize/binary", content=chunks())
    assert_error(response, 413, "body_too_large")
    assert_still_serving(server)


def test_wrong_method_and_unknown_route(server: ServerProcess) -> None:
    assert_error(httpx.get(f"{server.base_url}/synthesize"), 405, "method_not_allowed")
    assert_error(httpx.get(f"{server.base_url}/nowhere"), 404, "not_found")


async def test_a_deadline_the_queue_cannot_meet_is_refused_at_once(
    server: ServerProcess,
) -> None:
    """Two long normal requests keep both workers busy; a low-priority request with a short
    timeout would wait for all their sentences: admission refuses it at once (503 with
    Retry-After) instead of letting it wait out its deadline for a 504."""

    async def long_request(client: httpx.AsyncClient, started: asyncio.Event) -> None:
        body = {"text": sentences(30), "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as response:
            async for _ in response.aiter_bytes():
                started.set()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        events = [asyncio.Event(), asyncio.Event()]
        longs = [asyncio.create_task(long_request(client, event)) for event in events]
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 20)
            before = (await client.get("/health")).json()["totals"]
            body = {"text": "Low and late.", "priority": "low", "timeout": 0.2}
            response = await client.post("/synthesize/binary", json=body)
            error = assert_error(response, 503, "overloaded")
            assert "deadline" in error["message"] and int(response.headers["retry-after"]) >= 1
            assert not any(task.done() for task in longs)
            totals = (await client.get("/health")).json()["totals"]
            assert totals["rejected"] == before["rejected"] + 1
            assert totals["timed_out"] == before["timed_out"]
        finally:
            for task in longs:
                task.cancel()
            await asyncio.gather(*longs, return_exceptions=True)

        async def idle() -> bool:
            return bool((await client.get("/health")).json()["queued_sentences"] == 0)

        await eventually(idle, 10, "the long requests stopped")
    assert_still_serving(server)


@pytest.fixture(scope="module")
def small_server(logs_dir: Path) -> Iterator[ServerProcess]:
    """One worker, no queue beyond it, small text and body limits from the command line."""
    proc = ServerProcess(
        logs_dir,
        *("--workers", "1", "--max-queued-requests", "0"),
        *("--max-text-chars", "1000", "--max-body-bytes", "2048"),
        *DETERMINISTIC,
    )
    yield proc
    proc.stop()


async def test_full_queue_is_503_with_retry_after(small_server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=small_server.base_url, timeout=60) as client:
        body = {"text": sentences(30), "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as long:
            assert long.status_code == 200
            audio = long.aiter_bytes()  # kept: dropping the iterator would hang up
            assert (await anext(audio))[:4] == b"RIFF"  # admitted and running
            response = await client.post("/synthesize/binary", json={"text": "Me too."})
            error = assert_error(response, 503, "overloaded")
            assert int(response.headers["retry-after"]) >= 1
            assert "retry" in error["message"]
            health = (await client.get("/health")).json()
            assert health["totals"]["rejected"] == 1 and health["capacity_requests"] == 1

        async def free() -> bool:
            return bool((await client.get("/health")).json()["active_requests"] == 0)

        await eventually(free, 10, "the hung-up request left the queue")
        response = await client.post("/synthesize/binary", json={"text": "My turn."})
        assert response.status_code == 200
        assert seconds(wav_pcm(response.content)) > 0.3


def test_limits_from_the_command_line(small_server: ServerProcess) -> None:
    error = assert_error(post(small_server, {"text": "x" * 1001}), 413, "text_too_long")
    assert error["param"] == "text"
    big = {"text": "Hi.", "voice": "v" * 3000}
    assert_error(post(small_server, big), 413, "body_too_large")
    response = post(small_server, {"text": "Just fine."})
    assert response.status_code == 200 and wav_pcm(response.content)
