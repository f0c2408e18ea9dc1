"""The headers about the audio that synthesis answers carry (which voice, how many
sentences, the rate as encoded, the length), set and documented in this one place."""

from __future__ import annotations

from typing import Any, Final

from tts_service.audio.encoders import output_rate
from tts_service.service import Admitted

VOICE: Final = "X-Voice"
SENTENCES: Final = "X-Sentences"
SAMPLE_RATE: Final = "X-Sample-Rate"
DURATION: Final = "X-Duration"
EXPOSED: Final = (VOICE, SENTENCES, SAMPLE_RATE, DURATION)
"""What a page from an allowed origin may read of an answer (CORS)."""


def audio_headers(
    admitted: Admitted, fmt: str | None = None, rate: int | None = None
) -> dict[str, str]:
    """The voice and sentence count; with the format, the sample rate it is encoded at
    (`rate` when the request chose one)."""
    headers = {VOICE: admitted.voice.info.name, SENTENCES: str(admitted.sentences)}
    if fmt is not None:
        headers[SAMPLE_RATE] = str(output_rate(fmt, admitted.voice.sample_rate, rate))
    return headers


def duration_header(admitted: Admitted) -> dict[str, str]:
    """Only on a whole file: a stream does not know its length when its headers go."""
    return {DURATION: f"{admitted.audio_seconds:.4f}"}


# OpenAPI
AUDIO_HEADERS: Final[dict[str, Any]] = {
    name: {"description": description, "required": True, "schema": {"type": kind}}
    for name, description, kind in (
        (VOICE, "The voice that speaks.", "string"),
        (SENTENCES, "Sentences in the text.", "integer"),
        (SAMPLE_RATE, "Of the audio as encoded.", "integer"),
    )
}
BINARY_HEADERS: Final[dict[str, Any]] = {
    **AUDIO_HEADERS,
    DURATION: {
        "description": "Seconds of audio (not when streamed).",
        "schema": {"type": "number"},
    },
}
