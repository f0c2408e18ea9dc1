"""What the clients do to one server over HTTP: throughput rounds and the mixed load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tts_service.bench.client import synthesize, wait_idle, wait_until
from tts_service.bench.errors import BenchError
from tts_service.bench.rounds import Sample
from tts_service.bench.workload import Workload


async def throughput_round(
    client: httpx.AsyncClient,
    requests: list[list[str]],
    settle: Callable[[httpx.AsyncClient], Awaitable[None]] = wait_idle,
) -> Sample:
    """All clients at once, each sending its texts in turn, once `settle` says the server
    is quiet."""

    async def one_client(texts: list[str]) -> float:
        return sum([await synthesize(client, text) for text in texts])

    await settle(client)
    started = time.perf_counter()
    audio = await asyncio.gather(*(one_client(texts) for texts in requests))
    return Sample(time.perf_counter() - started, sum(audio), None)


async def mixed_load(client: httpx.AsyncClient, workload: Workload) -> tuple[list[float], int]:
    """Long clients loop their long text while one client sends short ones in turn."""
    done = 0

    async def long_client() -> None:
        nonlocal done
        while True:
            await synthesize(client, workload.long_text)
            done += 1

    await wait_idle(client)
    done_before = (await client.get("/health")).json()["totals"]["sentences"]

    def steady(health: dict[str, Any]) -> bool:
        # Every long request admitted, and as many sentences done as there are long
        # requests: under fair each has started, so a short one meets them mid-way rather
        # than tying with their first sentences.
        admitted = health["active_requests"] + health["queued_requests"]
        sentences = health["totals"]["sentences"] - done_before
        return bool(admitted >= workload.long_clients and sentences >= workload.long_clients)

    tasks = [asyncio.create_task(long_client()) for _ in range(workload.long_clients)]
    latencies: list[float] = []
    try:
        await wait_until(client, steady, "busy with the long requests")
        started = time.perf_counter()
        while (
            time.perf_counter() - started < workload.mixed_seconds
            or len(latencies) < workload.min_short_samples
        ):
            text = workload.short_texts[len(latencies) % len(workload.short_texts)]
            sent = time.perf_counter()
            await synthesize(client, text)
            latencies.append(time.perf_counter() - sent)
    finally:
        for task in tasks:
            task.cancel()  # closing their connections cancels their jobs on the server
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    if errors:
        raise BenchError(f"a long client failed: {errors[0]!r}")
    await wait_idle(client)
    return latencies, done
