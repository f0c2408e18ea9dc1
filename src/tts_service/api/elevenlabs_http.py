"""ElevenLabs' HTTP text-to-speech routes, translated onto the service: `POST
/v1/text-to-speech/{voice_id}` (the file), `/stream` (chunked), `/with-timestamps` (JSON
with the audio and each character's timing) and `/stream/with-timestamps` (a JSON line
per sentence), plus `GET /v1/voices`. `voice_id` is any voice name the server has;
`output_format` in the query names the format and rate (api/elevenlabs_formats.py).
Errors are in the OpenAI shape every /v1/ route answers in."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tts_service.api.audio_headers import AUDIO_HEADERS, audio_headers
from tts_service.api.body import openapi_body, read_model
from tts_service.api.captioned import openai_error_line
from tts_service.api.char_timing import char_times, spoken_span
from tts_service.api.connection import client_address, get_service
from tts_service.api.contexts import Output
from tts_service.api.elevenlabs_formats import ELEVENLABS_FORMATS, parse_output_format
from tts_service.api.errors import openai_error_response
from tts_service.api.framing import b64, framed, json_line
from tts_service.api.openai import SPEECH_ERRORS
from tts_service.api.schemas import AUDIO_CONTENT, SPEAKABLE, string_pattern
from tts_service.api.streaming import (
    JobStreamingResponse,
    audio_response,
    encode_whole,
    encoded_stream,
    json_with_base64,
    unless_disconnected,
)
from tts_service.api.timed import encode_whole_timed, encoded_pieces
from tts_service.audio.encoders import content_type
from tts_service.engine.words import all_words
from tts_service.errors import ServiceError
from tts_service.service import Admitted, SpeechRequest

router = APIRouter(prefix="/v1", tags=["elevenlabs"])
NDJSON: Final = "application/x-ndjson"
Route = Callable[[Request], Awaitable[Response]]

PARAMETERS: Final = [
    {
        "name": "voice_id",
        "in": "path",
        "required": True,
        "description": "A voice name the server has (GET /v1/voices).",
        "schema": {"type": "string"},
    },
    {
        "name": "output_format",
        "in": "query",
        "required": False,
        "description": "Format and rate; the bit rate in an mp3 or opus name is not followed.",
        "schema": {"type": "string", "enum": list(ELEVENLABS_FORMATS)},
    },
]


class VoiceSettings(BaseModel):
    """ElevenLabs' voice settings: `speed` is followed (1.0 is the voice's own pace), the
    others are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    speed: float | None = Field(None, ge=0.25, le=4)


class ElevenLabsBody(BaseModel):
    """ElevenLabs' body; fields other than these (model_id, previous_text, language_code,
    ...) are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    text: StrictStr = Field(min_length=1, json_schema_extra=string_pattern(SPEAKABLE))
    model_id: StrictStr | None = None
    voice_settings: VoiceSettings | None = None


class Alignment(BaseModel):
    characters: list[str]
    character_start_times_seconds: list[float]
    character_end_times_seconds: list[float]


class TimedAudio(BaseModel):
    """The audio (base64) with each character's timing."""

    audio_base64: str
    alignment: Alignment | None
    normalized_alignment: Alignment | None


class ElevenVoice(BaseModel):
    voice_id: str
    name: str
    category: str
    labels: dict[str, str]
    description: str | None
    preview_url: str | None
    settings: dict[str, float] | None


class ElevenVoices(BaseModel):
    voices: list[ElevenVoice]


async def _admit(request: Request, timed: bool) -> tuple[Admitted, Output]:
    body = await read_model(request, ElevenLabsBody)
    output = parse_output_format(request.query_params.get("output_format"))
    speed = body.voice_settings.speed if body.voice_settings is not None else None
    speech = SpeechRequest(
        text=body.text,
        voice=request.path_params["voice_id"],
        speed=speed,
        client=client_address(request),
        timestamps=timed,
    )
    admitted = await get_service(request).submit(speech, label=request.url.path)
    request.state.admitted = admitted  # for the access log
    return admitted, output


def _alignment(text: str, words: list[Any], start: float, end: float) -> dict[str, Any]:
    times = char_times(text, words, start, end)
    return {
        "characters": times.chars,
        "character_start_times_seconds": [round(value, 3) for value in times.starts],
        "character_end_times_seconds": [
            round(begin + length, 3)
            for begin, length in zip(times.starts, times.durations, strict=True)
        ],
    }


def _audio_route(path: str, summary: str) -> Callable[[Route], Route]:
    return router.post(
        path,
        openapi_extra={"parameters": PARAMETERS, **openapi_body(ElevenLabsBody)},
        response_class=Response,
        responses={
            200: {"description": summary, "headers": AUDIO_HEADERS, "content": AUDIO_CONTENT},
            **SPEECH_ERRORS,
        },
        summary=summary,
    )


@_audio_route("/text-to-speech/{voice_id}", "The audio file, whole.")
async def text_to_speech(request: Request) -> Response:
    """ElevenLabs' text to speech: the audio file."""
    try:
        admitted, output = await _admit(request, timed=False)
    except ServiceError as error:
        return openai_error_response(error)
    service = get_service(request)
    audio = await unless_disconnected(
        request, encode_whole(service, admitted, output.fmt, output.rate)
    )
    headers = audio_headers(admitted, output.fmt, output.rate)
    return audio_response(audio, content_type(output.fmt), headers)


@_audio_route("/text-to-speech/{voice_id}/stream", "The audio, chunked as it is made.")
async def text_to_speech_stream(request: Request) -> Response:
    """ElevenLabs' streaming text to speech: the audio, sentence by sentence."""
    try:
        admitted, output = await _admit(request, timed=False)
    except ServiceError as error:
        return openai_error_response(error)
    service = get_service(request)
    return JobStreamingResponse(
        encoded_stream(service, admitted, output.fmt, output.rate),
        service,
        admitted,
        content_type(output.fmt),
        audio_headers(admitted, output.fmt, output.rate),
        on_error=openai_error_response,
    )


_TIMED: Final[dict[str, Any]] = {
    "openapi_extra": {"parameters": PARAMETERS, **openapi_body(ElevenLabsBody)},
}


@router.post(
    "/text-to-speech/{voice_id}/with-timestamps",
    **_TIMED,
    response_model=None,
    responses={200: {"model": TimedAudio, "headers": AUDIO_HEADERS}, **SPEECH_ERRORS},
)
async def with_timestamps(request: Request) -> Response:
    """The audio (base64) and when each character of the text is spoken (seconds)."""
    try:
        admitted, output = await _admit(request, timed=True)
    except ServiceError as error:
        return openai_error_response(error)
    service = get_service(request)
    work = encode_whole_timed(service, admitted, output.fmt, output.rate)
    audio, sentences, _ = await unless_disconnected(request, work)
    words = list(all_words(sentences))
    alignment = _alignment(admitted.text, words, 0.0, admitted.audio_seconds)
    fields = {"alignment": alignment, "normalized_alignment": alignment}
    answer = json_with_base64(fields, "audio_base64", audio)
    answer.headers.update(audio_headers(admitted, output.fmt, output.rate))
    return answer


@router.post(
    "/text-to-speech/{voice_id}/stream/with-timestamps",
    **_TIMED,
    response_class=Response,
    responses={
        200: {
            "description": "JSON lines, one per sentence as it is made: its audio (base64) "
            "and its characters' timings, in seconds from the start of the audio.",
            "headers": AUDIO_HEADERS,
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **SPEECH_ERRORS,
    },
)
async def stream_with_timestamps(request: Request) -> Response:
    """The audio a sentence at a time, each line with its characters' timings."""
    try:
        admitted, output = await _admit(request, timed=True)
    except ServiceError as error:
        return openai_error_response(error)
    service = get_service(request)
    return JobStreamingResponse(
        framed(_timed_lines(request, admitted, output), openai_error_line),
        service,
        admitted,
        NDJSON,
        audio_headers(admitted, output.fmt, output.rate),
        on_error=openai_error_response,
    )


async def _timed_lines(
    request: Request, admitted: Admitted, output: Output
) -> AsyncGenerator[bytes, None]:
    service = get_service(request)
    pieces = encoded_pieces(service, admitted, output.fmt, rate=output.rate)
    clock = 0.0  # where the sentence before ended: the pause after it belongs to this one
    try:
        async for piece in pieces:
            line: dict[str, Any] = {"audio_base64": b64(piece.audio)}
            alignment = None
            if piece.words:
                begin, end = spoken_span(admitted.text, piece.words)
                words = [
                    dataclasses.replace(
                        word, char_start=word.char_start - begin, char_end=word.char_end - begin
                    )
                    for word in piece.words
                ]
                last = piece.words[-1].end
                alignment = _alignment(admitted.text[begin:end], words, clock, last)
                clock = last
            line.update(alignment=alignment, normalized_alignment=alignment)
            yield json_line(line)
            admitted.touch()
    finally:
        await pieces.aclose()


@router.get("/voices", response_model=ElevenVoices)
async def voices(request: Request) -> JSONResponse:
    """The installed voices, in ElevenLabs' shape (for clients that list voices)."""
    listing = await get_service(request).voices.listing()
    listed = [
        {
            "voice_id": info.name,
            "name": info.name,
            "category": "premade",
            "labels": {"language": info.language, "quality": info.quality or ""},
            "description": None,
            "preview_url": None,
            "settings": None,
        }
        for info in listing.infos
    ]
    return JSONResponse({"voices": listed})
