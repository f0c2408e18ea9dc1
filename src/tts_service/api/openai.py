"""OpenAI-compatible speech API: `POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`.

A drop-in for clients that speak OpenAI's text-to-speech API (the `openai` SDKs, Open WebUI,
agent frameworks). Requests are validated and admitted to the scheduler before the response
opens, so a bad parameter or a full queue is an OpenAI-shaped 4xx/5xx, never a broken 200;
the audio then streams sentence by sentence in any format, or as server-sent events.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any, Final, Literal, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tts_service.api import captions
from tts_service.api.audio_headers import AUDIO_HEADERS, SAMPLE_RATE, audio_headers
from tts_service.api.body import openapi_body, read_model
from tts_service.api.connection import client_address, get_service
from tts_service.api.errors import OpenAIErrorBody, documented_errors, openai_error_response
from tts_service.api.framing import b64, framed, sse_event
from tts_service.api.schemas import (
    AUDIO_CONTENT,
    RATE_DESCRIPTION,
    SPEAKABLE,
    VOICE_NAME,
    SampleRate,
    rate_for_format,
    string_pattern,
)
from tts_service.api.speech_events import SSE_CONTENT
from tts_service.api.streaming import (
    JobStreamingResponse,
    encoded_stream,
    unless_disconnected,
)
from tts_service.api.timed import timed_words
from tts_service.audio.encoders import content_type
from tts_service.config import OPENAI_VOICE_NAMES, Settings
from tts_service.error_dialect import openai_error_body
from tts_service.errors import InvalidRequest, ServiceError, VoiceNotFound
from tts_service.service import Admitted, SpeechRequest, TTSService
from tts_service.text.options import TextOptions
from tts_service.voices.loaded import validate_voice_name

router = APIRouter(prefix="/v1", tags=["openai"])

SpeechFormat = Literal[
    "mp3", "opus", "aac", "flac", "wav", "pcm", "ulaw", "alaw", "ulaw_wav", "alaw_wav", "vtt", "srt"
]

# Every name selects the same engine: OpenAI's model ids are accepted so that clients with a
# hard-coded model work unchanged; "tts-service" and "piper" are our own names.
MODELS: Final[tuple[str, ...]] = (
    "tts-service",
    "piper",
    "tts-1",
    "tts-1-hd",
    "gpt-4o-mini-tts",
    "gpt-4o-mini-tts-2025-12-15",
)
OWNER: Final = "tts-service"
# Piper's decoder emits one frame of 256 samples per step: the closest thing to output tokens.
HOP_LENGTH: Final = 256
_ECHO_CHARS: Final = 64  # how much of a client's bad value an error message repeats


class ModelNotFound(InvalidRequest):
    code = "model_not_found"


# ------------------------------------------------------------------------ request body


class VoiceRef(BaseModel):
    """OpenAI's custom-voice form `{"id": "..."}`; the id is a voice name here."""

    id: StrictStr = Field(json_schema_extra=string_pattern(VOICE_NAME))


class SpeechBody(BaseModel):
    """OpenAI's `POST /v1/audio/speech` body. Unknown fields are ignored, as OpenAI-compatible
    servers do, so clients that send newer parameters keep working; known ones must have
    their documented type (strict: no "1.5" for a number), as OpenAI's API requires."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: StrictStr | None = Field(
        None,
        description=f"One of {', '.join(MODELS)}; all use Piper. Optional here.",
        json_schema_extra={"enum": [*MODELS, None]},
    )
    input: StrictStr = Field(
        min_length=1,
        description="The text to speak; it must hold at least one non-blank character. A "
        "text in which the voice finds nothing to say (only punctuation, say) is a 400.",
        json_schema_extra=string_pattern(SPEAKABLE),
    )
    voice: StrictStr | VoiceRef | None = Field(
        None,
        description="A Piper voice name, or an OpenAI voice name (alloy, ash, ...) mapped by "
        "the server's openai_voice_map (default: the default voice). Optional here.",
        json_schema_extra=string_pattern(VOICE_NAME),
    )
    response_format: SpeechFormat = Field(
        "mp3",
        description="pcm is raw s16le mono at 24 kHz; wav keeps the voice's rate. Extension: "
        "vtt and srt answer the caption file of the speech instead of its audio; ulaw and "
        "alaw are 8 kHz G.711 (raw, or in WAV as ulaw_wav and alaw_wav).",
    )
    sample_rate: SampleRate | None = Field(
        None, description="Extension. " + RATE_DESCRIPTION + " Not for vtt and srt."
    )
    speed: float = Field(1.0, ge=0.25, le=4.0, description="1.0 is normal; 2.0 twice as fast.")
    instructions: StrictStr | None = Field(None, description="Accepted and ignored by Piper.")
    stream_format: Literal["audio", "sse"] = Field(
        "audio", description="audio: the file, chunked; sse: speech.audio.delta events."
    )
    speaker: StrictStr | int | None = Field(
        None, description="Extension: speaker name or id of a multi-speaker voice."
    )
    normalization: Literal["loudness", "peak"] | None = Field(
        None,
        description="Extension: loudness (every sentence at the server's loudness target) or "
        "peak (Piper's own per-sentence peak normalisation). Default: the server's setting.",
    )
    cache: bool = Field(
        True,
        description="Extension: false synthesizes afresh, neither served from nor kept in "
        "the server's audio cache.",
    )
    clean: bool = Field(
        False,
        description="Extension: drop Markdown's marks, code, tables, emoji and symbols first. "
        "An input starting with <speak> is read as SSML.",
    )
    normalize: bool = Field(
        False, description="Extension: spell out money, times, dates, units and addresses."
    )

    _rate = rate_for_format("response_format")

    @property
    def voice_name(self) -> str | None:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice

    @property
    def timed(self) -> bool:
        return self.response_format in captions.CAPTION_FORMATS

    def to_request(self, voice: str, client: str = "") -> SpeechRequest:
        return SpeechRequest(
            text=self.input,
            voice=voice,
            speaker=self.speaker,
            # Relative to the voice's own pace (its defaults, else its config), so speed
            # 1.0 is exactly how the voice speaks by default.
            speed=self.speed,
            normalization=self.normalization,
            streamed=True,  # every answer streams (chunked, or SSE)
            client=client,
            timestamps=self.timed,
            cache=self.cache,
            reading=TextOptions(clean=self.clean, normalize=self.normalize),
        )


# ----------------------------------------------------------------------- validation


def _echo(value: str) -> str:
    return value if len(value) <= _ECHO_CHARS else value[:_ECHO_CHARS] + "..."


def check_model(model: str | None) -> None:
    if model is not None and model not in MODELS:
        raise ModelNotFound(
            f"model '{_echo(model)}' is not available; use one of {', '.join(MODELS)}",
            param="model",
        )


def mapped_voice(settings: Settings, requested: str | None) -> str:
    """The Piper voice name for a requested one; OpenAI names go through the configured map
    (the default voice unless mapped), other names pass unchanged."""
    if requested is None or requested == "":
        return settings.default_voice
    return settings.openai_voice(requested)


def voice_not_found(requested: str | None, name: str, error: VoiceNotFound) -> VoiceNotFound:
    """The lookup's refusal in OpenAI's words: an OpenAI name says what it maps to."""
    if requested is not None and requested != name:
        message = f"voice '{_echo(requested)}' maps to '{_echo(name)}', which is not installed"
    else:
        message = error.message
    return VoiceNotFound(f"{message}; GET /v1/audio/voices lists the voices", param="voice")


Body = TypeVar("Body", bound=SpeechBody)


async def admit(request: Request, model: type[Body]) -> tuple[Body, Admitted]:
    """Validate fully and admit to the scheduler; raises ServiceError before any audio."""
    body = await read_model(request, model)
    check_model(body.model)
    service = get_service(request)
    service.check_text(body.input)  # before a voice load an empty text would not need
    name = mapped_voice(service.settings, body.voice_name)
    speech = body.to_request(name, client=client_address(request))
    try:
        validate_voice_name(name)  # OpenAI's clients get "no such voice" for any odd name
    except InvalidRequest:
        missing = VoiceNotFound(f"voice '{_echo(name)}' is not installed")
        raise voice_not_found(body.voice_name, name, missing) from None
    try:
        admitted = await service.submit(speech, label=request.url.path)
    except VoiceNotFound as error:
        raise voice_not_found(body.voice_name, name, error) from None
    request.state.admitted = admitted  # for the access log
    return body, admitted


# ------------------------------------------------------------------------- streaming


def usage(admitted: Admitted) -> dict[str, int]:
    """Piper has no text tokens: its input tokens are phoneme ids, its output tokens
    decoder frames of 256 samples."""
    input_tokens = admitted.total_phoneme_ids
    output_tokens = admitted.audio_samples // HOP_LENGTH
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


def sse_stream(
    audio: AsyncGenerator[bytes, None], admitted: Admitted
) -> AsyncGenerator[bytes, None]:
    """OpenAI's speech SSE: one `speech.audio.delta` per encoded chunk, then `speech.audio.done`.

    A failure before the first event is raised (the response then answers it with an
    error status); once events flow the status is 200, so a later failure becomes an
    `error` event.
    """
    return framed(_events(audio, admitted), sse_error)


def sse_error(error: ServiceError) -> bytes:
    return sse_event({"type": "error", **openai_error_body(error)})


async def _events(
    audio: AsyncGenerator[bytes, None], admitted: Admitted
) -> AsyncGenerator[bytes, None]:
    try:
        async for data in audio:
            yield sse_event({"type": "speech.audio.delta", "audio": b64(data)})
    finally:
        await audio.aclose()
    yield sse_event({"type": "speech.audio.done", "usage": usage(admitted)})


def speech_response(service: TTSService, body: SpeechBody, admitted: Admitted) -> Response:
    fmt = body.response_format
    assert fmt not in captions.CAPTION_FORMATS  # answered by caption_response
    headers = audio_headers(admitted, fmt, body.sample_rate)
    audio = encoded_stream(service, admitted, fmt, body.sample_rate)
    if body.stream_format == "sse":
        headers.update({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return JobStreamingResponse(
            sse_stream(audio, admitted),
            service,
            admitted,
            "text/event-stream",
            headers,
            on_error=openai_error_response,
        )
    return JobStreamingResponse(
        audio, service, admitted, content_type(fmt), headers, on_error=openai_error_response
    )


SPEECH_ERRORS: Final = documented_errors(
    OpenAIErrorBody,
    {
        400: "Malformed JSON, a bad parameter, an unknown voice, model or speaker.",
        413: "Text over max_text_chars, or audio over max_audio_seconds.",
        429: "This client already holds max_client_requests requests.",
        500: "Synthesis failed, or the voice's files cannot be loaded.",
        503: "The queue is full or the server is shutting down.",
        504: "The request waited in the queue past its deadline.",
    },
)
_SPEECH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The audio, streamed sentence by sentence (chunked), or SSE events; "
        "with response_format vtt or srt, the caption file.",
        "headers": {
            **AUDIO_HEADERS,
            SAMPLE_RATE: {**AUDIO_HEADERS[SAMPLE_RATE], "required": False},
        },
        "content": {
            **AUDIO_CONTENT,
            "text/event-stream": SSE_CONTENT,
            **{
                media.split(";")[0]: {"schema": {"type": "string"}}
                for media in captions.CAPTION_CONTENT_TYPES.values()
            },
        },
    },
    **SPEECH_ERRORS,
}


@router.post(
    "/audio/speech",
    openapi_extra=openapi_body(SpeechBody),
    responses=_SPEECH_RESPONSES,
    response_class=Response,
)
async def create_speech(request: Request) -> Response:
    """OpenAI-compatible text to speech (`response_format` vtt or srt: its captions)."""
    try:
        body, admitted = await admit(request, SpeechBody)
        if body.response_format in captions.CAPTION_FORMATS:
            return await caption_response(request, body.response_format, admitted)
    except ServiceError as error:
        return openai_error_response(error)
    return speech_response(get_service(request), body, admitted)


async def caption_response(request: Request, fmt: str, admitted: Admitted) -> Response:
    """The caption file alone: the speech is synthesized to time its words, then dropped."""
    sentences = await unless_disconnected(request, timed_words(get_service(request), admitted))
    text = captions.render(fmt, sentences, admitted.text)
    headers = audio_headers(admitted)
    return Response(text, media_type=captions.CAPTION_CONTENT_TYPES[fmt], headers=headers)


# ---------------------------------------------------------------------------- listings


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = OWNER


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


_STARTED = int(time.time())


@router.get("/models", response_model=ModelList)
async def list_models() -> ModelList:
    """The model ids `/v1/audio/speech` accepts (all are Piper)."""
    return ModelList(data=[ModelCard(id=model, created=_STARTED) for model in MODELS])


@router.get(
    "/models/{model_id}",
    response_model=ModelCard,
    responses=documented_errors(OpenAIErrorBody, {404: "No model by that id."}),
)
async def retrieve_model(model_id: str) -> Response | ModelCard:
    if model_id not in MODELS:
        error = ModelNotFound(f"model '{_echo(model_id)}' does not exist", param="model")
        return JSONResponse(openai_error_body(error), status_code=404)
    return ModelCard(id=model_id, created=_STARTED)


def voice_aliases(settings: Settings) -> dict[str, str]:
    names = dict.fromkeys([*OPENAI_VOICE_NAMES, *settings.openai_voice_map])
    return {name: settings.openai_voice(name) for name in names}


class AudioVoice(BaseModel):
    """An installed Piper voice (with its details), or an OpenAI voice name (`alias_of`)."""

    id: str = Field(description="What `voice` accepts.")
    name: str
    alias_of: str | None = Field(description="The Piper voice an OpenAI name maps to.")
    installed: bool | None = Field(None, description="Aliases: whether that voice exists.")


class AudioVoiceList(BaseModel):
    default: str
    voices: list[AudioVoice]


@router.get("/audio/voices", response_model=None, responses={200: {"model": AudioVoiceList}})
async def list_voices(request: Request) -> dict[str, Any]:
    """Installed Piper voices that can speak, then the OpenAI voice names and the voice each
    one maps to (`available`: whether that voice can speak; `GET /voices` says why not).

    `voices[].id` is what `voice` accepts (the `{"voices": [{"id", "name"}]}` shape that
    Open WebUI reads).
    """
    service = get_service(request)
    listing = await service.voices.listing()  # a voice just copied in is listed
    infos = listing.infos
    installed = [
        {"id": info.name, "name": info.name, "alias_of": None, **info.to_dict()} for info in infos
    ]
    names = set(listing.names)
    healthy = {info.name for info in infos}
    aliases = [
        {
            "id": alias,
            "name": alias,
            "alias_of": target,
            "installed": target in names,
            "available": target in healthy,
        }
        for alias, target in voice_aliases(service.settings).items()
    ]
    return {"default": service.settings.default_voice, "voices": installed + aliases}
