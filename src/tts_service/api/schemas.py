"""Request and response bodies of the native API."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from tts_service.audio import AUDIO_FORMATS, CONTENT_TYPES
from tts_service.service import SpeechRequest

AudioFormat = Literal["wav", "pcm", "mp3", "opus", "aac", "flac"]
assert set(AudioFormat.__args__) == set(AUDIO_FORMATS)  # type: ignore[attr-defined]

# OpenAPI: an audio answer, in whichever format was asked for, and the headers about it.
AUDIO_CONTENT: Final[dict[str, Any]] = {
    CONTENT_TYPES[fmt]: {"schema": {"type": "string", "format": "binary"}} for fmt in AUDIO_FORMATS
}
AUDIO_HEADERS: Final[dict[str, Any]] = {
    name: {"description": description, "required": True, "schema": {"type": kind}}
    for name, description, kind in (
        ("X-Voice", "The voice that speaks.", "string"),
        ("X-Sentences", "Sentences in the text.", "integer"),
        ("X-Sample-Rate", "Of the audio as encoded.", "integer"),
    )
}


class _SpeechFields(BaseModel):
    """What every native request says: the text, the voice and how to speak it. Strict, as
    the schema says: no unknown fields, no "1.5" where a number belongs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: StrictStr = Field(
        min_length=1, description="What to say; at least one non-blank character."
    )
    voice: StrictStr | None = Field(None, description="Voice name; default voice if omitted.")
    speaker: StrictStr | int | None = Field(None, description="Speaker name or id.")
    length_scale: float | None = Field(
        None, gt=0.05, le=20, description="> 1 is slower; default: the voice's defaults."
    )
    noise_scale: float | None = Field(None, ge=0, le=2)
    noise_w_scale: float | None = Field(None, ge=0, le=2)
    volume: float | None = Field(
        None, ge=0, le=10, description="Gain; default: the voice's defaults, else 1."
    )
    sentence_silence: float | None = Field(
        None,
        ge=0,
        le=10,
        description="Seconds after each sentence; default: the voice's defaults, else 0.",
    )
    priority: Literal["high", "normal", "low"] = "normal"
    timeout: float | None = Field(
        None, gt=0, le=3600, description="Max queue wait in seconds (may only lower the server's)."
    )

    def to_request(self, client: str = "") -> SpeechRequest:
        return SpeechRequest(
            text=self.text,
            voice=self.voice,
            speaker=self.speaker,
            length_scale=self.length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            volume=self.volume,
            sentence_silence=self.sentence_silence,
            priority=self.priority,
            timeout=self.timeout,
            client=client,
        )


class SynthesizeBody(_SpeechFields):
    """`POST /synthesize` and `/synthesize/binary`."""

    format: AudioFormat = Field("wav", description="Audio format of the result.")
    stream: bool = Field(
        False, description="/synthesize/binary only: chunked, sentence by sentence."
    )


class StreamBody(_SpeechFields):
    """One request on the WebSocket, which always streams (a `stream` field is refused)."""

    format: AudioFormat | None = Field(
        None,
        description="Absent: raw 16-bit mono PCM at the voice's rate, one frame per sentence. "
        "Given: that format's encoded stream, in frames as it is encoded.",
    )


class SynthesizeResult(BaseModel):
    """`POST /synthesize`'s answer: the audio and figures about the work."""

    voice: str
    sample_rate: int = Field(description="Of the audio as encoded (pcm is 24 kHz for OpenAI).")
    duration: float = Field(description="Seconds of audio.")
    sentences: int
    synthesis_time: float = Field(description="Seconds the workers spent on it.")
    queue_wait: float = Field(description="Seconds before its first sentence started.")
    elapsed: float = Field(description="Seconds from request to answer.")
    format: AudioFormat
    audio: str = Field(description="The audio file, base64.", json_schema_extra={"format": "byte"})
