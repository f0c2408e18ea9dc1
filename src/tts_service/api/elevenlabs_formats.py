"""ElevenLabs' `output_format` names (`pcm_16000`, `ulaw_8000`, `mp3_44100_128`, ...) onto
our formats and rates. The bit rate in an MP3 or Opus name is accepted and not followed:
speech is encoded at the server's own bit rate."""

from __future__ import annotations

from typing import Final

from tts_service.api.contexts import Output
from tts_service.audio.encoders import check_output
from tts_service.errors import InvalidRequest

DEFAULT_OUTPUT_FORMAT: Final = "mp3_44100_128"
ELEVENLABS_FORMATS: Final[tuple[str, ...]] = (
    *(f"pcm_{rate}" for rate in (8000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "ulaw_8000",
    "alaw_8000",
    "mp3_22050_32",
    "mp3_24000_48",
    *(f"mp3_44100_{kbps}" for kbps in (32, 64, 96, 128, 192)),
    *(f"opus_48000_{kbps}" for kbps in (32, 64, 96, 128, 192)),
)
"""The names ElevenLabs documents that this server makes (what the HTTP routes take)."""
_CODECS: Final = {"pcm": "pcm", "ulaw": "ulaw", "alaw": "alaw", "mp3": "mp3", "opus": "opus"}
_PARTS: Final = {"pcm": 2, "ulaw": 2, "alaw": 2, "mp3": 3, "opus": 3}


class UnsupportedOutputFormat(InvalidRequest):
    code = "invalid_output_format"


def parse_output_format(name: str | None) -> Output:
    """The format and rate an ElevenLabs `output_format` asks for; refused if we cannot
    make it."""
    name = name or DEFAULT_OUTPUT_FORMAT
    parts = name.split("_")
    codec = parts[0]
    if codec not in _CODECS or len(parts) != _PARTS[codec] or not parts[1].isdigit():
        raise UnsupportedOutputFormat(
            f"output_format {name[:40]!r} is not one this server makes: pcm_<rate>, "
            "ulaw_8000, alaw_8000, mp3_<rate>_<kbps> or opus_48000_<kbps>",
            param="output_format",
        )
    rate = int(parts[1])
    fmt = _CODECS[codec]
    try:
        check_output(fmt, rate)
    except ValueError as error:
        raise UnsupportedOutputFormat(
            f"output_format {name!r}: {error}", param="output_format"
        ) from None
    return Output(fmt, None if fmt in ("ulaw", "alaw") else rate)
