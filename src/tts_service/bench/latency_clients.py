"""The two kinds of client the latency rows time, each from a loopback address of its own:
HTTP (`/synthesize/binary`) and Wyoming (a connection per client, `synthesize` answered by
audio-start, audio-chunks, audio-stop)."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from wyoming.audio import AudioChunk, AudioStop
from wyoming.error import Error
from wyoming.event import async_read_event, async_write_event
from wyoming.tts import Synthesize

from tts_service.bench.client import REFUSED, SYNTH_PATH, bound_client
from tts_service.bench.errors import BenchError


class LatencyClients(Protocol):
    """One transport's clients: long ones that keep the server busy, short ones timed."""

    name: str

    async def long_client(self, address: str, text: str, audio: asyncio.Event) -> None:
        """Speak `text` again and again from `address`; set `audio` once audio comes."""

    async def short_request(self, address: str, text: str) -> float | None:
        """Seconds from sending `text` from `address` to the end of its audio; None when
        the server refused it."""


class HttpClients:
    name = "HTTP"

    def __init__(self, url: str) -> None:
        self.url = url

    async def long_client(self, address: str, text: str, audio: asyncio.Event) -> None:
        body = {"text": text, "stream": True, "format": "wav"}
        async with bound_client(self.url, address) as client:
            while True:
                async with client.stream("POST", SYNTH_PATH, json=body) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise BenchError(
                            f"a long client got {response.status_code}: {response.text[:300]}"
                        )
                    async for part in response.aiter_raw():
                        if part:
                            audio.set()

    async def short_request(self, address: str, text: str) -> float | None:
        async with bound_client(self.url, address) as client:  # made before the clock starts
            sent = time.perf_counter()
            response = await client.post(SYNTH_PATH, json={"text": text})
            elapsed = time.perf_counter() - sent
        if response.status_code in REFUSED:
            return None
        if response.status_code != 200 or len(response.content) <= 44:
            raise BenchError(f"a short request got {response.status_code}: {response.text[:300]}")
        return elapsed


class WyomingClients:
    name = "Wyoming"

    def __init__(self, port: int) -> None:
        self.port = port

    async def _open(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(address, 0))

    async def long_client(self, address: str, text: str, audio: asyncio.Event) -> None:
        reader, writer = await self._open(address)
        try:
            while True:
                if not await speak(reader, writer, text, audio):
                    raise BenchError("the Wyoming server refused a long client")
        finally:
            writer.close()

    async def short_request(self, address: str, text: str) -> float | None:
        sent = time.perf_counter()  # a fresh connection, as Home Assistant makes one
        reader, writer = await self._open(address)
        try:
            spoken = await speak(reader, writer, text)
            elapsed = time.perf_counter() - sent
        finally:
            writer.close()
        return elapsed if spoken else None


async def wait_listening(port: int, within: float = 60.0) -> None:
    """Until the Wyoming port takes connections (it may open after HTTP does)."""
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(f"the Wyoming port {port} never opened") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return


async def speak(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    text: str,
    audio: asyncio.Event | None = None,
) -> bool:
    """One `synthesize`, read to its audio-stop (True) or its error (False)."""
    await async_write_event(Synthesize(text=text).event(), writer)
    while True:
        event = await async_read_event(reader)
        if event is None:
            raise BenchError("the Wyoming server closed the connection mid-answer")
        if AudioChunk.is_type(event.type) and audio is not None:
            audio.set()
        elif AudioStop.is_type(event.type):
            return True
        elif Error.is_type(event.type):
            return False
