"""The Prometheus side of the scheduler and the HTTP layer, driven by a real `Scheduler` over a
fake synthesizer (held at a gate where a test needs work in flight) and a small in-process app.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tts_service.api.auth import ApiKeyMiddleware
from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.errors import (
    Cancelled,
    DeadlineExceeded,
    Overloaded,
    ShuttingDown,
    SynthesisFailed,
)
from tts_service.metrics import HttpMetricsMiddleware, Metrics, RouteLabels, ServiceCollector
from tts_service.scheduling.observer import SchedulerObserver
from tts_service.scheduling.scheduler import Scheduler

RATE = 1000
SAMPLES = 250  # a quarter second of audio per sentence
OPTIONS = SynthesisOptions()


class GatedVoice:
    """A `Synthesizer` returning SAMPLES of silence; `hold()` makes it wait inside a sentence
    until `release()`; `fail` makes it raise."""

    sample_rate = RATE
    has_solo_session = False

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.inside = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        self.inside.set()
        self._gate.wait(timeout=10)
        if self.fail:
            raise RuntimeError("boom")
        return SentenceAudio(b"\x00\x00" * SAMPLES)


def sentences(count: int) -> list[list[int]]:
    return [[1, 2, 3]] * count


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def voice() -> Iterator[GatedVoice]:
    made = GatedVoice()
    yield made
    made.release()


@pytest.fixture
async def scheduler(metrics: Metrics) -> AsyncIterator[Scheduler]:
    made = Scheduler(workers=1, max_queued_requests=1, observer=metrics.observer)
    made.start()
    yield made
    await asyncio.to_thread(made.stop)


async def held(voice: GatedVoice) -> None:
    assert await asyncio.to_thread(voice.inside.wait, 5), "the worker never started"


async def test_a_completed_request_moves_every_counter_and_histogram(
    metrics: Metrics, scheduler: Scheduler, voice: GatedVoice
) -> None:
    job = scheduler.submit(voice, sentences(3), OPTIONS)
    pcm = await scheduler.collect(job)

    assert len(pcm) == 3 * SAMPLES * 2
    assert value(metrics, "tts_requests_completed_total") == 1
    assert value(metrics, "tts_sentences_total") == 3
    assert value(metrics, "tts_audio_seconds_total") == pytest.approx(3 * SAMPLES / RATE)
    for histogram in ("tts_queue_wait_seconds", "tts_time_to_first_audio_seconds"):
        assert value(metrics, f"{histogram}_count") == 1
    assert value(metrics, "tts_request_latency_seconds_count") == 1
    assert value(metrics, "tts_sentence_synthesis_seconds_count") == 3
    assert value(metrics, "tts_sentence_real_time_factor_count") == 3
    synth = value(metrics, "tts_synthesis_seconds_total")
    assert synth == pytest.approx(value(metrics, "tts_sentence_synthesis_seconds_sum"))
    assert synth == pytest.approx(job.synth_seconds)
    for other in ("failed", "cancelled", "timed_out"):
        assert value(metrics, f"tts_requests_{other}_total") == 0


async def test_rejected_and_cancelled_requests_are_counted_by_reason(
    metrics: Metrics, scheduler: Scheduler, voice: GatedVoice
) -> None:
    voice.hold()
    running = scheduler.submit(voice, sentences(2), OPTIONS)
    await held(voice)
    queued = scheduler.submit(voice, sentences(1), OPTIONS)  # fills the one queue place
    with pytest.raises(Overloaded):
        scheduler.submit(voice, sentences(1), OPTIONS)
    scheduler.cancel(queued)
    with pytest.raises(Cancelled):
        await scheduler.collect(queued)
    scheduler.draining = True
    with pytest.raises(ShuttingDown):
        scheduler.submit(voice, sentences(1), OPTIONS)
    voice.release()
    await scheduler.collect(running)

    assert value(metrics, "tts_requests_rejected_total", reason="requests") == 1
    assert value(metrics, "tts_requests_rejected_total", reason="draining") == 1
    assert value(metrics, "tts_requests_rejected_total", reason="sentences") == 0
    assert value(metrics, "tts_requests_cancelled_total") == 1
    assert value(metrics, "tts_requests_completed_total") == 1
    assert value(metrics, "tts_request_latency_seconds_count") == 1  # completed ones only
    assert value(metrics, "tts_queue_wait_seconds_count") == 1  # the cancelled one never ran


async def test_failed_and_timed_out_requests(metrics: Metrics, scheduler: Scheduler) -> None:
    failing = GatedVoice(fail=True)
    with pytest.raises(SynthesisFailed):
        await scheduler.collect(scheduler.submit(failing, sentences(1), OPTIONS))

    blocker = GatedVoice()
    blocker.hold()
    running = scheduler.submit(blocker, sentences(1), OPTIONS)
    await held(blocker)
    waiting = scheduler.submit(blocker, sentences(1), OPTIONS, timeout=0.05)
    with pytest.raises(DeadlineExceeded):
        await scheduler.collect(waiting)
    blocker.release()
    await scheduler.collect(running)

    assert value(metrics, "tts_requests_failed_total") == 1
    assert value(metrics, "tts_requests_timed_out_total") == 1
    assert value(metrics, "tts_requests_completed_total") == 1


async def test_gauges_read_the_scheduler_at_scrape_time(
    metrics: Metrics, scheduler: Scheduler, voice: GatedVoice
) -> None:
    service = SimpleNamespace(
        scheduler=scheduler,
        accepting=True,
        voices=SimpleNamespace(loaded_names=lambda: ["a"]),
    )
    metrics.registry.register(ServiceCollector(service))  # type: ignore[arg-type]
    voice.hold()
    running = scheduler.submit(voice, sentences(3), OPTIONS)
    await held(voice)
    queued = scheduler.submit(voice, sentences(4), OPTIONS)

    assert value(metrics, "tts_busy_workers") == 1
    assert value(metrics, "tts_active_requests") == 1
    assert value(metrics, "tts_queued_requests") == 1
    assert value(metrics, "tts_queued_sentences") == 2 + 4
    assert value(metrics, "tts_request_capacity") == 2
    assert value(metrics, "tts_requests_admitted_total") == 2
    assert value(metrics, "tts_ready") == 1
    assert value(metrics, "tts_loaded_voices") == 1

    voice.release()
    await scheduler.collect(running)
    await scheduler.collect(queued)
    assert value(metrics, "tts_busy_workers") == 0
    assert value(metrics, "tts_queued_requests") == 0
    assert value(metrics, "tts_queued_sentences") == 0


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observer.rejected("requests")
    assert value(first, "tts_requests_rejected_total", reason="requests") == 1
    assert value(second, "tts_requests_rejected_total", reason="requests") == 0
    assert REGISTRY.get_sample_value("tts_requests_rejected_total", {"reason": "requests"}) is None


def test_a_service_without_observer_is_adopted(metrics: Metrics) -> None:
    scheduler = Scheduler(workers=1)
    service = SimpleNamespace(scheduler=scheduler)
    metrics.watch(service)  # type: ignore[arg-type]
    assert scheduler.observer is metrics.observer

    class OwnObserver(SchedulerObserver):
        pass

    own = OwnObserver()
    other = SimpleNamespace(scheduler=Scheduler(workers=1, observer=own))
    Metrics().watch(other)  # type: ignore[arg-type]
    assert other.scheduler.observer is own  # someone else's observer is left alone


def test_exposition_parses_and_follows_naming_conventions(metrics: Metrics) -> None:
    metrics.observer.sentence_done(0.1, 1.0)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    for family in families.values():
        assert family.name.startswith("tts_")
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_factor", "_sentences"))  # the unit
    assert families["tts_sentence_real_time_factor"].type == "histogram"
    assert not any(name.endswith("_created") for name in families)


# ------------------------------------------------------------------------ HTTP metrics


def http_app(metrics: Metrics, keys: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.post("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("unexpected")

    app.add_middleware(ApiKeyMiddleware, keys=keys)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics, labels=RouteLabels(app))
    return app


async def test_http_requests_are_labelled_by_route_template(metrics: Metrics) -> None:
    app = http_app(metrics, keys=["k"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    auth = {"Authorization": "Bearer k"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for item_id in ("1", "2", "three"):
            assert (await client.get(f"/items/{item_id}", headers=auth)).status_code == 200
        assert (await client.get("/items/4")).status_code == 401  # refused before routing
        assert (await client.get("/nowhere/at/all", headers=auth)).status_code == 404
        assert (await client.post("/boom", headers=auth)).status_code == 500

    def count(endpoint: str, method: str, status: str) -> float:
        labels = {"endpoint": endpoint, "method": method, "status": status}
        return value(metrics, "tts_http_requests_total", **labels)

    assert count("/items/{item_id}", "GET", "200") == 3
    assert count("/items/{item_id}", "GET", "401") == 1
    assert count("other", "GET", "404") == 1
    assert count("/boom", "POST", "500") == 1
    labels = {"endpoint": "/items/{item_id}", "method": "GET"}
    assert value(metrics, "tts_http_request_duration_seconds_count", **labels) == 4
    families = text_string_to_metric_families(metrics.render().decode())
    endpoints = {
        sample.labels["endpoint"]
        for family in families
        if family.name == "tts_http_requests"
        for sample in family.samples
    }
    assert endpoints == {"/items/{item_id}", "other", "/boom"}  # no raw paths
