"""Wyoming messages as this server speaks them, apart from any connection: the audio events
it sends, and the checks on the synthesize events it reads (the library trusts its input).

    describe           -> info
    ping               -> pong
    synthesize         -> audio-start, audio-chunk*, audio-stop
    synthesize-start, synthesize-chunk*, [synthesize], synthesize-stop
                       -> audio-start, audio-chunk*, audio-stop, synthesize-stopped
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.tts import SynthesizeVoice

from tts_service.errors import InvalidRequest

SAMPLES_PER_CHUNK = 1024
"""Audio goes out in events of at most this many samples (what wyoming-piper sends), so
satellites with small buffers can play a long sentence as it arrives."""

SAMPLE_WIDTH = 2  # bytes: the scheduler hands out 16-bit mono PCM
CHANNELS = 1

# --------------------------------------------------------------------- audio out


def pcm_pieces(pcm: bytes, samples: int = SAMPLES_PER_CHUNK) -> Iterator[bytes]:
    """Split 16-bit PCM into pieces of at most `samples` samples (never a split sample)."""
    step = samples * SAMPLE_WIDTH
    for offset in range(0, len(pcm), step):
        yield pcm[offset : offset + step]


def samples_in(pcm: bytes) -> int:
    return len(pcm) // SAMPLE_WIDTH


def milliseconds(samples: int, rate: int) -> int:
    return samples * 1000 // rate


def audio_start(rate: int) -> Event:
    return AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS, timestamp=0).event()


def audio_chunk(pcm: bytes, rate: int, samples_before: int) -> Event:
    """One piece of audio, stamped with where it starts in the answer."""
    return AudioChunk(
        rate=rate,
        width=SAMPLE_WIDTH,
        channels=CHANNELS,
        audio=pcm,
        timestamp=milliseconds(samples_before, rate),
    ).event()


def audio_stop(samples: int, rate: int) -> Event:
    """The end of an answer of `samples` samples, stamped with its length."""
    return AudioStop(timestamp=milliseconds(samples, rate)).event()


# --------------------------------------------------------------------- synthesize in


def parse_voice(raw: object) -> SynthesizeVoice | None:
    """The `voice` of a synthesize event, type-checked (the library trusts its input)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest('voice must be an object such as {"name": "en_US-joe-medium"}')
    name, language, speaker = raw.get("name"), raw.get("language"), raw.get("speaker")
    for key, value in (("name", name), ("language", language)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"voice.{key} must be a string", param=f"voice.{key}")
    if isinstance(speaker, int) and not isinstance(speaker, bool):
        speaker = str(speaker)
    if speaker is not None and not isinstance(speaker, str):
        raise InvalidRequest("voice.speaker must be a name or an id", param="voice.speaker")
    if name is None and language is None and speaker is None:
        return None
    return SynthesizeVoice(name=name, language=language, speaker=speaker)


def voice_wanted(voice: SynthesizeVoice | None) -> tuple[str | None, str | None]:
    """The service's (voice, speaker) for a parsed voice: a language alone names the best
    installed voice for it (voice_names)."""
    if voice is None:
        return None, None
    name = voice.name
    if name is None and voice.language:
        name = voice.language
    return name, voice.speaker


def text_of(data: dict[str, Any]) -> str:
    """The `text` of a synthesize or synthesize-chunk event."""
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidRequest("text must be a string", param="text")
    return text


def check_text_format(data: dict[str, Any]) -> None:
    """Only plain text is spoken: any other `text_format` is refused, not read aloud."""
    text_format = data.get("text_format")
    if text_format not in (None, "text"):
        raise InvalidRequest(
            f"text_format {text_format!r} is not supported (only plain text)",
            param="text_format",
        )
