"""Request and response bodies of the native API."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from tts_service.api.captions import CAPTION_FORMATS, CaptionFormat
from tts_service.audio.encoders import AUDIO_FORMATS, CONTENT_TYPES, SAMPLE_RATES, check_output
from tts_service.service import SpeechRequest
from tts_service.text.normalize import PARTS
from tts_service.text.options import TextOptions

AudioFormat = Literal[
    "wav", "pcm", "mp3", "opus", "aac", "flac", "ulaw", "alaw", "ulaw_wav", "alaw_wav"
]
SampleRate = Literal[8000, 16000, 22050, 24000, 32000, 44100, 48000]
NormalizePart = Literal["urls", "currency", "times", "dates", "phones", "units", "abbreviations"]
assert set(NormalizePart.__args__) == set(PARTS)  # type: ignore[attr-defined]
assert set(AudioFormat.__args__) == set(AUDIO_FORMATS)  # type: ignore[attr-defined]
assert set(SampleRate.__args__) == set(SAMPLE_RATES)  # type: ignore[attr-defined]
assert set(CaptionFormat.__args__) == set(CAPTION_FORMATS)  # type: ignore[attr-defined]

# OpenAPI: an audio answer, in whichever format was asked for (its headers: api.audio_headers).
AUDIO_CONTENT: Final[dict[str, Any]] = {
    CONTENT_TYPES[fmt]: {"schema": {"type": "string", "format": "binary"}} for fmt in AUDIO_FORMATS
}


# Documented, not enforced here: the service refuses such values itself, in its own words.
SPEAKABLE: Final = r"[^\s\x00-\x1f\x7f-\x9f]"
"""Some character that is neither blank nor a control character (`text.clean` makes those
spaces): a text without one has nothing to speak. Whether the voice finds something to
say in the rest is its phonemizer's call (a 422, or 400 under /v1/, when it finds none)."""
VOICE_NAME: Final = r"^$|^(?!.*\.\.)[^\W_][\w.+-]{0,127}$"
"""What `voices.loaded.validate_voice_name` takes, or "" for the default voice."""


RATE_DESCRIPTION: Final = (
    "Output rate in Hz; default: the format's (wav, flac, mp3, aac: the voice's; pcm: 24000; "
    "opus: 48000; ulaw, alaw: 8000). opus takes 8000, 16000, 24000 or 48000; ulaw and alaw "
    "only 8000."
)


def rate_field() -> Any:
    """The `sample_rate` field of a body whose format field comes before it."""
    return Field(None, description=RATE_DESCRIPTION)


def rate_for_format(format_field: str) -> Any:
    """A validator of `sample_rate` that refuses a rate the chosen format cannot take."""

    def check(rate: int | None, info: ValidationInfo) -> int | None:
        fmt = info.data.get(format_field)
        if rate is not None and fmt in AUDIO_FORMATS:  # captions have no rate: ignored
            try:
                check_output(fmt, rate)
            except ValueError as error:
                raise PydanticCustomError("sample_rate", str(error)) from None
        return rate

    return field_validator("sample_rate")(check)


def string_pattern(pattern: str) -> Callable[[dict[str, Any]], None]:
    """`json_schema_extra` that puts `pattern` on a field's string branch (of `anyOf`)."""

    def extra(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == "string":
                branch["pattern"] = pattern

    return extra


class _SpeechFields(BaseModel):
    """What every native request says: the text, the voice and how to speak it. Strict, as
    the schema says: no unknown fields, no "1.5" where a number belongs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: StrictStr = Field(
        min_length=1,
        description="What to say; at least one non-blank character. A text in which the "
        "voice finds nothing to say (only punctuation, say) is refused (422).",
        json_schema_extra=string_pattern(SPEAKABLE),
    )
    voice: StrictStr | None = Field(
        None,
        description="Voice name; default voice if omitted.",
        json_schema_extra=string_pattern(VOICE_NAME),
    )
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
    normalization: Literal["loudness", "peak"] | None = Field(
        None,
        description="loudness: every sentence at the server's loudness target, peaks limited; "
        "peak: Piper's own, each sentence's peak at full scale. Default: the server's setting.",
    )
    ssml: bool | None = Field(
        None,
        description="The text is SSML (the subset in the README); default: when it starts "
        "with <speak> (or an XML declaration). Broken SSML is refused (400).",
    )
    clean: bool = Field(
        False, description="Drop Markdown's marks, code, tables, emoji and symbols first."
    )
    normalize: bool = Field(
        False,
        description="Spell out money, times, dates, phone numbers, units, abbreviations and "
        "web addresses for the voice's language (what espeak reads badly).",
    )
    normalize_skip: list[NormalizePart] = Field(
        default_factory=list, description="Parts of normalize left to espeak."
    )
    comma_pause: float | None = Field(
        None, ge=0, le=10, description="Seconds of silence after each comma."
    )
    paragraph_pause: float | None = Field(
        None, ge=0, le=10, description="Seconds of silence after each paragraph (a blank line)."
    )
    priority: Literal["high", "normal", "low"] = "normal"
    timeout: float | None = Field(
        None, gt=0, le=3600, description="Max queue wait in seconds (may only lower the server's)."
    )

    cache: bool = Field(
        True,
        description="Sentences said before may come from the server's audio cache (the "
        "same audio, at once); false synthesizes afresh and keeps nothing.",
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
            normalization=self.normalization,
            priority=self.priority,
            timeout=self.timeout,
            client=client,
            cache=self.cache,
            reading=TextOptions(
                ssml=self.ssml,
                clean=self.clean,
                normalize=self.normalize,
                normalize_skip=frozenset(self.normalize_skip),
                comma_pause=self.comma_pause,
                paragraph_pause=self.paragraph_pause,
            ),
        )


class _TimedFields(_SpeechFields):
    """What answers that carry JSON may also ask for: when each word is spoken."""

    timestamps: bool = Field(
        False,
        description="Add each word's start and end (seconds) and its place in the text. "
        "A voice whose model reports no durations is refused (400).",
    )
    captions: CaptionFormat | None = Field(
        None, description="Add a caption file of the speech: WebVTT or SRT."
    )
    phonemes: bool = Field(
        False,
        description="With stream (JSON lines) or on the WebSocket: each sentence's phonemes "
        "with their viseme, start and end (for lip sync); implies timestamps.",
    )

    def to_request(self, client: str = "") -> SpeechRequest:
        timed = self.timestamps or self.captions is not None or self.phonemes
        return dataclasses.replace(super().to_request(client), timestamps=timed)


class SynthesizeBody(_SpeechFields):
    """`POST /synthesize/binary`: the audio file alone."""

    format: AudioFormat = Field("wav", description="Audio format of the result.")
    sample_rate: SampleRate | None = rate_field()
    stream: bool = Field(
        False, description="Chunked, as it is made (a long first sentence in pieces)."
    )

    def to_request(self, client: str = "") -> SpeechRequest:
        return dataclasses.replace(super().to_request(client), streamed=self.stream)

    _rate = rate_for_format("format")


class SynthesizeJsonBody(_TimedFields):
    """`POST /synthesize`: JSON, whole or as JSON lines."""

    format: AudioFormat = Field("wav", description="Audio format of the result.")
    sample_rate: SampleRate | None = rate_field()
    stream: bool = Field(
        False,
        description="Answer JSON lines (application/x-ndjson) as the audio is made: a start "
        "line, one line per sentence with its audio (and words), an end line. A long first "
        "sentence may come as several lines with the same `sentence`, the words on the first.",
    )

    _rate = rate_for_format("format")

    def to_request(self, client: str = "") -> SpeechRequest:
        return dataclasses.replace(super().to_request(client), streamed=self.stream)


class StreamBody(_TimedFields):
    """One request on the WebSocket, which always streams (a `stream` field is refused)."""

    format: AudioFormat | None = Field(
        None,
        description="Absent: raw 16-bit mono PCM at the voice's rate, one frame per sentence "
        "(a long first sentence: several, as it is decoded). Given: that format's encoded "
        "stream, in frames as it is encoded.",
    )
    sample_rate: SampleRate | None = Field(
        None,
        description=RATE_DESCRIPTION + " Without a format: raw PCM at this rate, in frames "
        "as it is resampled.",
    )

    _rate = rate_for_format("format")

    def to_request(self, client: str = "") -> SpeechRequest:
        return dataclasses.replace(super().to_request(client), streamed=True)


class WordTiming(BaseModel):
    """One word of the text and when it is spoken."""

    text: str = Field(description="The word as written in the request text.")
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")
    char_start: int = Field(description="Offset of the word in the text (code points).")
    char_end: int = Field(description="Offset just after the word (code points).")


class MarkTiming(BaseModel):
    """An SSML `<mark name>` and when it is reached (the start of the next word)."""

    name: str
    time: float = Field(description="Seconds from the start of the audio.")


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
    words: list[WordTiming] | None = Field(None, description="With `timestamps`.")
    marks: list[MarkTiming] | None = Field(
        None, description="With `timestamps`: the SSML marks reached, when the text has any."
    )
    captions: str | None = Field(None, description="With `captions`: the caption file.")
    audio: str = Field(description="The audio file, base64.", json_schema_extra={"format": "byte"})
