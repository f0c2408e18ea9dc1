"""OpenAI-style captioned speech: `POST /v1/audio/captioned_speech` takes the body of
`/v1/audio/speech` and answers the audio with each word's start and end, as one JSON
object or (`stream`) as JSON lines, one per sentence as it is made: `audio` (base64),
`audio_format` and `timestamps`, each a `word` with its `start_time` and `end_time`
(OpenAI has no such route; this is an extension beside its speech API)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tts_service.api.audio_headers import AUDIO_HEADERS, audio_headers
from tts_service.api.body import openapi_body
from tts_service.api.connection import get_service
from tts_service.api.errors import openai_error_response
from tts_service.api.framing import b64, framed, json_line
from tts_service.api.openai import SPEECH_ERRORS, SpeechBody, admit, usage
from tts_service.api.schemas import AudioFormat, MarkTiming
from tts_service.api.streaming import (
    JobStreamingResponse,
    json_with_base64,
    slices,
    unless_disconnected,
)
from tts_service.api.timed import encode_whole_timed, encoded_pieces
from tts_service.audio.encoders import output_rate
from tts_service.engine.words import Word, all_words
from tts_service.error_dialect import openai_error_body
from tts_service.errors import ServiceError
from tts_service.service import Admitted, TTSService

router = APIRouter(prefix="/v1", tags=["openai"])

NDJSON: Final = "application/x-ndjson"


class CaptionedSpeechBody(SpeechBody):
    """`POST /v1/audio/captioned_speech`: the speech body, answered with the audio and when
    each word is spoken."""

    response_format: AudioFormat = Field(
        "mp3", description="The audio's format (pcm: raw s16le mono at 24 kHz)."
    )
    stream: bool = Field(
        False,
        description="Answer JSON lines (application/x-ndjson), one per sentence as it is "
        "made, each with its audio and its words.",
    )

    @property
    def timed(self) -> bool:
        return True


def word_timestamps(words: list[Word]) -> list[dict[str, Any]]:
    """Words as the captioned-speech route names them."""
    return [
        {
            "word": word.text,
            "start_time": round(word.start, 3),
            "end_time": round(word.end, 3),
            "char_start": word.char_start,
            "char_end": word.char_end,
        }
        for word in words
    ]


def captioned_lines(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None = None
) -> AsyncGenerator[bytes, None]:
    """One JSON line per sentence, `{"audio", "audio_format", "timestamps"}`, as it is made;
    a last line with the encoder's tail (no timestamps). A failure once lines flow is an
    `{"error": ...}` line in OpenAI's shape."""
    return framed(_lines(service, admitted, fmt, rate), openai_error_line)


def openai_error_line(error: ServiceError) -> bytes:
    return json_line(openai_error_body(error))


async def _lines(
    service: TTSService, admitted: Admitted, fmt: str, rate: int | None
) -> AsyncGenerator[bytes, None]:
    pieces = encoded_pieces(service, admitted, fmt, rate=rate)
    try:
        async for piece in pieces:
            line: dict[str, Any] = {"audio": b64(piece.audio), "audio_format": fmt}
            line["timestamps"] = word_timestamps(piece.words)
            if piece.marks:  # SSML marks reached in this sentence
                line["marks"] = [mark.to_dict() for mark in piece.marks]
            data = json_line(line)
            for part in slices(data):
                yield part
                admitted.touch()
    finally:
        await pieces.aclose()


async def captioned_speech_response(
    request: Request, body: CaptionedSpeechBody, admitted: Admitted
) -> Response:
    service = get_service(request)
    fmt = body.response_format
    rate = body.sample_rate
    headers = audio_headers(admitted, fmt, rate)
    if body.stream:
        lines = captioned_lines(service, admitted, fmt, rate)
        return JobStreamingResponse(
            lines, service, admitted, NDJSON, headers, on_error=openai_error_response
        )
    work = encode_whole_timed(service, admitted, fmt, rate)
    audio, sentences, marks = await unless_disconnected(request, work)
    fields: dict[str, Any] = {
        "audio_format": fmt,
        "sample_rate": output_rate(fmt, admitted.voice.sample_rate, rate),
        "duration": round(admitted.audio_seconds, 4),
        "timestamps": word_timestamps(list(all_words(sentences))),
        "usage": usage(admitted),
    }
    if marks:
        fields["marks"] = [mark.to_dict() for mark in marks]
    answer = json_with_base64(fields, "audio", audio)
    answer.headers.update(headers)
    return answer


class CaptionedTimestamp(BaseModel):
    word: str = Field(description="The word as written in the input.")
    start_time: float = Field(description="Seconds from the start of the audio.")
    end_time: float = Field(description="Seconds from the start of the audio.")
    char_start: int = Field(description="Offset of the word in the input (code points).")
    char_end: int = Field(description="Offset just after the word (code points).")


class CaptionedSpeech(BaseModel):
    """The captioned-speech answer (without `stream`)."""

    audio_format: AudioFormat
    sample_rate: int
    duration: float = Field(description="Seconds of audio.")
    timestamps: list[CaptionedTimestamp]
    marks: list[MarkTiming] | None = Field(
        None, description="Extension: the SSML marks reached, when the input has any."
    )
    usage: dict[str, int]
    audio: str = Field(description="The audio file, base64.", json_schema_extra={"format": "byte"})


@router.post(
    "/audio/captioned_speech",
    openapi_extra=openapi_body(CaptionedSpeechBody),
    responses={
        200: {
            "model": CaptionedSpeech,
            "description": "JSON with the audio and its words; with `stream`, JSON lines.",
            "headers": AUDIO_HEADERS,
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        **SPEECH_ERRORS,
    },
    response_class=Response,
)
async def create_captioned_speech(request: Request) -> Response:
    """Speech with word timestamps: the `/v1/audio/speech` body, answered with base64 audio
    and each word's start and end (or JSON lines, one per sentence, with `stream`)."""
    try:
        body, admitted = await admit(request, CaptionedSpeechBody)
        return await captioned_speech_response(request, body, admitted)
    except ServiceError as error:
        return openai_error_response(error)
