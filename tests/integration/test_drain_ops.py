"""Graceful drain of a real server process on SIGTERM: readiness turns 503, new work is
refused with 503 + Retry-After, admitted work finishes, the process exits 0. Work that the
drain period can't cover ends with a clear error, never a silently short file. A second
signal stops at once."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from audiocheck import health, seconds, sentences, wait_for, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

StartServer = Callable[..., ServerProcess]


class Background:
    """Run `work` in a thread; `.result` is its return value or the exception it raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self.result: Any = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], Any]) -> None:
        try:
            self.result = work()
        except Exception as exc:  # handed to the test, which asserts on it
            self.result = exc

    def join(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "a request hung"
        return self.result


def post(base_url: str, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    response = httpx.post(base_url + path, json=body, timeout=60)
    return response.status_code, response.content


def stream(base_url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    with httpx.stream("POST", f"{base_url}/synthesize/binary", json=body, timeout=60) as r:
        return r.status_code, b"".join(r.iter_bytes())


def admitted(base_url: str) -> int:
    stats = health(base_url)
    return int(stats["queued_requests"] + stats["active_requests"])


def exits_within(proc: ServerProcess, seconds_: float) -> tuple[int, float]:
    started = time.monotonic()
    code = proc.proc.wait(timeout=seconds_)
    return code, time.monotonic() - started


def test_sigterm_finishes_admitted_work_refuses_new_work_and_exits_0(
    start_server: StartServer,
) -> None:
    drain = 30.0
    proc = start_server("--workers", "2", "--drain-seconds", str(drain), *DETERMINISTIC)
    base = proc.base_url
    text = sentences(4)  # long enough that all six are in flight when the signal comes
    body = {"text": text}
    work = [
        Background(lambda: post(base, "/synthesize/binary", body)),
        Background(lambda: post(base, "/synthesize/binary", body)),
        Background(lambda: stream(base, {"text": text, "stream": True})),
        Background(lambda: stream(base, {"text": text, "stream": True})),
        Background(lambda: post(base, "/synthesize", body)),
        Background(
            lambda: post(
                base,
                "/v1/audio/speech",
                {"input": text, "voice": "alloy", "response_format": "wav"},
            )
        ),
    ]
    # A keep-alive connection, opened before the signal and used during the drain.
    with httpx.Client(base_url=base, timeout=30) as keep_alive:
        assert keep_alive.get("/ping").status_code == 200
        wait_for(lambda: admitted(base) == 6, 30, "six requests admitted")

        proc.signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: keep_alive.get("/health").status_code == 503, 10, "readiness 503")
        assert keep_alive.get("/health").json()["status"] == "draining"
        refused = keep_alive.post("/synthesize/binary", json={"text": "Too late."})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert int(refused.headers["retry-after"]) >= 1
        assert keep_alive.get("/ping").status_code == 200  # alive while draining

        results = [background.join() for background in work]
        code, _ = exits_within(proc, drain)
    assert code == 0
    assert time.monotonic() - signalled < drain

    for result in results:
        assert not isinstance(result, Exception), result
    statuses = [status for status, _ in results]
    assert statuses == [200] * 6
    # Complete audio: the WAV bodies (files and streams) hold identical samples at noise 0.
    pcms = [wav_pcm(content) for _, content in results[:4] + results[5:]]
    assert all(pcm == pcms[0] for pcm in pcms)
    assert seconds(pcms[0]) > 4 * 1.0
    assert json.loads(results[4][1])["duration"] == pytest.approx(seconds(pcms[0]), abs=1e-3)
    assert "draining for up to 30 s" in proc.log()


def test_work_the_drain_period_cannot_cover_ends_with_clear_errors(
    start_server: StartServer,
) -> None:
    proc = start_server("--workers", "1", "--drain-seconds", "1")
    base = proc.base_url
    long_text = sentences(40)

    def over_websocket() -> list[Any]:
        received: list[Any] = []
        with connect(f"{proc.ws_url}/synthesize/stream") as ws:
            ws.send(json.dumps({"text": long_text}))
            while True:
                message = ws.recv(timeout=30)
                if isinstance(message, str):
                    received.append(json.loads(message))
                    if received[-1]["type"] in ("end", "error"):
                        return received

    whole = Background(lambda: post(base, "/synthesize/binary", {"text": long_text}))
    streamed = Background(lambda: stream(base, {"text": long_text, "stream": True}))
    socket = Background(over_websocket)
    wait_for(lambda: admitted(base) == 3, 30, "three requests admitted")
    # Each request's first sentence runs before any request's second (fair): after four,
    # every response has its first audio, so the stream's headers are out.
    wait_for(lambda: health(base)["totals"]["sentences"] >= 4, 30, "every request's first audio")

    proc.signal(signal.SIGTERM)
    code, took = exits_within(proc, 30)
    assert code == 0
    assert took < 1 + 10  # the drain period plus shutdown, never the 40 sentences

    status, content = whole.join()
    assert status == 503
    assert json.loads(content)["error"]["code"] == "shutting_down"
    # Headers were out: the stream is cut without its final chunk, which every HTTP
    # client reports as an error, rather than ending like a complete (short) file.
    assert isinstance(streamed.join(), httpx.RemoteProtocolError)
    messages = socket.join()
    assert messages[0]["type"] == "start"
    assert messages[-1]["type"] == "error"
    assert messages[-1]["error"]["code"] == "shutting_down"
    log = proc.log()
    assert "drain period over: 3 unfinished request(s) were stopped" in log
    assert "response cut off" in log
    assert "Traceback" not in log


def test_a_second_signal_stops_at_once(start_server: StartServer) -> None:
    proc = start_server("--workers", "1", "--drain-seconds", "120")
    base = proc.base_url
    request = Background(lambda: post(base, "/synthesize/binary", {"text": sentences(60)}))
    wait_for(lambda: admitted(base) == 1, 30, "the request admitted")
    proc.signal(signal.SIGTERM)
    wait_for(lambda: health(base)["status"] == "draining", 10, "draining")
    proc.signal(signal.SIGTERM)

    code, took = exits_within(proc, 30)
    assert took < 15  # not the 120 s drain, nor the 60 sentences
    assert code == -signal.SIGTERM  # re-raised: stopped by the signal, not a clean drain
    status, content = request.join()
    assert status == 503 and json.loads(content)["error"]["code"] == "shutting_down"
