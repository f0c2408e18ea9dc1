"""What a request is refused for before any synthesis: its text, its priority, its
deadline, word timestamps from a voice that cannot time words, and audio sure to pass
the output cap."""

from __future__ import annotations

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.errors import (
    AudioTooLong,
    DeadlineExceeded,
    InvalidRequest,
    TextTooLong,
    ValidationFailed,
    WordTimestampsUnavailable,
)
from tts_service.scheduling.jobs import Priority, audio_limit_message

# A voice's speech per phoneme id varies by sentence (25-50 ms on the bundled voice at
# length_scale 1; a tiny test voice far less): the lower bound uses this share of the least
# the voice itself has produced so far, so it never refuses what would have fitted.
SPEECH_BOUND_SHARE = 0.5


def check_text(text: str, max_chars: int) -> None:
    if not text.strip():
        raise ValidationFailed("text must not be empty", param="text")
    if len(text) > max_chars:
        raise TextTooLong(
            f"text has {len(text)} characters; the limit is {max_chars}",
            param="text",
        )


def parse_priority(name: str) -> Priority:
    try:
        return Priority.parse(name)
    except KeyError:
        raise InvalidRequest(
            f"priority must be one of high, normal, low (got {name!r})", param="priority"
        ) from None


def request_deadline(limit: float, requested: float | None, waited: float = 0.0) -> float:
    """A request may shorten the server's deadline (`limit`), never extend it; time it
    already `waited` (for its voice to download) counts against it."""
    if requested is not None:
        limit = min(requested, limit)
    if waited <= 0:
        return limit
    if waited >= limit:
        raise DeadlineExceeded(f"the request waited past its {limit:g} s deadline")
    return limit - waited


def check_word_timestamps(voice: Voice) -> None:
    if not voice.word_timestamps:
        raise WordTimestampsUnavailable(
            f"voice '{voice.info.name}' cannot time words: its model does not report "
            "phoneme durations (GET /voices shows word_timestamps for each loaded voice)",
            param="timestamps",
        )


def least_audio_seconds(
    voice: Voice, sentences: list[list[int]], options: SynthesisOptions
) -> float:
    """A lower bound on the audio `sentences` produce: the silence after each, plus each
    phoneme id at half the least speech per id (per unit of length scale) the voice has
    produced so far (nothing, until it has spoken)."""
    length_scale = options.length_scale or voice.default_length_scale
    ids = sum(len(sentence) for sentence in sentences)
    pace = voice.least_seconds_per_id or 0.0
    speech = ids * SPEECH_BOUND_SHARE * pace * length_scale
    return speech + len(sentences) * options.sentence_silence


def check_audio_length(
    voice: Voice,
    sentences: list[list[int]],
    options: SynthesisOptions,
    limit: float,
    pauses: float = 0.0,
) -> None:
    """Refuse before any synthesis what is sure to pass the output cap (`limit` seconds);
    what is not sure is stopped when its audio passes the cap (the scheduler enforces it).
    `pauses`: seconds of the text's own pauses beyond the silence after each sentence."""
    least = least_audio_seconds(voice, sentences, options) + pauses
    if least > limit:
        raise AudioTooLong(
            f"{audio_limit_message(limit)}: this text gives at least {least:.0f} s "
            f"({len(sentences)} sentences at length_scale "
            f"{options.length_scale or voice.default_length_scale:g}, "
            f"{options.sentence_silence:g} s of silence after each"
            + (f", {pauses:g} s of pauses)" if pauses else ")"),
            param="text",
            limit_seconds=limit,
        )
