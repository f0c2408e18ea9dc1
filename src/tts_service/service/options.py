"""How a request speaks: its own values, else the voice's defaults, else the server's
settings, combined into the engine's SynthesisOptions; and which speaker it names."""

from __future__ import annotations

from tts_service.config import Settings
from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.errors import SpeakerNotFound, VoiceUnavailable
from tts_service.service.requests import SpeechRequest
from tts_service.voices.defaults import VoiceDefaults
from tts_service.voices.loaded import resolve_speaker


def synthesis_options(
    voice: Voice, request: SpeechRequest, defaults: VoiceDefaults, settings: Settings
) -> SynthesisOptions:
    """The request's values, else the voice's `defaults`, else the server's."""
    return SynthesisOptions(
        speaker_id=speaker_for(voice, request.speaker, defaults),
        length_scale=_first(request.length_scale, paced(voice, request.speed, defaults)),
        noise_scale=_first(request.noise_scale, defaults.noise_scale, settings.noise_scale),
        noise_w_scale=_first(request.noise_w_scale, defaults.noise_w_scale, settings.noise_w_scale),
        volume=_or(1.0, request.volume, defaults.volume),
        sentence_silence=_or(0.0, request.sentence_silence, defaults.sentence_silence),
        normalization=request.normalization or settings.normalization,
        loudness_target=settings.loudness_target,
    )


def paced(voice: Voice, speed: float | None, defaults: VoiceDefaults) -> float | None:
    """The length scale for `speed` relative to the voice's default pace (its defaults'
    length_scale, else its config's); without a speed, its defaults' length_scale."""
    given = defaults.length_scale
    if speed is None:
        return given
    base = given if given is not None else voice.default_length_scale
    return base / speed


def speaker_for(voice: Voice, requested: str | int | None, defaults: VoiceDefaults) -> int | None:
    """The speaker id a request names, else the one its voice's defaults name. A speaker
    the defaults name that the voice lacks makes the voice unavailable, not a 400."""
    if requested is not None and requested != "":
        return resolve_speaker(voice.info, requested)
    try:
        return resolve_speaker(voice.info, defaults.speaker)
    except SpeakerNotFound as error:
        raise VoiceUnavailable(
            f"voice '{voice.info.name}' is unavailable: its defaults name a speaker it "
            f"does not have ({error.message})"
        ) from None


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _or(fallback: float, *values: float | None) -> float:
    found = _first(*values)
    return fallback if found is None else found
