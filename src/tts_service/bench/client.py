"""The bench's HTTP client: one request, the server's idle state, first bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from tts_service.bench.errors import BenchError
from tts_service.bench.servers import Server

SYNTH_PATH = "/synthesize/binary"
REFUSED = (429, 503)
"""Admission's answers: the queue is full / the wait too long, or too many per client."""


def bench_client(base_url: str, connections: int = 64) -> httpx.AsyncClient:
    """`connections` at least the clients that run at once: past it they queue in httpx."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(3600.0, connect=10.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,  # loopback only: never through a proxy
    )


def bound_client(base_url: str, address: str) -> httpx.AsyncClient:
    """A client whose sockets leave from `address` (a loopback address of its own), so the
    server sees a client of its own. No TLS context: loading one takes ~40 ms of the loop,
    and the bench speaks plain HTTP."""
    transport = httpx.AsyncHTTPTransport(local_address=address, verify=False)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        timeout=httpx.Timeout(3600.0, connect=10.0),
        trust_env=False,
    )


async def synthesize(client: httpx.AsyncClient, text: str, voice: str | None = None) -> float:
    """One non-streamed WAV request; returns its audio seconds."""
    body = {"text": text} if voice is None else {"text": text, "voice": voice}
    response = await client.post(SYNTH_PATH, json=body)
    if response.status_code != 200:
        raise BenchError(f"server answered {response.status_code}: {response.text[:300]}")
    duration = float(response.headers["X-Duration"])
    samples = (len(response.content) - 44) // 2  # mono 16-bit WAV after a 44-byte header
    if abs(samples / int(response.headers["X-Sample-Rate"]) - duration) > 0.01:
        raise BenchError("the WAV body does not hold the audio X-Duration announces")
    return duration


async def wait_until(
    client: httpx.AsyncClient, check: Callable[[dict[str, Any]], bool], what: str
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if check((await client.get("/health")).json()):
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"the server never became {what}")


def _idle(health: dict[str, Any]) -> bool:
    return bool(
        health["busy_workers"] == 0
        and health["active_requests"] == 0
        and health["queued_requests"] == 0
    )


async def wait_idle(client: httpx.AsyncClient) -> None:
    await wait_until(client, _idle, "idle")


async def wait_all_idle(clients: dict[str, httpx.AsyncClient]) -> None:
    await asyncio.gather(*(wait_idle(client) for client in clients.values()))


async def first_byte(client: httpx.AsyncClient, text: str, fmt: str) -> float:
    """Seconds from sending a streamed request to its first body byte. Hanging up right
    after cancels the rest of the job (its sentences in flight still finish)."""
    body = {"text": text, "stream": True, "format": fmt}
    started = time.perf_counter()
    async with client.stream("POST", SYNTH_PATH, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise BenchError(f"server answered {response.status_code}: {response.text[:300]}")
        async for part in response.aiter_raw():
            if part:
                return time.perf_counter() - started
    raise BenchError(f"the streamed {fmt} response was empty")


@asynccontextmanager
async def server_clients(
    servers: Sequence[Server], connections: int = 64
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        yield {
            s.name: await stack.enter_async_context(bench_client(s.url, connections))
            for s in servers
        }
