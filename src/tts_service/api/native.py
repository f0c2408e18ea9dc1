"""The native API: JSON, binary and WebSocket synthesis."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from tts_service.api.body import openapi_body, parse_json, read_model, validate
from tts_service.api.errors import ServiceErrorBody, documented_errors
from tts_service.api.schemas import (
    AUDIO_CONTENT,
    AUDIO_HEADERS,
    SynthesizeBody,
    SynthesizeResult,
)
from tts_service.api.streaming import (
    ClientGone,
    JobStreamingResponse,
    encode_whole,
    encoded_stream,
    unless_disconnected,
)
from tts_service.audio import content_type, output_rate
from tts_service.errors import Cancelled, ServiceError
from tts_service.scheduler import Job
from tts_service.service import Admitted, TTSService

router = APIRouter(tags=["synthesis"])

CLIENT_CLOSED = 499  # nginx's code for "client closed request"; only ever seen in logs

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
BINARY_HEADERS = {
    **AUDIO_HEADERS,
    "X-Duration": {
        "description": "Seconds of audio (not when streamed).",
        "schema": {"type": "number"},
    },
}


def get_service(connection: Request | WebSocket) -> TTSService:
    service: TTSService = connection.app.state.service
    return service


def describe(admitted: Admitted, started: float) -> dict[str, Any]:
    job = admitted.job
    return {
        "voice": admitted.voice.info.name,
        "sample_rate": admitted.voice.sample_rate,
        "duration": round(job.audio_seconds, 4),
        "sentences": admitted.sentences,
        "synthesis_time": round(job.synth_seconds, 4),
        "queue_wait": round(job.queue_wait, 4),
        "elapsed": round(time.monotonic() - started, 4),
    }


async def admit(request: Request) -> tuple[SynthesizeBody, Admitted]:
    body = await read_model(request, SynthesizeBody)
    admitted = await get_service(request).submit(body.to_request(), label=request.url.path)
    request.state.admitted = admitted  # for the access log
    return body, admitted


@router.post(
    "/synthesize",
    openapi_extra=openapi_body(SynthesizeBody),
    responses={200: {"model": SynthesizeResult}, **SYNTHESIS_ERRORS},
)
async def synthesize_json(request: Request) -> Response:
    """Synthesize and answer JSON with base64 audio and figures about the work."""
    started = time.monotonic()
    body, admitted = await admit(request)
    service = get_service(request)
    try:
        audio = await unless_disconnected(request, encode_whole(service, admitted, body.format))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    result = describe(admitted, started)
    result.update(
        format=body.format,
        sample_rate=output_rate(body.format, admitted.voice.sample_rate),
        audio=base64.b64encode(audio).decode("ascii"),
    )
    return JSONResponse(result)


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
    body, admitted = await admit(request)
    service = get_service(request)
    headers = {
        "X-Voice": admitted.voice.info.name,
        "X-Sentences": str(admitted.sentences),
        "X-Sample-Rate": str(output_rate(body.format, admitted.voice.sample_rate)),
    }
    if body.stream:
        return JobStreamingResponse(
            encoded_stream(service, admitted, body.format),
            service,
            admitted,
            content_type(body.format),
            headers,
        )
    try:
        audio = await unless_disconnected(request, encode_whole(service, admitted, body.format))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    headers["X-Duration"] = f"{admitted.job.audio_seconds:.4f}"
    return Response(audio, media_type=content_type(body.format), headers=headers)


class _Connection:
    """One WebSocket: requests one after another; `{"cancel": true}` stops the current one."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.service = get_service(websocket)
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue(maxsize=16)
        self.current: Job | None = None

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
                    self.service.scheduler.cancel(self.current)
                elif self.inbox.full():
                    await self.send_error(ServiceError("too many pending requests on this socket"))
                else:
                    self.inbox.put_nowait(raw)
        finally:
            if self.current is not None:
                self.service.scheduler.cancel(self.current)
            with contextlib.suppress(asyncio.QueueFull):
                self.inbox.put_nowait(None)

    async def send_error(self, error: ServiceError) -> None:
        await self.websocket.send_json(
            {"type": "error", "status": error.status, "error": error.to_dict()}
        )

    async def serve(self) -> None:
        while (raw := await self.inbox.get()) is not None:
            if _is_cancel(raw):
                continue  # nothing running to cancel
            try:
                body = validate(SynthesizeBody, parse_json(raw))
                admitted = await self.service.submit(body.to_request(), label="ws")
            except ServiceError as error:
                await self.send_error(error)
                continue
            await self.stream(admitted)

    async def stream(self, admitted: Admitted) -> None:
        started = time.monotonic()
        self.current = admitted.job
        await self.websocket.send_json(
            {
                "type": "start",
                "voice": admitted.voice.info.name,
                "sample_rate": admitted.voice.sample_rate,
                "sample_width": 2,
                "channels": 1,
                "sentences": admitted.sentences,
            }
        )
        try:
            async for chunk in self.service.scheduler.stream(admitted.job):
                await self.websocket.send_bytes(chunk.pcm)
        except Cancelled:
            await self.websocket.send_json({"type": "cancelled"})
            return
        except ServiceError as error:
            await self.send_error(error)
            return
        finally:
            self.current = None
        await self.websocket.send_json({"type": "end", **describe(admitted, started)})


def _is_cancel(raw: str) -> bool:
    try:
        message = parse_json(raw)
    except ServiceError:
        return False
    return isinstance(message, dict) and message.get("cancel") is True and "text" not in message


@router.websocket("/synthesize/stream")
async def synthesize_stream(websocket: WebSocket) -> None:
    """Send a JSON request; get a JSON header, one binary PCM frame per sentence, a JSON end."""
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
            connection.service.scheduler.cancel(connection.current)
