"""Glue between the scheduler's PCM chunks and a response body: encode off the event loop,
notice a client that went away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from fastapi import Request

from tts_service.audio import make_encoder, wav_bytes
from tts_service.service import Admitted, TTSService

T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its response was ready."""


async def encoded_stream(service: TTSService, admitted: Admitted, fmt: str) -> AsyncIterator[bytes]:
    """Encoded bytes, sentence by sentence, as the scheduler delivers them."""
    loop = asyncio.get_running_loop()
    encoder = make_encoder(fmt, admitted.voice.sample_rate)
    async for chunk in service.scheduler.stream(admitted.job):
        data = await loop.run_in_executor(None, encoder.encode, chunk.pcm)
        if data:
            yield data
    tail = await loop.run_in_executor(None, encoder.flush)
    if tail:
        yield tail


async def encode_whole(service: TTSService, admitted: Admitted, fmt: str) -> bytes:
    """The complete file; WAV gets exact sizes in its header."""
    if fmt == "wav":
        pcm = await service.scheduler.collect(admitted.job)
        return wav_bytes(pcm, admitted.voice.sample_rate)
    return b"".join([part async for part in encoded_stream(service, admitted, fmt)])


async def _wait_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`; if the client hangs up first, cancel it (which cancels its job)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone
    return task.result()
