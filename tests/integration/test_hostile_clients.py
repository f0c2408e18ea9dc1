"""Hostile and broken HTTP clients against real servers: every admitted request holds
bounded memory for a bounded time, and nothing one client does makes another wait.

- the output cap: refused before any synthesis when sure, stopped during synthesis when
  not, and a cap-sized non-streamed answer fits a stated memory bound;
- readers that never read lose their slots after the stall timeout;
- (a streamed request whose deadline passes gets a 504: see test_late_status.py);
- one address may hold only so many requests, others are served meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiocheck import eventually, health, seconds, sentences, wait_for, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

RATE = 22050


def totals(server: ServerProcess) -> dict[str, int]:
    counts: dict[str, int] = health(server.base_url)["totals"]
    return counts


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


# --------------------------------------------------------------------- output cap

CAP = 60.0


@pytest.fixture(scope="module")
def capped(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(logs_dir, "--max-audio-seconds", str(CAP), *DETERMINISTIC)
    yield proc
    proc.stop()


@pytest.mark.parametrize(
    ("path", "stream"),
    [("/synthesize", False), ("/synthesize/binary", False), ("/synthesize/binary", True)],
)
def test_a_request_sure_to_pass_the_cap_is_refused_before_synthesis(
    capped: ServerProcess, path: str, stream: bool
) -> None:
    before = totals(capped)
    body = {"text": "A. " * 7, "sentence_silence": 10, "stream": stream}  # 70 s of silence
    response = httpx.post(capped.base_url + path, json=body, timeout=60)
    error = assert_json_error(response, 413, "audio_too_long")
    assert f"{CAP:g} s" in error["message"] and error["limit_seconds"] == CAP
    after = totals(capped)
    assert after["sentences"] == before["sentences"], "nothing may be synthesized"
    assert after["submitted"] == before["submitted"]


def test_a_request_just_under_the_cap_completes(capped: ServerProcess) -> None:
    body = {"text": "A. " * 5, "sentence_silence": 10}  # 50 s of silence and five "A"s
    response = httpx.post(f"{capped.base_url}/synthesize/binary", json=body, timeout=60)
    assert response.status_code == 200, response.text[:300]
    duration = seconds(wav_pcm(response.content))
    assert 50 < duration <= CAP


def test_audio_that_passes_the_cap_during_synthesis_is_stopped(capped: ServerProcess) -> None:
    """Slow speech the estimate cannot be sure of (about 65 s at length_scale 3, of which
    it is sure of about 53): it is admitted, and stopped once its audio passes the cap."""
    before = totals(capped)
    body = {"text": sentences(16), "length_scale": 3}
    response = httpx.post(f"{capped.base_url}/synthesize/binary", json=body, timeout=120)
    error = assert_json_error(response, 413, "audio_too_long")
    assert f"{CAP:g} s" in error["message"]
    after = totals(capped)
    assert 0 < after["sentences"] - before["sentences"] < 16
    assert health(capped.base_url)["active_requests"] == 0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_cap_sized_json_answer_stays_within_its_memory_bound(start_server: Any) -> None:
    """About 590 s of audio (the default cap is 600 s) as /synthesize JSON: 26 MB of PCM
    and 35 MB of base64. The server's RSS may grow by at most twice the PCM while it
    answers (the audio once, plus encoding slices and allocator slack); building the JSON
    as whole strings would take several times that."""
    server = start_server(*DETERMINISTIC)
    warm = httpx.post(f"{server.base_url}/synthesize", json={"text": "Warm up."}, timeout=60)
    assert warm.status_code == 200
    baseline = rss_bytes(server.proc.pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(server.proc.pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        body = {"text": "A. " * 57, "sentence_silence": 10}
        response = httpx.post(f"{server.base_url}/synthesize", json=body, timeout=300)
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 200, response.text[:300]
    answer = json.loads(response.content)
    pcm = wav_pcm(base64.b64decode(answer["audio"]))
    assert 570 < seconds(pcm) <= 600 and answer["duration"] == pytest.approx(seconds(pcm), 0.01)
    grew = peak - baseline
    assert grew < 2 * len(pcm), f"RSS grew {grew / 1e6:.0f} MB for {len(pcm) / 1e6:.0f} MB of PCM"


# --------------------------------------------------------------------- stalled readers

READERS = 80


def stalled_reader(port: int, text: str) -> socket.socket:
    """A client that sends a streamed request and never reads: a small receive buffer, so
    the server's writes back up after a little audio (2 s of silence after each of the
    tiny voice's sentences: 64 KB each, cheap to make)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = {"text": text, "voice": "tiny-single", "stream": True, "sentence_silence": 2}
    body = json.dumps(request).encode()
    head = (
        f"POST /synthesize/binary HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Read what is left; True once the server has closed the connection."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def test_readers_that_never_read_release_their_slots(start_server: Any, tiny_voices: Path) -> None:
    server = start_server("--voices-dir", str(tiny_voices), "--stall-timeout", "2")
    text = " ".join(f"Sentence {n} is here to make the answer long." for n in range(40))
    socks = [stalled_reader(server.port, text) for _ in range(READERS)]
    try:
        wait_for(lambda: health(server.base_url)["totals"]["submitted"] >= READERS, 30, "admitted")
        stats = health(server.base_url)
        assert stats["active_requests"] + stats["queued_requests"] > 0, "nobody was stalled"

        def all_free() -> bool:
            stats = health(server.base_url)
            return stats["active_requests"] + stats["queued_requests"] == 0

        wait_for(all_free, 60, "every stalled reader's slot came back")
        counts = health(server.base_url)["totals"]
        # Cut by the send guard (cancelled) or the scheduler's reaper (stalled), never done.
        assert counts["stalled"] + counts["cancelled"] > 0 and counts["completed"] < READERS
        response = httpx.post(
            f"{server.base_url}/synthesize/binary", json={"text": "Hello again."}, timeout=60
        )
        assert response.status_code == 200
        assert all(closed_by_server(sock, 30) for sock in socks), "connections left open"
    finally:
        for sock in socks:
            sock.close()


# --------------------------------------------------------------------- late status


# --------------------------------------------------------------------- per client


async def test_one_address_may_hold_only_its_share(start_server: Any) -> None:
    server = start_server("--workers", "1", "--max-client-requests", "2", *DETERMINISTIC)
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=120) as client,
        httpx.AsyncClient(base_url=server.base_url, timeout=120, transport=other) as second,
    ):
        held = [
            asyncio.create_task(client.post("/synthesize/binary", json={"text": sentences(6)}))
            for _ in range(2)
        ]

        async def both_admitted() -> bool:
            stats = (await client.get("/health")).json()
            return bool(stats["queued_requests"] + stats["active_requests"] >= 2)

        await eventually(both_admitted, 30, "two requests admitted")
        third = await client.post("/synthesize/binary", json={"text": "One more."})
        error = assert_json_error(third, 429, "too_many_requests")
        assert "2 requests" in error["message"] and int(third.headers["retry-after"]) >= 1
        # Another address is served meanwhile, and before the first one's backlog ends.
        answer = await second.post("/synthesize/binary", json={"text": "My turn."})
        assert answer.status_code == 200
        assert not all(task.done() for task in held)
        assert all(r.status_code == 200 for r in await asyncio.gather(*held))
