"""`WS /synthesize/contexts`: the native protocol of speech contexts (see api/contexts.py
and the README). Each message names its context; the first one opens it and may say how
it speaks; text, `flush`, `close` and `cancel` follow. Every answer names its context:
`audio` (base64, with the sentence, its words and its characters' timings), `done`,
`cancelled`, `error`."""

from __future__ import annotations

import itertools
from typing import Any, Literal

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tts_service.api.body import parse_json, validate
from tts_service.api.char_timing import char_times
from tts_service.api.connection import get_service
from tts_service.api.context_socket import IDLE_CLOSE_CODE, SocketSender, read_loop
from tts_service.api.contexts import ContextHub, Output, SpeechContext, Spoken
from tts_service.api.framing import b64, error_message
from tts_service.api.schemas import RATE_DESCRIPTION, AudioFormat, SampleRate, rate_for_format
from tts_service.errors import IdleTimeout, InvalidRequest, ServiceError
from tts_service.service import SpeechRequest

router = APIRouter(tags=["synthesis"])
_socket_ids = itertools.count(1)

OPENING_FIELDS = (
    "voice",
    "speaker",
    "length_scale",
    "noise_scale",
    "noise_w_scale",
    "volume",
    "sentence_silence",
    "priority",
    "timeout",
    "format",
    "sample_rate",
)


class ContextMessage(BaseModel):
    """One client message. How the context speaks may be said only when it opens."""

    model_config = ConfigDict(extra="forbid", strict=True)

    context: StrictStr = Field(min_length=1, max_length=128)
    text: StrictStr | None = None
    flush: bool = False
    close: bool = False
    cancel: bool = False
    voice: StrictStr | None = None
    speaker: StrictStr | int | None = None
    length_scale: float | None = Field(None, gt=0.05, le=20)
    noise_scale: float | None = Field(None, ge=0, le=2)
    noise_w_scale: float | None = Field(None, ge=0, le=2)
    volume: float | None = Field(None, ge=0, le=10)
    sentence_silence: float | None = Field(None, ge=0, le=10)
    priority: Literal["high", "normal", "low"] = "normal"
    timeout: float | None = Field(None, gt=0, le=3600)
    format: AudioFormat = "pcm"
    sample_rate: SampleRate | None = Field(None, description=RATE_DESCRIPTION)

    _rate = rate_for_format("format")

    def template(self) -> SpeechRequest:
        return SpeechRequest(
            text="",
            voice=self.voice,
            speaker=self.speaker,
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            volume=self.volume,
            sentence_silence=self.sentence_silence,
            priority=self.priority,
            timeout=self.timeout,
        )


class NativeSink:
    """The native protocol's answers."""

    def __init__(self, sender: SocketSender) -> None:
        self.sender = sender

    async def spoken(self, context: SpeechContext, piece: Spoken) -> None:
        message: dict[str, Any] = {
            "type": "audio",
            "context": context.id,
            "audio": b64(piece.audio),
            "text": piece.text,
            "start": round(piece.start, 4),
            "duration": round(piece.duration, 4),
            "words": [word.to_dict() for word in piece.words],
        }
        if piece.text:
            chars = char_times(piece.text, piece.words, piece.start, piece.start + piece.duration)
            message["chars"] = {
                "chars": chars.chars,
                "starts": [round(value, 4) for value in chars.starts],
                "durations": [round(value, 4) for value in chars.durations],
            }
        await self.sender.send(message)

    async def finished(self, context: SpeechContext) -> None:
        await self.sender.send(
            {"type": "done", "context": context.id, "duration": round(context.clock, 4)}
        )

    async def cancelled(self, context: SpeechContext) -> None:
        await self.sender.send({"type": "cancelled", "context": context.id})

    async def failed(self, context: SpeechContext, error: ServiceError) -> None:
        await self.error(error, context.id)

    async def error(self, error: ServiceError, context: str | None = None) -> None:
        message = error_message(error)
        if context is not None:
            message["context"] = context
        await self.sender.send(message)


class NativeContexts:
    """One socket's messages, applied to its contexts."""

    def __init__(self, hub: ContextHub, sink: NativeSink) -> None:
        self.hub = hub
        self.sink = sink

    async def handle(self, raw: str) -> bool:
        context: str | None = None
        try:
            data = parse_json(raw)
            if isinstance(data, dict) and isinstance(data.get("context"), str):
                context = data["context"]
            await self.apply(validate(ContextMessage, data))
        except ServiceError as error:
            await self.sink.error(error, context)
        return True

    async def apply(self, message: ContextMessage) -> None:
        if message.cancel:
            if await self.hub.cancel(message.context) is None and not self.hub.known(
                message.context
            ):
                self.hub.get(message.context)  # raises: no such context
            return
        if not self.hub.known(message.context):
            output = Output(message.format, message.sample_rate)
            target = await self.hub.open(message.context, message.template(), output)
        else:
            given = message.model_fields_set & set(OPENING_FIELDS)
            if given:
                raise InvalidRequest(
                    f"{', '.join(sorted(given))}: only a context's first message may say "
                    "how it speaks",
                    param=sorted(given)[0],
                )
            target = self.hub.get(message.context)
        if message.text:
            target.add(message.text)
        if message.close:
            target.close()
        elif message.flush:
            target.flush()


@router.websocket("/synthesize/contexts")
async def synthesize_contexts(websocket: WebSocket) -> None:
    """Speech contexts on one socket: text in pieces per context, each sentence spoken as
    its end arrives; see the README."""
    await websocket.accept()
    service = get_service(websocket)
    sender = SocketSender(websocket)
    sink = NativeSink(sender)
    hub = ContextHub(service, sink, client=f"ctx#{next(_socket_ids)}", label="ws-contexts")

    async def on_idle(error: IdleTimeout) -> None:
        await sink.error(error)
        await sender.close(IDLE_CLOSE_CODE, "idle timeout")

    handler = NativeContexts(hub, sink)
    await read_loop(websocket, hub, handler.handle, service.settings.idle_timeout, on_idle)
