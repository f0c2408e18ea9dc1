"""ElevenLabs' text-to-speech sockets, `WS /v1/text-to-speech/{voice_id}/stream-input` and
`/multi-stream-input`, as a thin translation onto speech contexts (api/contexts.py), so
that Pipecat's `ElevenLabsTTSService(url=...)` and LiveKit's ElevenLabs plugin
(`base_url`) work unchanged.

What close_context means follows both clients (see CLIENTS.md): right after a flush with
no text it finishes the context (the flushed audio, then `isFinal`); any other time it is
an interruption and cancels the context at once. In `auto_mode` each piece that ends a
sentence is spoken at once, as the clients send whole sentences then."""

from __future__ import annotations

import itertools
import time
from typing import Any, Final

from fastapi import APIRouter, WebSocket

from tts_service.api.body import parse_json
from tts_service.api.char_timing import char_times
from tts_service.api.connection import get_service
from tts_service.api.context_socket import SocketSender, read_loop
from tts_service.api.contexts import ContextHub, Output, SpeechContext, Spoken
from tts_service.api.elevenlabs_formats import parse_output_format
from tts_service.api.framing import b64
from tts_service.errors import IdleTimeout, InvalidRequest, ServiceError
from tts_service.service import SpeechRequest

router = APIRouter(prefix="/v1")
_socket_ids = itertools.count(1)

POLICY_VIOLATION: Final = 1008
SINGLE: Final = "single"
"""The one context of a `stream-input` socket."""
_SENTENCE_ENDS: Final = (".", "!", "?", "…", "。", "！", "？")
_MAX_INACTIVITY: Final = 180.0
_DEFAULT_VOICES: Final = frozenset({"", "none", "null", "default"})


def _milliseconds(values: list[float]) -> list[int]:
    return [round(value * 1000) for value in values]


def _speed(settings: Any) -> float | None:
    """`voice_settings.speed` (1.0 is the voice's own pace); other settings are Eleven's."""
    if not isinstance(settings, dict) or settings.get("speed") is None:
        return None
    speed = settings["speed"]
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4:
        raise InvalidRequest("voice_settings.speed must be a number from 0.25 to 4")
    return float(speed)


class ElevenLabsSink:
    """ElevenLabs' server messages: audio with its alignment, `isFinal`, errors."""

    def __init__(self, sender: SocketSender, multi: bool, sync_alignment: bool) -> None:
        self.sender = sender
        self.multi = multi
        self.sync_alignment = sync_alignment

    def tag(self, message: dict[str, Any], context: str | None) -> dict[str, Any]:
        if self.multi and context is not None:
            message["contextId"] = context
        return message

    async def spoken(self, context: SpeechContext, piece: Spoken) -> None:
        if not piece.audio:
            return
        # Times restart at each message (Pipecat), or run from the context's start with
        # sync_alignment (LiveKit).
        base = 0.0 if self.sync_alignment else piece.start
        end = piece.start + piece.duration
        chars = char_times(piece.text, piece.words, piece.start, end)
        alignment = {
            "chars": chars.chars,
            "charStartTimesMs": _milliseconds([start - base for start in chars.starts]),
            "charDurationsMs": _milliseconds(chars.durations),
        }
        message = {
            "audio": b64(piece.audio),
            "isFinal": None,
            "normalizedAlignment": alignment,
            "alignment": alignment,
        }
        await self.sender.send(self.tag(message, context.id))

    async def finished(self, context: SpeechContext) -> None:
        await self.sender.send(self.tag({"isFinal": True}, context.id))
        if not self.multi:
            await self.sender.close(1000, "input ended")

    async def cancelled(self, context: SpeechContext) -> None:
        await self.finished(context)  # frees the client's slot for it

    async def failed(self, context: SpeechContext, error: ServiceError) -> None:
        await self.error(error, context.id)

    async def error(self, error: ServiceError, context: str | None = None) -> None:
        message = {"message": str(error), "error": error.code, "code": POLICY_VIOLATION}
        await self.sender.send(self.tag(message, context))
        if not self.multi:
            await self.sender.close(POLICY_VIOLATION, str(error)[:120])


class ElevenLabsContexts:
    """One socket's ElevenLabs messages, applied to its contexts."""

    def __init__(
        self, hub: ContextHub, sink: ElevenLabsSink, voice: str | None, output: Output, auto: bool
    ) -> None:
        self.hub = hub
        self.sink = sink
        self.voice = voice
        self.output = output
        self.auto = auto
        self.flushed_empty: dict[str, bool] = {}
        """Whether a context's last message was a flush with no text (then close finishes)."""

    async def handle(self, raw: str) -> bool:
        context: str | None = None
        try:
            message = parse_json(raw)
            if not isinstance(message, dict):
                raise InvalidRequest("a message must be a JSON object")
            if message.get("close_socket") is True:
                await self.hub.close_all()
                await self.sink.sender.close(1000, "close_socket")
                return False
            context = self._context_of(message)
            if context is not None:
                await self.apply(context, message)
        except ServiceError as error:
            await self.sink.error(error, context)
        return True

    def _context_of(self, message: dict[str, Any]) -> str | None:
        """The context a message is for; None for a keep-alive without one."""
        if not self.sink.multi:
            return SINGLE
        context = message.get("context_id")
        if context is None:
            if message.get("text") == "" or set(message) <= {"text", "xi_api_key"}:
                return None  # `{"text": ""}`: a keep-alive, which opens and closes nothing
            context = "default"
        if not isinstance(context, str) or not context or len(context) > 128:
            raise InvalidRequest("context_id must be a string of 1 to 128 characters")
        return context

    async def apply(self, context: str, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidRequest("text must be a string")
        flush = message.get("flush") is True
        if message.get("close_context") is True:
            await self._close(context)
            return
        live = self.hub.contexts.get(context)
        if text == "" and not flush:
            if not self.sink.multi and live is not None and not live.closing:
                live.close()  # stream-input: empty text ends the input
            elif live is not None:
                live.last_activity = time.monotonic()  # a context's keep-alive
            return
        if not self.hub.known(context):
            if not text:
                self.hub.get(context)  # raises: a flush for a context never opened
            template = SpeechRequest(
                text="", voice=self.voice, speed=_speed(message.get("voice_settings"))
            )
            await self.hub.open(context, template, self.output)
        target = self.hub.get(context)
        if text:
            target.add(text if not self.auto or text.endswith(" ") else text + " ")
        if flush or (self.auto and text and text.rstrip().endswith(_SENTENCE_ENDS)):
            target.flush()
        self.flushed_empty[context] = flush and not (text or "").strip()

    async def _close(self, context: str) -> None:
        finishing = self.flushed_empty.pop(context, False)
        live = self.hub.contexts.get(context)
        if live is None or live.done:
            # Never opened (Pipecat closes turns that sent no text), or over already.
            await self.sink.sender.send(self.sink.tag({"isFinal": True}, context))
            return
        if finishing and not live.closing:
            live.close()
        elif not finishing:
            await self.hub.cancel(context)


async def _serve(websocket: WebSocket, voice_id: str, multi: bool) -> None:
    await websocket.accept()
    service = get_service(websocket)
    query = websocket.query_params
    sender = SocketSender(websocket)
    sink = ElevenLabsSink(sender, multi, query.get("sync_alignment", "").lower() == "true")
    try:
        output = parse_output_format(query.get("output_format"))
    except ServiceError as error:
        await sender.send({"message": str(error), "error": error.code, "code": POLICY_VIOLATION})
        await sender.close(POLICY_VIOLATION, str(error)[:120])
        return
    idle = service.settings.idle_timeout
    inactivity = query.get("inactivity_timeout", "")
    if inactivity.isdigit() and int(inactivity) > 0:
        idle = min(float(inactivity), _MAX_INACTIVITY)
    hub = ContextHub(service, sink, client=f"eleven#{next(_socket_ids)}", label="elevenlabs")
    voice = None if voice_id.lower() in _DEFAULT_VOICES else voice_id
    auto = query.get("auto_mode", "").lower() == "true"
    handler = ElevenLabsContexts(hub, sink, voice, output, auto)

    async def on_idle(error: IdleTimeout) -> None:
        await sender.send({"message": str(error), "error": error.code, "code": POLICY_VIOLATION})
        await sender.close(POLICY_VIOLATION, "input timeout")

    await read_loop(websocket, hub, handler.handle, idle, on_idle)


@router.websocket("/text-to-speech/{voice_id}/multi-stream-input")
async def multi_stream_input(websocket: WebSocket, voice_id: str) -> None:
    """ElevenLabs' multi-context socket: several contexts, each named by `context_id`."""
    await _serve(websocket, voice_id, multi=True)


@router.websocket("/text-to-speech/{voice_id}/stream-input")
async def stream_input(websocket: WebSocket, voice_id: str) -> None:
    """ElevenLabs' one-context socket: text in, audio out, `{"text": ""}` ends it."""
    await _serve(websocket, voice_id, multi=False)
