"""`tts-service bench --cache`: the repeated-phrase workload against the service with its
audio cache on and then off (each a server of its own, one after the other): the hit rate
the server counts, and the latency of a request said before against one said first.

A request counts as a repeat when the same text had been answered before it was sent
(then every sentence of it is in the cache, which holds them all at its default budget);
the cache-off server answers the same requests, which gives what a hit saves."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tts_service.bench.addresses import Addresses
from tts_service.bench.client import bound_client, synthesize
from tts_service.bench.progress import progress
from tts_service.bench.repeats import ALONE, RepeatPlan, repeat_plan, would_hit
from tts_service.bench.servers import Server, ServerConfig, running_servers
from tts_service.bench.stats import percentile_of, ratio
from tts_service.bench.table import format_percent, format_ratio, format_seconds, format_table
from tts_service.bench.targets import Target
from tts_service.config import Settings

REQUESTS, CLIENTS = 200, 8
QUICK_REQUESTS = 60


@dataclass
class CacheRun:
    """One server's answers: seconds per request, first-time and repeated."""

    first: list[float] = field(default_factory=list)
    repeat: list[float] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    """The server's /health cache figures after the run."""
    wall_s: float = 0.0
    alone_first: list[float] = field(default_factory=list)
    alone_repeat: list[float] = field(default_factory=list)
    """One client on the idle server afterwards: ALONE's texts said first, then again."""


async def _alone(server: Server, address: str, run: CacheRun, repeats: int = 3) -> None:
    async with bound_client(server.url, address) as client:
        for text in ALONE:
            for n in range(1 + repeats):
                started = time.perf_counter()
                await synthesize(client, text)
                (run.alone_repeat if n else run.alone_first).append(time.perf_counter() - started)


async def _client(
    server: Server, address: str, texts: list[str], done: set[str], run: CacheRun
) -> None:
    async with bound_client(server.url, address) as client:
        for text in texts:
            repeat = text in done
            started = time.perf_counter()
            await synthesize(client, text)
            (run.repeat if repeat else run.first).append(time.perf_counter() - started)
            done.add(text)


async def _run(server: Server, plan: RepeatPlan) -> CacheRun:
    run, done, addresses = CacheRun(), set[str](), Addresses()
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(server, addresses.take(), texts, done, run) for texts in plan.clients)
    )
    run.wall_s = time.perf_counter() - started
    async with bound_client(server.url, "127.0.0.1") as client:
        run.cache = (await client.get("/health")).json()["cache"]
    await _alone(server, addresses.take(), run)
    return run


def measure_cache(settings: Settings, log_dir: Path, quick: bool) -> dict[str, Any]:
    plan = repeat_plan(QUICK_REQUESTS if quick else REQUESTS, CLIENTS)
    runs: dict[str, CacheRun] = {}
    for name, cache in (("cache", True), ("no-cache", False)):
        config = ServerConfig(settings.default_voice, settings.voices_dir, log_dir, cache=cache)
        target = Target(name, "fair", settings.worker_count, settings.threads_per_worker)
        progress(f"cache: {len(plan.texts)} requests from {CLIENTS} clients, {name}")
        with running_servers(config, [target]) as (server,):
            runs[name] = asyncio.run(_run(server, plan))
    return figures(plan, runs)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(plan: RepeatPlan, runs: dict[str, CacheRun]) -> dict[str, Any]:
    cached, plain = runs["cache"], runs["no-cache"]
    counted = cached.cache["hits"] + cached.cache["misses"]
    return {
        "requests": len(plan.texts),
        "clients": len(plan.clients),
        "phrases": len(set(plan.texts)),
        "server_sentence_hit_rate": cached.cache["hits"] / counted if counted else None,
        "cache": cached.cache,
        **would_hit(plan.texts),
        "first_median_s": _median(cached.first),
        "repeat_median_s": _median(cached.repeat),
        "repeat_p95_s": percentile_of(cached.repeat, 0.95),
        "no_cache_repeat_median_s": _median(plain.repeat),
        "repeat_to_first": ratio(_median(cached.repeat), _median(cached.first)),
        "repeat_to_no_cache": ratio(_median(cached.repeat), _median(plain.repeat)),
        "alone_first_median_s": _median(cached.alone_first),
        "alone_repeat_median_s": _median(cached.alone_repeat),
        "alone_repeat_to_first": ratio(_median(cached.alone_repeat), _median(cached.alone_first)),
        "wall_s": cached.wall_s,
        "no_cache_wall_s": plain.wall_s,
        "wall_ratio": ratio(cached.wall_s, plain.wall_s),
    }


def render_cache(report: dict[str, Any]) -> str:
    rows = [
        [
            "sentences from the cache (server's count)",
            format_percent(report["server_sentence_hit_rate"]),
            "",
        ],
        [
            "  per-sentence key, sentences (predicted)",
            format_percent(report["sentence_cache_sentence_hits"]),
            "",
        ],
        [
            "  per-request key, sentences (predicted)",
            format_percent(report["request_cache_sentence_hits"]),
            "",
        ],
        ["requests said before", format_percent(report["request_cache_hits"]), ""],
        ["first time, median", format_seconds(report["first_median_s"]), ""],
        [
            "said before, median",
            format_seconds(report["repeat_median_s"]),
            format_ratio(report["repeat_to_first"]),
        ],
        ["said before, p95", format_seconds(report["repeat_p95_s"]), ""],
        ["said before, cache off, median", format_seconds(report["no_cache_repeat_median_s"]), ""],
        ["  cache on / cache off", "", format_ratio(report["repeat_to_no_cache"])],
        ["alone, first time, median", format_seconds(report["alone_first_median_s"]), ""],
        [
            "alone, said before, median",
            format_seconds(report["alone_repeat_median_s"]),
            format_ratio(report["alone_repeat_to_first"]),
        ],
        [
            "whole workload, cache on / off",
            format_seconds(report["wall_s"]),
            format_ratio(report["wall_ratio"]),
        ],
    ]
    head = (
        f"Repeated phrases: {report['requests']} requests drawn from {report['phrases']} "
        f"phrases by {report['clients']} clients (cache {report['cache']['bytes'] / 2**20:.1f} "
        f"MB in {report['cache']['entries']} sentences):"
    )
    return head + "\n" + format_table(["", "value", "ratio"], rows)
