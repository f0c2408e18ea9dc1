"""`GET /metrics` on a real server: scraped before and after a known set of requests (two
completed, one rejected, one cancelled, one invalid), every counter moved by exactly that.

The server has one worker and no queue, so a long request holding the only place makes the
next one a deterministic 503; nothing else talks to it."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audiocheck import sentences, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def solo(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(logs_dir, "--workers", "1", "--max-queued-requests", "0", *DETERMINISTIC)
    yield proc
    proc.stop()


def scrape(base_url: str) -> Samples:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_metric(base_url: str, name: str, target: float, within: float = 30) -> Samples:
    deadline = time.monotonic() + within
    while True:
        samples = scrape(base_url)
        if get(samples, name) >= target:
            return samples
        assert time.monotonic() < deadline, f"{name} never reached {target}"
        time.sleep(0.05)


def http(endpoint: str, status: int, method: str = "POST") -> tuple[str, dict[str, str]]:
    return "tts_http_requests_total", {
        "endpoint": endpoint,
        "method": method,
        "status": str(status),
    }


def test_counters_move_by_exactly_the_requests_made(solo: ServerProcess) -> None:
    base = solo.base_url
    before = scrape(base)
    durations = []
    with httpx.Client(base_url=base, timeout=60) as client:
        body = {"text": sentences(12), "stream": True}
        with client.stream("POST", "/synthesize/binary", json=body) as long:
            assert long.status_code == 200
            chunks = long.iter_bytes()  # keep a reference: a dropped iterator hangs up
            assert next(chunks)  # running: it holds the one place
            rejected = client.post("/synthesize", json={"text": "Not now."})
            assert rejected.status_code == 503
            assert int(rejected.headers["retry-after"]) >= 1
            assert rejected.json()["error"]["code"] == "overloaded"
        # leaving the block hung up mid-stream: the server cancels the rest
        cancelled = get(before, "tts_requests_cancelled_total") + 1
        wait_for_metric(base, "tts_requests_cancelled_total", cancelled)

        for text in ("First one.", "Second one."):
            done = client.post("/synthesize", json={"text": text})
            assert done.status_code == 200
            assert wav_pcm(base64.b64decode(done.json()["audio"]))
            durations.append(done.json()["duration"])
        assert client.post("/synthesize", json={"text": 5}).status_code == 422

    # The cancelled stream's sentence in flight may still be running (the short requests
    # after it can pass it on the express lane): the counters are final once it ends.
    deadline = time.monotonic() + 30
    while (after := scrape(base)) and get(after, "tts_busy_workers") != 0:
        assert time.monotonic() < deadline, "a worker stayed busy"
        time.sleep(0.05)

    def delta(name: str, **labels: str) -> float:
        return get(after, name, **labels) - get(before, name, **labels)

    assert delta("tts_requests_completed_total") == 2
    assert delta("tts_requests_cancelled_total") == 1
    assert delta("tts_requests_rejected_total", reason="requests") == 1
    assert delta("tts_requests_rejected_total", reason="sentences") == 0
    assert delta("tts_requests_rejected_total", reason="draining") == 0
    assert delta("tts_requests_failed_total") == 0
    assert delta("tts_requests_timed_out_total") == 0
    assert delta("tts_requests_admitted_total") == 3
    assert delta("tts_queue_wait_seconds_count") == 3
    assert delta("tts_time_to_first_audio_seconds_count") == 3
    assert delta("tts_request_latency_seconds_count") == 2  # completed ones only

    for endpoint, status, count in (
        ("/synthesize", 200, 2),
        ("/synthesize", 503, 1),
        ("/synthesize", 422, 1),
        ("/synthesize/binary", 200, 1),
    ):
        name, labels = http(endpoint, status)
        assert delta(name, **labels) == count, (endpoint, status)

    sentences_done = delta("tts_sentences_total")
    assert sentences_done == delta("tts_sentence_synthesis_seconds_count")
    assert sentences_done == delta("tts_sentence_real_time_factor_count")
    assert 3 <= sentences_done < 2 + 12  # two short ones, part of the cancelled long one
    synth = delta("tts_synthesis_seconds_total")
    assert synth == pytest.approx(delta("tts_sentence_synthesis_seconds_sum"))
    assert synth > 0
    assert delta("tts_audio_seconds_total") > sum(durations)

    for gauge in ("tts_active_requests", "tts_queued_requests", "tts_busy_workers"):
        assert get(after, gauge) == 0, gauge
    assert get(after, "tts_queued_sentences") == 0
    assert get(after, "tts_workers") == 1
    assert get(after, "tts_request_capacity") == 1
    assert get(after, "tts_ready") == 1
    assert get(after, "tts_draining") == 0


def test_endpoint_labels_are_route_templates(solo: ServerProcess) -> None:
    httpx.get(f"{solo.base_url}/v1/models/tts-1", timeout=10)
    httpx.get(f"{solo.base_url}/v1/models/no-such-model-123", timeout=10)
    httpx.get(f"{solo.base_url}/no/such/path/456", timeout=10)
    endpoints = {
        dict(labels)["endpoint"]
        for name, labels in scrape(solo.base_url)
        if name == "tts_http_requests_total"
    }
    assert "/v1/models/{model_id}" in endpoints
    assert "other" in endpoints
    assert not any("123" in e or "456" in e or "tts-1" in e for e in endpoints)
