"""Measuring the latency rows (see `latency_report`) against one `tts-service serve` with
its defaults (fair policy, default sizing and admission), speaking HTTP and Wyoming.

Every client, long or short, comes from a loopback address of its own, as distinct users
would. Long clients loop a 20-sentence text (HTTP streamed, Wyoming `synthesize`); once each
has audio coming, the short requests arrive spread over about a second, each on a fresh
address, and their whole times are taken. The idle rows wait until the server has done
nothing for `idle_s`, then send one request, taking turns with in-process Piper.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tts_service.bench.addresses import Addresses
from tts_service.bench.client import bench_client, bound_client, first_byte, wait_idle
from tts_service.bench.context_clients import ContextClients
from tts_service.bench.cpu import CpuMeter
from tts_service.bench.errors import BenchError
from tts_service.bench.first_audio import LONG_SENTENCE, measure_first_audio, probes_for
from tts_service.bench.latency_clients import (
    HttpClients,
    LatencyClients,
    WyomingClients,
    wait_listening,
)
from tts_service.bench.latency_report import LatencyReport, ShortUnderLoad, TransportLatency
from tts_service.bench.progress import progress
from tts_service.bench.serial import SerialPiper
from tts_service.bench.servers import Server, ServerConfig, running_servers
from tts_service.bench.targets import Target
from tts_service.bench.texts import make_text
from tts_service.config import Settings

LONG_CLIENTS = (1, 4, 12, 32)
QUICK_LONG_CLIENTS = (1, 12)
SHORT_TEXT = "Turning on the kitchen lights."
"""A voice assistant's typical reply: one sentence, ~0.07 s for in-process Piper on the
development machine, as in issue 18's workload. Eight of a ten-word sentence (0.2 s of
the whole machine each) within a second would be more work than the second holds: they
would wait for each other whatever the scheduler does."""
STEADY_WITHIN_S = 120.0
"""Longest the long clients may take to all have audio coming."""


@dataclass(frozen=True)
class LatencyPlan:
    long_clients: tuple[int, ...]
    long_text: str
    """20 sentences, looped by every long client."""
    stream_text: str
    """20 sentences, streamed once per idle sample for its first audio."""
    short_text: str = SHORT_TEXT
    shorts: int = 8
    """Short requests per load."""
    shorts_within_s: float = 1.0
    """They arrive evenly spread over this long."""
    alone_samples: int = 5
    idle_samples: int = 3
    idle_s: float = 3.0


def latency_plan(quick: bool, stream_text: str) -> LatencyPlan:
    """Full: 1, 4, 12 and 32 long clients, 5 alone and 3 idle samples. Quick: 1 and 12
    long clients, 3 alone samples, 1 idle sample."""
    long_text = make_text(20, seed=7)
    if quick:
        return LatencyPlan(
            QUICK_LONG_CLIENTS, long_text, stream_text, alone_samples=3, idle_samples=1
        )
    return LatencyPlan(LONG_CLIENTS, long_text, stream_text)


def arrival_offsets(count: int, within_s: float) -> list[float]:
    """When each of `count` requests is sent, evenly over `within_s`: 0, within/count, ..."""
    return [within_s * k / count for k in range(count)]


async def _delayed(delay: float, clients: LatencyClients, address: str, text: str) -> float | None:
    await asyncio.sleep(delay)
    return await clients.short_request(address, text)


async def short_under_load(
    clients: LatencyClients,
    health: httpx.AsyncClient,
    plan: LatencyPlan,
    n: int,
    addresses: Addresses,
) -> ShortUnderLoad:
    """`n` long clients busy, then the short requests; the long ones hung up after.
    `health`: the bench's own client, for the server's idle state."""
    await wait_idle(health)
    audio = [asyncio.Event() for _ in range(n)]
    longs = [
        asyncio.create_task(clients.long_client(address, plan.long_text, event))
        for address, event in zip(addresses.take_many(n), audio, strict=True)
    ]
    try:
        await _until_all_set(audio, longs)
        offsets = arrival_offsets(plan.shorts, plan.shorts_within_s)
        shorts = addresses.take_many(plan.shorts)
        times = await asyncio.gather(
            *(
                _delayed(delay, clients, address, plan.short_text)
                for delay, address in zip(offsets, shorts, strict=True)
            )
        )
    finally:
        for task in longs:
            task.cancel()  # hanging up cancels their jobs on the server
        results = await asyncio.gather(*longs, return_exceptions=True)
    errors = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    if errors:
        raise BenchError(f"a long {clients.name} client failed: {errors[0]!r}")
    await wait_idle(health)
    served = [t for t in times if t is not None]
    return ShortUnderLoad(n, served, refused=len(times) - len(served))


async def _until_all_set(
    events: Sequence[asyncio.Event], tasks: Sequence[asyncio.Task[None]]
) -> None:
    """Every long client has audio coming; a long client that fails ends the wait."""
    waiting: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(e.wait() for e in events))
    )
    watched: list[asyncio.Future[Any]] = [waiting, *tasks]
    try:
        done, _ = await asyncio.wait(
            watched, timeout=STEADY_WITHIN_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiting.cancel()
    failed = [t for t in tasks if t in done]
    if failed:
        failed[0].result()  # raises its error
    if waiting not in done:
        raise BenchError(f"the long clients had no audio within {STEADY_WITHIN_S:g} s")


async def _alone(
    clients: LatencyClients, health: httpx.AsyncClient, plan: LatencyPlan, addresses: Addresses
) -> float:
    await wait_idle(health)
    elapsed = await clients.short_request(addresses.take(), plan.short_text)
    if elapsed is None:
        raise BenchError(f"the idle server refused a short {clients.name} request")
    return elapsed


async def _after_idle(health: httpx.AsyncClient, idle_s: float) -> None:
    await wait_idle(health)
    await asyncio.sleep(idle_s)


async def _idle_rows(
    server: Server,
    health: httpx.AsyncClient,
    serial: SerialPiper,
    plan: LatencyPlan,
    addresses: Addresses,
    report: LatencyReport,
) -> None:
    """Piper and the service take turns; each service request after `idle_s` of nothing."""
    for _ in range(plan.idle_samples):
        await _after_idle(health, 0)
        report.piper_first_audio_s.append(
            await asyncio.to_thread(serial.first_audio, plan.stream_text)
        )
        await _after_idle(health, plan.idle_s)
        async with bound_client(server.url, addresses.take()) as client:
            report.first_audio_s.append(await first_byte(client, plan.stream_text, "wav"))
        await _after_idle(health, 0)  # the hung-up stream's sentences in flight finish
        sent = time.perf_counter()
        await asyncio.to_thread(serial.synthesize_all, [plan.short_text])
        report.piper_sentence_s.append(time.perf_counter() - sent)
        await _after_idle(health, plan.idle_s)
        elapsed = await HttpClients(server.url).short_request(addresses.take(), plan.short_text)
        if elapsed is None:
            raise BenchError("the idle server refused a one-sentence request")
        report.sentence_s.append(elapsed)


async def run_latency(server: Server, serial: SerialPiper, plan: LatencyPlan) -> LatencyReport:
    """Every latency figure from one server; the loads from fewest long clients up."""
    assert server.wyoming_port is not None, "the latency server speaks Wyoming"
    await wait_listening(server.wyoming_port)
    addresses = Addresses()
    transports: list[tuple[LatencyClients, TransportLatency]] = [
        (clients, TransportLatency(clients.name))
        for clients in (
            HttpClients(server.url),
            WyomingClients(server.wyoming_port),
            ContextClients(server.url),
        )
    ]
    report = LatencyReport([figures for _, figures in transports], plan.idle_s)
    async with bench_client(server.url) as health:
        for clients, _ in transports:  # a session's first runs allocate: not measured
            await _alone(clients, health, plan, addresses)
        await asyncio.to_thread(serial.synthesize_all, [plan.short_text])
        progress("latency: short requests alone")
        for _ in range(plan.alone_samples):
            for clients, figures in transports:
                figures.alone_s.append(await _alone(clients, health, plan, addresses))
        for n in plan.long_clients:
            for clients, figures in transports:
                progress(f"latency: short requests beside {n} long {clients.name} client(s)")
                figures.loads[n] = await short_under_load(clients, health, plan, n, addresses)
        progress(f"latency: first audio and one sentence after {plan.idle_s:g} s idle")
        await _idle_rows(server, health, serial, plan, addresses, report)
        progress("latency: first audio of a long sentence and of 20 sentences, each transport")
        ws_url = "ws" + server.url.removeprefix("http")
        probes = probes_for(server.url, ws_url, server.wyoming_port, health)
        texts = {"sentence": LONG_SENTENCE, "text": plan.stream_text}
        report.first_audio = await measure_first_audio(
            health, probes, serial, texts, plan.idle_samples
        )
    report.meta["addresses_used"] = addresses.taken
    return report


def measure_latency(
    serial: SerialPiper, config: ServerConfig, target: Target, plan: LatencyPlan, cores: int
) -> LatencyReport:
    """The latency rows against a server of its own (`target`, `config`'s admission)."""
    progress(f"latency: starting {target.policy} {target.workers}x{target.threads_per_worker}")
    with running_servers(config, [target]) as (server,):
        meter = CpuMeter(cores)
        meter.pids = [server.proc.pid]
        noise: list[float] = []
        report, share = asyncio.run(meter.measure(run_latency(server, serial, plan), noise))
    report.noise = share
    report.meta.update(
        {
            "long_clients": list(plan.long_clients),
            "shorts_per_load": plan.shorts,
            "shorts_within_s": plan.shorts_within_s,
            "short_text": plan.short_text,
            "long_text_chars": len(plan.long_text),
            "stream_text_chars": len(plan.stream_text),
            "service": {
                "policy": target.policy,
                "workers": target.workers,
                "threads_per_worker": target.threads_per_worker,
            },
        }
    )
    return report


def latency_server(settings: Settings, log_dir: Path) -> tuple[ServerConfig, Target]:
    """The default service: fair, the default sizing, its own admission limits; Wyoming on."""
    config = ServerConfig(
        settings.default_voice, settings.voices_dir, log_dir, admission=(), wyoming=True
    )
    target = Target("latency", "fair", settings.worker_count, settings.threads_per_worker)
    return config, target
