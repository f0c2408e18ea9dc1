"""Glue between the scheduler's PCM chunks and a response body: encode off the event loop,
commit the status only once the first audio (or the first error) is known, send in
bounded slices, notice a client that went away."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from tts_service.api.connection import ClientGone
from tts_service.audio.encoders import WAV_FORMATS, exact_sizes, make_encoder
from tts_service.errors import ServiceError
from tts_service.service import Admitted, TTSService

T = TypeVar("T")

SLICE_BYTES = 64 * 1024
"""Largest piece handed to the server at once: each send then waits only for the client
to take this much, so a slow but reading client keeps proving progress (see api/stall.py)
and a stalled one is noticed within the stall timeout."""

ErrorRenderer = Callable[[ServiceError], Response]


def slices(data: bytes, size: int = SLICE_BYTES) -> Iterator[bytes]:
    view = memoryview(data)
    for offset in range(0, len(view), size):
        yield bytes(view[offset : offset + size])


async def encoded_stream(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> AsyncGenerator[bytes, None]:
    """Encoded bytes (at `rate`, else the format's default rate), sentence by sentence as
    the scheduler delivers them, in slices."""
    loop = asyncio.get_running_loop()
    encoder = make_encoder(fmt, admitted.voice.sample_rate, rate)
    async for chunk in admitted.chunks():
        data = await loop.run_in_executor(None, encoder.encode, chunk.pcm)
        for piece in slices(data):
            yield piece
            admitted.touch()  # the client took a slice: slow is not stalled
    tail = await loop.run_in_executor(None, encoder.flush)
    for piece in slices(tail):
        yield piece


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T:
    """Run `work`; if the client hangs up first, cancel it (which cancels its job)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone
    return task.result()


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    return await unless_gone(request.receive, work)


async def _first_item(content: AsyncGenerator[bytes, None]) -> bytes | None:
    """The first piece of the body, or None if the body is empty."""
    try:
        return await content.__anext__()
    except StopAsyncIteration:
        return None


async def _then(first: bytes | None, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
    if first is not None:
        yield first
    async for piece in rest:
        yield piece


class JobStreamingResponse(StreamingResponse):
    """A streamed body tied to a scheduler job.

    The status line goes out only when the first piece of audio exists: until then a
    refusal, a passed deadline or a failed first sentence is answered as a real JSON error
    (by `on_error`), not as a 200 cut short. After it, a failure ends the stream the way
    its format allows (see the README). However the response ends (done, client gone,
    server stopping), the job's remaining sentences are cancelled and the body's generator
    (and with it the encoder) is closed at once, not whenever it is collected."""

    def __init__(
        self,
        content: AsyncGenerator[bytes, None],
        service: TTSService,
        admitted: Admitted,
        media_type: str,
        headers: dict[str, str],
        on_error: ErrorRenderer,
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._content = content
        self._service = service
        self._admitted = admitted
        self._on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            try:
                first = await unless_gone(receive, _first_item(self._content))
            except ClientGone:
                return
            except ServiceError as error:
                await self._on_error(error)(scope, receive, send)
                return
            self.body_iterator = _then(first, self._content)
            await super().__call__(scope, receive, send)
        finally:
            self._admitted.cancel()  # no-op once the job is done
            await self._content.aclose()


class PartsResponse(Response):
    """A complete body of known length held as parts (never joined into one more copy),
    sent in slices so that each send waits only for a slice to leave (see SLICE_BYTES)."""

    def __init__(
        self,
        parts: Iterable[bytes],
        length: int,
        media_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(b"", media_type=media_type, headers=headers)
        self._parts = parts
        self.headers["content-length"] = str(length)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        await send(start)
        for part in self._parts:
            for piece in slices(part):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def audio_response(parts: list[bytes], media_type: str, headers: dict[str, str]) -> PartsResponse:
    return PartsResponse(parts, sum(len(part) for part in parts), media_type, headers)


def json_with_base64(fields: dict[str, Any], key: str, parts: list[bytes]) -> PartsResponse:
    """`fields` as a JSON object whose last member `key` is the base64 of `parts`, built a
    slice at a time: no full copy of the audio as base64 or as JSON text ever exists."""
    head = json.dumps(fields, separators=(",", ":"))[:-1].encode()
    head += (b"," if fields else b"") + json.dumps(key).encode() + b':"'
    tail = b'"}'
    size = base64_length(sum(len(part) for part in parts))
    body = itertools.chain((head,), base64_parts(parts), (tail,))
    return PartsResponse(body, len(head) + size + len(tail), "application/json")


async def encode_whole(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> list[bytes]:
    """The complete file as parts; WAV gets exact sizes in its header. At most the output
    cap of audio (the scheduler stops a request that passes it)."""
    parts = [part async for part in encoded_stream(service, admitted, fmt, rate)]
    return exact_sizes(parts) if fmt in WAV_FORMATS else parts


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def base64_parts(parts: list[bytes], piece: int = 3 * 16 * 1024) -> Iterator[bytes]:
    """Base64 of the concatenated parts, a slice at a time (never the whole text at once):
    each slice but the last encodes a multiple of 3 bytes, so the slices join exactly."""
    carry = b""  # fewer than 3 bytes left over from the parts before
    for part in parts:
        view = memoryview(part)
        if carry:
            take = 3 - len(carry)
            carry += bytes(view[:take])
            view = view[take:]
            if len(carry) < 3:  # this part was shorter than what was missing
                continue
            yield base64.b64encode(carry)
        usable = len(view) // 3 * 3
        for start in range(0, usable, piece):
            yield base64.b64encode(view[start : min(start + piece, usable)])
        carry = bytes(view[usable:])
    if carry:
        yield base64.b64encode(carry)
