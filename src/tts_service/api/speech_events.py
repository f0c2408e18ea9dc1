"""The server-sent events of `POST /v1/audio/speech` with `stream_format: sse`, as OpenAPI
documents them: each event's `data` is JSON text, one of the event bodies below (what
`openai.sse_stream` sends)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, Field

from tts_service.api.body import COMPONENT_REF
from tts_service.api.errors import OpenAIErrorDetail


class SpeechUsage(BaseModel):
    """Piper's tokens: phoneme ids in, decoder frames of 256 samples out."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    type: Literal["speech.audio.delta"]
    audio: str = Field(description="The next encoded chunk, base64.")


class SpeechAudioDone(BaseModel):
    type: Literal["speech.audio.done"]
    usage: SpeechUsage


class SpeechStreamError(BaseModel):
    """A failure once events flow (before the first one, the answer is an error status)."""

    type: Literal["error"]
    error: OpenAIErrorDetail


EVENT_MODELS: Final = (SpeechAudioDelta, SpeechAudioDone, SpeechStreamError)
"""Put into the document's components by `api.openapi`."""


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": COMPONENT_REF.format(model=model.__name__)}


SSE_CONTENT: Final[dict[str, Any]] = {
    "schema": {
        "type": "object",
        "description": "One event; its `data` is a JSON object.",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"oneOf": [_ref(model) for model in EVENT_MODELS]},
            },
        },
    }
}
