"""First audio on every streaming transport (issue 25's rows): a lone 26-word sentence and
the 20-sentence text, each sent to the idle server over HTTP (chunked), the WebSocket and
Wyoming, against in-process Piper's whole first sentence of the same text.

Piper yields nothing before its first sentence is done; the service may hand out a long
first sentence in pieces as it decodes it. Every request hangs up at its first audio (the
rest of its job is cancelled) and waits for the server to be idle again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect as ws_connect
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from tts_service.bench.chunking import LONG_SENTENCE as LONG_SENTENCE
from tts_service.bench.client import first_byte, wait_idle
from tts_service.bench.errors import BenchError
from tts_service.bench.goals import Goal
from tts_service.bench.serial import SerialPiper
from tts_service.bench.stats import ratio

GOAL_LONG = Goal("<=", 0.5)
GOAL_TEXT = Goal("<=", 0.7)
TRANSPORTS = ("HTTP", "WebSocket", "Wyoming")

Probe = Callable[[str], Awaitable[float]]


async def websocket_first(ws_url: str, text: str) -> float:
    """Seconds from sending `text` on the WebSocket to its first audio frame."""
    async with ws_connect(f"{ws_url}/synthesize/stream", proxy=None, max_size=None) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"text": text}))
        while True:
            message = await asyncio.wait_for(ws.recv(), 60)
            if isinstance(message, bytes):
                return time.perf_counter() - started
            if json.loads(message).get("type") in ("error", "end"):
                raise BenchError(f"the WebSocket sent no audio: {message[:300]!r}")


async def wyoming_first(port: int, text: str) -> float:
    """Seconds from a Wyoming `synthesize` to its first audio-chunk."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=text).event())
        while (event := await asyncio.wait_for(client.read_event(), 60)) is not None:
            if AudioChunk.is_type(event.type):
                return time.perf_counter() - started
            if event.type in ("error", "audio-stop"):
                break
    raise BenchError("the Wyoming server sent no audio")


@dataclass
class FirstAudio:
    """Seconds to first audio, per text ("sentence", "text") and transport, and Piper's."""

    service_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    piper_s: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, text: str, transport: str) -> float | None:
        mine = self.service_s.get(text, {}).get(transport, [])
        return ratio(_median(mine), _median(self.piper_s.get(text, [])))

    def goals(self) -> list[tuple[str, float | None, Goal]]:
        return [
            (
                f"first audio, {_LABELS[text]}, {transport} / Piper",
                self.ratio(text, transport),
                goal,
            )
            for text, goal in (("sentence", GOAL_LONG), ("text", GOAL_TEXT))
            for transport in TRANSPORTS
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service_s": self.service_s,
            "piper_s": self.piper_s,
            "ratios": {name: value for name, value, _ in self.goals()},
        }


_LABELS = {"sentence": "a lone 26-word sentence", "text": "20 sentences"}


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


async def measure_first_audio(
    health: httpx.AsyncClient,
    probes: dict[str, Probe],
    serial: SerialPiper,
    texts: dict[str, str],
    samples: int,
) -> FirstAudio:
    """Piper and each transport take turns on each text, `samples` times, each on the
    idle server."""
    found = FirstAudio()
    for _ in range(samples):
        for name, text in texts.items():
            await wait_idle(health)
            piper = await asyncio.to_thread(serial.first_audio, text)
            found.piper_s.setdefault(name, []).append(piper)
            for transport, probe in probes.items():
                await wait_idle(health)
                seconds = await probe(text)
                found.service_s.setdefault(name, {}).setdefault(transport, []).append(seconds)
    return found


def probes_for(
    url: str, ws_url: str, wyoming_port: int, client: httpx.AsyncClient
) -> dict[str, Probe]:
    async def http(text: str) -> float:
        return await first_byte(client, text, "pcm")

    async def websocket(text: str) -> float:
        return await websocket_first(ws_url, text)

    async def wyoming(text: str) -> float:
        return await wyoming_first(wyoming_port, text)

    return {"HTTP": http, "WebSocket": websocket, "Wyoming": wyoming}
