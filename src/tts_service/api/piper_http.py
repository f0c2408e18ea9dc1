"""Piper's own HTTP server's request, `POST /` with `{"text", "voice", "speaker_id",
"length_scale", "noise_scale", "noise_w_scale"}` answered with one WAV, so that clients
written for `piper.http_server` (Pipecat's `PiperHttpTTSService` pointed at the root, as
its docs say) work unchanged. The web page stays at `GET /`."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tts_service.api.audio_headers import BINARY_HEADERS, audio_headers, duration_header
from tts_service.api.body import openapi_body, read_model
from tts_service.api.connection import client_address, get_service
from tts_service.api.native import SYNTHESIS_ERRORS
from tts_service.api.schemas import SPEAKABLE, string_pattern
from tts_service.api.streaming import audio_response, encode_whole, unless_disconnected
from tts_service.audio.encoders import content_type
from tts_service.service import SpeechRequest

router = APIRouter(tags=["piper"])


class PiperBody(BaseModel):
    """Piper's body. As Piper does, unknown fields are ignored and a null or absent voice
    is the default voice; a field's type is checked as its schema says."""

    model_config = ConfigDict(extra="ignore", strict=True)

    text: StrictStr = Field(
        min_length=1, description="What to say.", json_schema_extra=string_pattern(SPEAKABLE)
    )
    voice: StrictStr | None = Field(None, description="Voice name; null: the default voice.")
    speaker: StrictStr | None = Field(None, description="Speaker name (without speaker_id).")
    speaker_id: int | None = Field(None, ge=0, description="Speaker number of the voice.")
    length_scale: float | None = Field(None, gt=0.05, le=20, description="> 1 is slower.")
    noise_scale: float | None = Field(None, ge=0, le=2)
    noise_w_scale: float | None = Field(None, ge=0, le=2)

    def to_request(self, client: str) -> SpeechRequest:
        return SpeechRequest(
            text=self.text,
            voice=self.voice or None,
            speaker=self.speaker_id if self.speaker_id is not None else self.speaker,
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            client=client,
        )


@router.post(
    "/",
    openapi_extra=openapi_body(PiperBody),
    response_class=Response,
    responses={
        200: {
            "description": "The WAV file: 16-bit mono at the voice's rate, a 44-byte header.",
            "headers": BINARY_HEADERS,
            "content": {content_type("wav"): {"schema": {"type": "string", "format": "binary"}}},
        },
        **SYNTHESIS_ERRORS,
    },
)
async def piper_synthesize(request: Request) -> Response:
    """Piper's HTTP server's synthesis request: the WAV file, whole."""
    body = await read_model(request, PiperBody)
    service = get_service(request)
    admitted = await service.submit(body.to_request(client_address(request)), label="/")
    request.state.admitted = admitted  # for the access log
    audio = await unless_disconnected(request, encode_whole(service, admitted, "wav"))
    headers = {**audio_headers(admitted, "wav"), **duration_header(admitted)}
    return audio_response(audio, content_type("wav"), headers)
