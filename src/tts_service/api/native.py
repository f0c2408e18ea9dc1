"""The native API: JSON, binary and WebSocket synthesis."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect

from tts_service.api import captions
from tts_service.api.audio_headers import BINARY_HEADERS, audio_headers, duration_header
from tts_service.api.body import openapi_body, parse_json, read_model, validate
from tts_service.api.connection import client_address, get_service
from tts_service.api.errors import ServiceErrorBody, documented_errors, native_error_response
from tts_service.api.framing import b64, error_line, error_message, framed, json_line
from tts_service.api.schemas import (
    AUDIO_CONTENT,
    StreamBody,
    SynthesizeBody,
    SynthesizeJsonBody,
    SynthesizeResult,
)
from tts_service.api.streaming import (
    JobStreamingResponse,
    audio_response,
    encode_whole,
    encoded_stream,
    json_with_base64,
    slices,
    unless_disconnected,
)
from tts_service.api.timed import encode_whole_timed, encoded_pieces, timed_chunks
from tts_service.audio.encoders import content_type, make_encoder, output_rate
from tts_service.engine.words import Word, all_words
from tts_service.errors import Cancelled, IdleTimeout, ServiceError, ValidationFailed
from tts_service.service import Admitted, TTSService

Body = TypeVar("Body", SynthesizeBody, SynthesizeJsonBody)
NDJSON = "application/x-ndjson"

router = APIRouter(tags=["synthesis"])

SYNTHESIS_ERRORS = documented_errors(
    ServiceErrorBody,
    {
        400: "Malformed JSON, or a speaker the voice does not have.",
        404: "No voice by that name.",
        413: "Text over max_text_chars, or audio over max_audio_seconds.",
        422: "A field has the wrong type or value; `param` names it.",
        429: "This client already holds max_client_requests requests.",
        500: "Synthesis failed, or the voice's files cannot be loaded.",
        503: "The queue is full or the server is shutting down.",
        504: "The request waited in the queue past its deadline (`timeout`).",
    },
)


def describe(admitted: Admitted, started: float) -> dict[str, Any]:
    return {
        "voice": admitted.voice.info.name,
        "sample_rate": admitted.voice.sample_rate,
        "duration": round(admitted.audio_seconds, 4),
        "sentences": admitted.sentences,
        "synthesis_time": round(admitted.synth_seconds, 4),
        "queue_wait": round(admitted.queue_wait, 4),
        "elapsed": round(time.monotonic() - started, 4),
    }


async def admit(request: Request, model: type[Body]) -> tuple[Body, Admitted]:
    body = await read_model(request, model)
    speech = body.to_request(client=client_address(request))
    admitted = await get_service(request).submit(speech, label=request.url.path)
    request.state.admitted = admitted  # for the access log
    return body, admitted


def timing_fields(
    body: SynthesizeJsonBody | StreamBody,
    admitted: Admitted,
    sentences: list[list[Word]],
    words: bool = True,
) -> dict[str, Any]:
    """`words` (unless sent already) and `captions`, as far as the request asked for them."""
    fields: dict[str, Any] = {}
    if body.timestamps and words:
        fields["words"] = [word.to_dict() for word in all_words(sentences)]
    if body.captions is not None:
        fields["captions"] = captions.render(body.captions, sentences, admitted.text)
    return fields


@router.post(
    "/synthesize",
    openapi_extra=openapi_body(SynthesizeJsonBody),
    responses={
        200: {
            "model": SynthesizeResult,
            "description": "JSON; with `stream`, JSON lines (see the README).",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **SYNTHESIS_ERRORS,
    },
)
async def synthesize_json(request: Request) -> Response:
    """Synthesize and answer JSON with base64 audio and figures about the work (with
    `timestamps` each word's timing, with `captions` a caption file; with `stream`, JSON
    lines as the audio is made)."""
    started = time.monotonic()
    body, admitted = await admit(request, SynthesizeJsonBody)
    service = get_service(request)
    rate = output_rate(body.format, admitted.voice.sample_rate, body.sample_rate)
    if body.stream:
        return JobStreamingResponse(
            json_lines(service, admitted, body, started),
            service,
            admitted,
            NDJSON,
            audio_headers(admitted),
            on_error=native_error_response,
        )
    work = encode_whole_timed(service, admitted, body.format, body.sample_rate)
    audio, sentences, marks = await unless_disconnected(request, work)
    result = describe(admitted, started)
    result.update(format=body.format, sample_rate=rate)
    result.update(timing_fields(body, admitted, sentences))
    if body.timestamps and marks:
        result["marks"] = [mark.to_dict() for mark in marks]
    return json_with_base64(result, "audio", audio)


def json_lines(
    service: TTSService, admitted: Admitted, body: SynthesizeJsonBody, started: float
) -> AsyncGenerator[bytes, None]:
    """`{"type": "start"}`, then per sentence `{"type": "audio", "sentence", "audio"}` (base64
    of that sentence's encoded audio, `words` with timestamps), a last `audio` line with the
    encoder's tail, `{"type": "end"}` with the figures (and `captions`). Nothing is sent
    before the first sentence exists (a refusal is still a real error status); a failure
    after it is an `error` line."""
    return framed(_lines(service, admitted, body, started), error_line)


async def _lines(
    service: TTSService, admitted: Admitted, body: SynthesizeJsonBody, started: float
) -> AsyncGenerator[bytes, None]:
    rate = output_rate(body.format, admitted.voice.sample_rate, body.sample_rate)
    figures = {"format": body.format, "sample_rate": rate}
    start = {"type": "start", "voice": admitted.voice.info.name, **figures}
    start["sentences"] = admitted.sentences
    sentences: list[list[Word]] = []
    pieces = encoded_pieces(service, admitted, body.format, body.phonemes, body.sample_rate)
    opened = False
    try:
        async for piece in pieces:
            line: dict[str, Any] = {"type": "audio"}
            if piece.sentence is not None:
                line["sentence"] = piece.sentence
            if piece.sentence is not None and piece.first:
                sentences.append(piece.words)
                if body.timestamps:
                    line["words"] = [word.to_dict() for word in piece.words]
                if piece.marks:
                    line["marks"] = [mark.to_dict() for mark in piece.marks]
                if body.phonemes:
                    line["phonemes"] = [p.to_dict() for p in piece.phonemes]
            line["audio"] = b64(piece.audio)
            data = json_line(line) if opened else json_line(start) + json_line(line)
            opened = True
            for part in slices(data):
                yield part
                admitted.touch()  # the client took a slice
    finally:
        await pieces.aclose()
    end = {"type": "end", **describe(admitted, started), **figures}
    yield json_line({**end, **timing_fields(body, admitted, sentences, words=False)})


@router.post(
    "/synthesize/binary",
    openapi_extra=openapi_body(SynthesizeBody),
    response_class=Response,
    responses={
        200: {
            "description": "The audio file.",
            "headers": BINARY_HEADERS,
            "content": AUDIO_CONTENT,
        },
        **SYNTHESIS_ERRORS,
    },
)
async def synthesize_binary(request: Request) -> Response:
    """Synthesize and answer the audio file itself (`stream: true` sends it chunked)."""
    body, admitted = await admit(request, SynthesizeBody)
    service = get_service(request)
    headers = audio_headers(admitted, body.format, body.sample_rate)
    if body.stream:
        return JobStreamingResponse(
            encoded_stream(service, admitted, body.format, body.sample_rate),
            service,
            admitted,
            content_type(body.format),
            headers,
            on_error=native_error_response,
        )
    work = encode_whole(service, admitted, body.format, body.sample_rate)
    audio = await unless_disconnected(request, work)
    headers.update(duration_header(admitted))
    return audio_response(audio, content_type(body.format), headers)


_socket_ids = itertools.count(1)

IDLE_CLOSE_CODE = 1000
"""Close code of a socket closed for idleness: a normal closure, explained by the error
message sent just before it."""


class _Connection:
    """One WebSocket: requests one after another; `{"cancel": true}` stops the current one.

    A socket with no request running that sends nothing for idle_timeout seconds is told so
    (an `idle_timeout` error message) and closed."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.service = get_service(websocket)
        self.client = f"ws#{next(_socket_ids)}"
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        self.current: Admitted | None = None

    async def read(self) -> None:
        """Reads every message, so a cancel is seen even while audio is being sent."""
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("text") or (message.get("bytes") or b"").decode(
                    "utf-8", "replace"
                )
                if self.current is not None and _is_cancel(raw):
                    self.current.cancel()
                elif self.inbox.full():
                    await self.send_error(ServiceError("too many pending requests on this socket"))
                else:
                    self.inbox.put_nowait(raw)
        finally:
            if self.current is not None:
                self.current.cancel()
            with contextlib.suppress(asyncio.QueueFull):
                self.inbox.put_nowait(None)

    async def send_error(self, error: ServiceError) -> None:
        await self.websocket.send_json(error_message(error))

    async def serve(self) -> None:
        while (raw := await self.next_message()) is not None:
            if _is_cancel(raw):
                continue  # nothing running to cancel
            try:
                body = _stream_body(raw)
                request = body.to_request(client=self.client)
                admitted = await self.service.submit(request, label="ws")
            except ServiceError as error:
                await self.send_error(error)
                continue
            await self.stream(admitted, body)

    async def next_message(self) -> str | None:
        """The next message; None once the socket ended or was closed for idleness."""
        limit = self.service.settings.idle_timeout
        try:
            async with asyncio.timeout(limit):
                return await self.inbox.get()
        except TimeoutError:
            await self.send_error(IdleTimeout(f"no request for {limit:g} s: closing the socket"))
            await self.websocket.close(IDLE_CLOSE_CODE, "idle timeout")
            return None

    async def stream(self, admitted: Admitted, body: StreamBody) -> None:
        """A JSON start, the audio in binary frames, a JSON end. Without a format: one frame
        of raw 16-bit mono PCM per sentence (resampled to `sample_rate` if given); with one:
        that format's bytes as encoded. With timestamps, each sentence's words come just
        before its audio."""
        started = time.monotonic()
        fmt = body.format
        self.current = admitted
        rate = admitted.voice.sample_rate
        encoding = fmt if fmt is not None or body.sample_rate is None else "pcm"
        encoder = make_encoder(encoding, rate, body.sample_rate) if encoding else None
        figures: dict[str, Any] = {"sample_rate": body.sample_rate or rate}
        if fmt is not None:
            figures.update(format=fmt, sample_rate=output_rate(fmt, rate, body.sample_rate))
        start: dict[str, Any] = {"type": "start", "voice": admitted.voice.info.name, **figures}
        if fmt in (None, "wav", "pcm"):
            start["sample_width"] = 2
        start.update(channels=1, sentences=admitted.sentences)
        await self.websocket.send_json(start)
        loop = asyncio.get_running_loop()
        sentences: list[list[Word]] = []
        try:
            async for chunk, words, marks, timed in timed_chunks(
                self.service, admitted, body.phonemes
            ):
                if chunk.first:
                    sentences.append(words)
                for mark in marks:  # before the audio it is reached in
                    await self.websocket.send_json({"type": "mark", **mark.to_dict()})
                if body.phonemes and chunk.first:
                    phonemes = [p.to_dict() for p in timed]
                    message = {"type": "phonemes", "sentence": chunk.index, "phonemes": phonemes}
                    await self.websocket.send_json(message)
                if body.timestamps and chunk.first:
                    await self.websocket.send_json(
                        {
                            "type": "words",
                            "sentence": chunk.index,
                            "words": [word.to_dict() for word in words],
                        }
                    )
                if encoder is None:
                    await self.websocket.send_bytes(chunk.pcm)
                elif data := await loop.run_in_executor(None, encoder.encode, chunk.pcm):
                    await self.websocket.send_bytes(data)
            if encoder is not None and (tail := await loop.run_in_executor(None, encoder.flush)):
                await self.websocket.send_bytes(tail)
        except Cancelled:
            await self.websocket.send_json({"type": "cancelled"})
            return
        except ServiceError as error:
            await self.send_error(error)
            return
        finally:
            self.current = None
        end = {"type": "end", **describe(admitted, started), **figures}
        end.update(timing_fields(body, admitted, sentences, words=False))  # words came already
        await self.websocket.send_json(end)


def _stream_body(raw: str) -> StreamBody:
    message = parse_json(raw)
    if isinstance(message, dict) and "stream" in message:
        raise ValidationFailed(
            "stream: the WebSocket always streams; leave this field out", param="stream"
        )
    return validate(StreamBody, message)


def _is_cancel(raw: str) -> bool:
    try:
        message = parse_json(raw)
    except ServiceError:
        return False
    return isinstance(message, dict) and message.get("cancel") is True and "text" not in message


@router.websocket("/synthesize/stream")
async def synthesize_stream(websocket: WebSocket) -> None:
    """Send a JSON request; get a JSON header, the audio in binary frames (by default one
    frame of raw PCM per sentence), a JSON end. Idle sockets are closed (see _Connection)."""
    await websocket.accept()
    connection = _Connection(websocket)
    reader = asyncio.create_task(connection.read())
    try:
        await connection.serve()
    except WebSocketDisconnect:
        pass
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        if connection.current is not None:
            connection.current.cancel()
