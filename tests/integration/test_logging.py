"""Structured logs of a real server: with `--log-json` every line is a JSON object; each
request gets one access line with its id (the client's `X-Request-ID` if sane, else a
generated one, echoed either way) and the synthesis figures. Text mode stays readable."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiocheck import seconds, sentences, wav_pcm
from conftest import ServerProcess

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def json_server(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(logs_dir, "--workers", "1", env={"TTS_LOG_JSON": "true"})
    yield proc
    proc.stop()


def entries(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.strip()]


def access_line(server: ServerProcess, request_id: str, within: float = 10) -> dict[str, Any]:
    """The access line is written once the response is complete: poll for it."""
    deadline = time.monotonic() + within
    while True:
        for entry in entries(server):
            if (
                entry.get("logger") == "tts_service.access"
                and entry.get("request_id") == request_id
            ):
                return entry
        assert time.monotonic() < deadline, f"no access line for {request_id}"
        time.sleep(0.05)


def test_a_synthesis_request_logs_one_line_with_its_figures(json_server: ServerProcess) -> None:
    text = sentences(2)
    response = httpx.post(
        f"{json_server.base_url}/synthesize/binary",
        json={"text": text},
        headers={"X-Request-ID": "it-req-0001"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "it-req-0001"
    audio_seconds = seconds(wav_pcm(response.content))

    line = access_line(json_server, "it-req-0001")
    assert line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/synthesize/binary", 200)
    assert line["voice"] == "en_US-joe-medium"
    assert line["characters"] == len(text) and line["sentences"] == 2
    assert line["outcome"] == "done"
    assert line["audio_seconds"] == pytest.approx(audio_seconds, abs=1e-3)
    assert 0 < line["synthesis_time"] < line["duration"]
    assert 0 <= line["queue_wait"] < line["duration"]
    assert line["bytes"] == len(response.content)
    matching = [e for e in entries(json_server) if e.get("request_id") == "it-req-0001"]
    assert len(matching) == 1  # one line per request


def test_openai_requests_and_errors_are_logged_too(json_server: ServerProcess) -> None:
    base = json_server.base_url
    speech = httpx.post(
        f"{base}/v1/audio/speech",
        json={"input": "Hello.", "voice": "alloy", "response_format": "wav"},
        headers={"X-Request-ID": "it-req-0002"},
        timeout=60,
    )
    assert speech.status_code == 200
    line = access_line(json_server, "it-req-0002")
    assert line["path"] == "/v1/audio/speech" and line["voice"] == "en_US-joe-medium"
    assert line["characters"] == len("Hello.")

    bad = httpx.post(
        f"{base}/synthesize", json={"text": ""}, headers={"X-Request-ID": "it-req-0003"}
    )
    assert bad.status_code == 422
    line = access_line(json_server, "it-req-0003")
    assert line["status"] == 422 and "voice" not in line  # refused before admission


@pytest.mark.parametrize("offered", [None, "has spaces", "x" * 200, "semi;colon", "<tag>"])
def test_an_insane_or_missing_request_id_is_replaced(
    json_server: ServerProcess, offered: str | None
) -> None:
    headers = {} if offered is None else {"X-Request-ID": offered}
    response = httpx.get(f"{json_server.base_url}/voices", headers=headers, timeout=10)
    echoed = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(echoed)
    assert access_line(json_server, echoed)["path"] == "/voices"


def test_every_line_is_json(json_server: ServerProcess) -> None:
    lines = [line for line in json_server.log().splitlines() if line.strip()]
    assert len(lines) > 5
    loggers = {json.loads(line)["logger"] for line in lines}  # raises on any non-JSON line
    assert {"uvicorn.error", "tts_service.access"} <= loggers


def test_text_mode_is_one_readable_line_per_request(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.base_url}/synthesize",
        json={"text": "Plain text logs."},
        headers={"X-Request-ID": "it-text-0004"},
        timeout=60,
    )
    assert response.status_code == 200 and response.headers["x-request-id"] == "it-text-0004"
    deadline = time.monotonic() + 10
    while "request_id=it-text-0004" not in server.log():
        assert time.monotonic() < deadline, "no access line"
        time.sleep(0.05)
    (line,) = [ln for ln in server.log().splitlines() if "request_id=it-text-0004" in ln]
    assert " INFO tts_service.access: POST /synthesize 200 " in line
    assert "voice=en_US-joe-medium" in line and "sentences=1" in line
    assert "characters=16" in line and "outcome=done" in line
