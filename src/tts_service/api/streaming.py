"""Glue between the scheduler's PCM chunks and a response body: encode off the event loop,
notice a client that went away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tts_service.audio import make_encoder, wav_bytes
from tts_service.service import Admitted, TTSService

T = TypeVar("T")


class ClientGone(Exception):
    """The HTTP client disconnected before its response was ready."""


async def encoded_stream(
    service: TTSService, admitted: Admitted, fmt: str
) -> AsyncGenerator[bytes, None]:
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


class JobStreamingResponse(StreamingResponse):
    """A streamed body tied to a scheduler job: however the response ends (done, client
    gone, server stopping), the job's remaining sentences are cancelled and the body's
    generator (and with it the encoder) is closed at once, not whenever it is collected."""

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        service: TTSService,
        admitted: Admitted,
        media_type: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._content = content
        self._service = service
        self._job = admitted.job

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._service.scheduler.cancel(self._job)  # no-op once the job is done
            await self._content.aclose()


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
