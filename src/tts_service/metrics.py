"""Prometheus metrics for one app: scheduler events (a `SchedulerObserver`), scheduler state
read at scrape time, and HTTP requests by route template.

Each `Metrics` owns its own `CollectorRegistry`, never the process-global one, so several
apps (tests, embedding) in one process never collide.

Real-time factor: `rate(tts_synthesis_seconds_total[5m]) / rate(tts_audio_seconds_total[5m])`
(below 1 is faster than real time); `tts_sentence_real_time_factor` is its distribution.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tts_service import __version__
from tts_service.scheduling.jobs import JobState
from tts_service.scheduling.observer import SchedulerObserver

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tts_service.service import TTSService

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus version reads

# One sentence takes ~0.1-0.3 s on a small CPU; requests seconds to a minute.
SENTENCE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0)

REJECT_REASONS = ("requests", "sentences", "client", "wait", "draining")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "other"  # endpoint label of paths no route knows (bounds the label's values)


class SchedulerMetrics(SchedulerObserver):
    """Counts and times what the scheduler does. Called from worker threads too:
    prometheus_client's metrics are thread-safe."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, buckets=buckets, registry=registry)

        self.rejected_total = counter(
            "tts_requests_rejected",
            "Requests refused at admission (503, or 429 for the per-client limit), by reason.",
            ["reason"],
        )
        for reason in REJECT_REASONS:  # export zeros, so rate() works from the first scrape
            self.rejected_total.labels(reason)
        self.completed_total = counter("tts_requests_completed", "Requests fully synthesized.")
        self.failed_total = counter(
            "tts_requests_failed", "Requests that failed (synthesis error, cut off by shutdown)."
        )
        self.cancelled_total = counter(
            "tts_requests_cancelled", "Requests cancelled, mostly by clients that went away."
        )
        self.timed_out_total = counter(
            "tts_requests_timed_out", "Requests that waited past their deadline unstarted (504)."
        )
        self.sentences_total = counter("tts_sentences", "Sentences synthesized.")
        self.audio_seconds_total = counter("tts_audio_seconds", "Seconds of audio synthesized.")
        self.synthesis_seconds_total = counter(
            "tts_synthesis_seconds", "Worker seconds spent synthesizing."
        )
        self.queue_wait_seconds = histogram(
            "tts_queue_wait_seconds",
            "From admission to the start of a request's first sentence.",
            WAIT_BUCKETS,
        )
        self.sentence_seconds = histogram(
            "tts_sentence_synthesis_seconds", "Synthesis time of one sentence.", SENTENCE_BUCKETS
        )
        self.first_audio_seconds = histogram(
            "tts_time_to_first_audio_seconds",
            "From admission to the first sentence's audio being ready.",
            WAIT_BUCKETS,
        )
        self.latency_seconds = histogram(
            "tts_request_latency_seconds",
            "From admission to the last sentence's audio, for completed requests.",
            LATENCY_BUCKETS,
        )
        self.batch_size = histogram(
            "tts_batch_sentences",
            "Sentences per model run while batching is on (1: a sentence ran alone).",
            BATCH_BUCKETS,
        )
        self.real_time_factor = histogram(
            "tts_sentence_real_time_factor",
            "Synthesis seconds per second of audio, per sentence (below 1: faster than speech).",
            RTF_BUCKETS,
        )

    def rejected(self, reason: str) -> None:
        self.rejected_total.labels(reason).inc()

    def started(self, queue_wait: float) -> None:
        self.queue_wait_seconds.observe(queue_wait)

    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        self.sentences_total.inc()
        self.sentence_seconds.observe(synth_seconds)
        self.synthesis_seconds_total.inc(synth_seconds)
        self.audio_seconds_total.inc(audio_seconds)
        if audio_seconds > 0:
            self.real_time_factor.observe(synth_seconds / audio_seconds)

    def first_audio(self, seconds: float) -> None:
        self.first_audio_seconds.observe(seconds)

    def batched(self, size: int) -> None:
        self.batch_size.observe(size)

    def finished(self, state: JobState, latency: float) -> None:
        if state is JobState.DONE:
            self.completed_total.inc()
            self.latency_seconds.observe(latency)
        elif state is JobState.FAILED:
            self.failed_total.inc()
        elif state is JobState.CANCELLED:
            self.cancelled_total.inc()
        elif state is JobState.EXPIRED:
            self.timed_out_total.inc()


class ServiceCollector:
    """Gauges read from `scheduler.stats()` at scrape time, so they are never stale."""

    def __init__(self, service: TTSService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        stats = self.service.scheduler.stats()
        gauges: list[tuple[str, str, float]] = [
            ("tts_workers", "Inference worker threads.", stats["workers"]),
            ("tts_busy_workers", "Workers synthesizing right now.", stats["busy_workers"]),
            (
                "tts_queued_requests",
                "Admitted requests waiting for their first sentence.",
                stats["queued_requests"],
            ),
            (
                "tts_active_requests",
                "Requests in flight: at least one sentence started, not finished.",
                stats["active_requests"],
            ),
            (
                "tts_queued_sentences",
                "Sentences admitted but not started.",
                stats["queued_sentences"],
            ),
            (
                "tts_request_capacity",
                "Most requests admitted at once (workers + max queued).",
                stats["capacity_requests"],
            ),
            (
                "tts_sentence_capacity",
                "Most sentences queued at once.",
                stats["capacity_sentences"],
            ),
            ("tts_draining", "1 while shutting down gracefully.", float(stats["draining"])),
            ("tts_ready", "1 when /health would answer 200.", float(self.service.accepting)),
            ("tts_loaded_voices", "Voices loaded in memory.", self._loaded_voices()),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily(
            "tts_requests_admitted",
            "Requests admitted to the scheduler.",
            value=stats["totals"]["submitted"],
        )
        info = GaugeMetricFamily(
            "tts_build_info", "Version and scheduling policy.", labels=["version", "policy"]
        )
        info.add_metric([__version__, str(stats["policy"])], 1.0)
        yield info

    def _loaded_voices(self) -> float:
        return float(len(self.service.voices.loaded_names()))


class MemoryCollector:
    """Memory figures read at scrape time: each loaded voice's size (measured when it
    loaded), the voice budget, the start-up time. The process's own resident memory is
    prometheus_client's `process_resident_memory_bytes`."""

    def __init__(self, service: TTSService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        library = self.service.voices
        voices = GaugeMetricFamily(
            "tts_voice_memory_bytes",
            "Memory a loaded voice takes (weights and sessions), measured when it loaded.",
            labels=["voice"],
        )
        for name, voice in library.loaded_voices().items():
            voices.add_metric([name], float(voice.memory_bytes))
        yield voices
        if library.budget_bytes is not None:
            yield GaugeMetricFamily(
                "tts_memory_budget_bytes",
                "Most memory the loaded voices may take together (--memory-budget).",
                value=float(library.budget_bytes),
            )
        if self.service.ready_seconds is not None:
            yield GaugeMetricFamily(
                "tts_ready_seconds",
                "From the process's start until it was ready (default voice loaded and warm).",
                value=self.service.ready_seconds,
            )


class CacheCollector:
    """The audio cache's size and counters, read at scrape time."""

    def __init__(self, service: TTSService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        report = self.service.cache_report()
        yield GaugeMetricFamily(
            "tts_cache_bytes", "What the cached sentences take.", value=report["bytes"]
        )
        yield GaugeMetricFamily(
            "tts_cache_budget_bytes",
            "Most the audio cache may take (--cache-budget; 0 with the cache off).",
            value=report["budget_bytes"],
        )
        yield GaugeMetricFamily("tts_cache_entries", "Sentences cached.", value=report["entries"])
        counters = (
            ("tts_cache_hits", "Sentences answered from the audio cache.", "hits"),
            ("tts_cache_misses", "Sentences looked up in the cache, not found.", "misses"),
            ("tts_cache_evictions", "Sentences dropped to keep the cache's budget.", "evictions"),
        )
        for name, doc, key in counters:
            yield CounterMetricFamily(name, doc, value=report[key])


class Metrics:
    """Everything `/metrics` shows for one app, in a registry of its own."""

    def __init__(self) -> None:
        # `*_created` series double the scrape and no query here needs them. The switch is
        # process-wide in prometheus_client (idempotent), the registries stay per app.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.observer = SchedulerMetrics(self.registry)
        self.http_requests = Counter(
            "tts_http_requests",
            "HTTP requests by route template, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "tts_http_request_duration_seconds",
            "HTTP request duration until the last byte was sent.",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._watched = False

    def watch(self, service: TTSService) -> None:
        """Export `service`'s gauges; adopt its scheduler if it has no observer of its own."""
        if self._watched:
            return
        self._watched = True
        self.registry.register(ServiceCollector(service))
        self.registry.register(MemoryCollector(service))
        self.registry.register(CacheCollector(service))
        ProcessCollector(registry=self.registry)
        if type(service.scheduler.observer) is SchedulerObserver:
            service.scheduler.observer = self.observer

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def count_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(endpoint, method, str(status)).inc()
        self.http_duration.labels(endpoint, method).observe(seconds)


class RouteLabels:
    """The path template of the route that handled a request ("/v1/models/{model_id}"),
    never the raw path, so the `endpoint` label's values stay few."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._table: list[tuple[re.Pattern[str], str]] | None = None

    def label(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)  # set by the router, in place
        if isinstance(path, str) and path:
            return path
        # Refused before routing (401, 413): find the template the path would have reached.
        for regex, template in self._templates():
            if regex.match(scope["path"]):
                return template
        return UNMATCHED

    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        if self._table is None:
            try:
                paths = self.app.openapi().get("paths", {})
            except Exception:  # a label is never worth failing a request over
                log.exception("cannot build the OpenAPI schema for endpoint labels")
                paths = {}
            self._table = [(compile_path(template)[0], template) for template in paths]
        return self._table


class HttpMetricsMiddleware:
    """Counts every HTTP response, the middlewares' own 401/413 included."""

    def __init__(self, app: ASGIApp, metrics: Metrics, labels: RouteLabels) -> None:
        self.app = app
        self.metrics = metrics
        self.labels = labels

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in HTTP_METHODS else UNMATCHED
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": 500}  # if the app raises before answering

        async def send_counting(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            elapsed = time.perf_counter() - started
            endpoint = self.labels.label(scope)
            self.metrics.count_request(endpoint, method, seen["status"], elapsed)
