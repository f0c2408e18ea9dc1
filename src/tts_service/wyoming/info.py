"""The `info` answer to `describe`, built from voice descriptions alone (no service): one
TTS program listing the installed voices, then those a request would download."""

from __future__ import annotations

from collections.abc import Sequence

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

from tts_service import __version__
from tts_service.engine.voice import VoiceInfo
from tts_service.voices.names import language_key
from tts_service.voices.published import CatalogVoice, PiperCatalog

PIPER = Attribution(name="Piper", url="https://github.com/OHF-Voice/piper1-gpl")


def _describe_voice(info: VoiceInfo, published: PiperCatalog | None) -> str:
    """`Joe, English (United States), medium` for a published voice; a custom one gets its
    dataset, quality and (when a published voice shares its code) language name."""
    entry = published.get(info.name) if published is not None else None
    if entry is not None and entry.name == info.name:
        return entry.description
    base = info.dataset or info.name
    text = f"{base} ({info.quality})" if info.quality else base
    language = _language_name(info.language, published)
    return f"{text}, {language}" if language else text


def _language_name(code: str, published: PiperCatalog | None) -> str | None:
    wanted = language_key(code)
    for entry in published or ():
        if language_key(entry.language.code) == wanted:
            return entry.language.description
    return None


def _speakers(info: VoiceInfo) -> list[TtsVoiceSpeaker] | None:
    if info.num_speakers <= 1:
        return None
    if info.speakers:
        ordered = sorted(info.speakers, key=lambda name: info.speakers[name])
        return [TtsVoiceSpeaker(name=name) for name in ordered]
    return [TtsVoiceSpeaker(name=str(sid)) for sid in range(info.num_speakers)]


def _installed_voice(info: VoiceInfo, published: PiperCatalog | None) -> TtsVoice:
    return TtsVoice(
        name=info.name,
        description=_describe_voice(info, published),
        attribution=PIPER,
        installed=True,
        version=None,
        languages=[info.language],
        speakers=_speakers(info),
    )


def _downloadable_voice(entry: CatalogVoice) -> TtsVoice:
    return TtsVoice(
        name=entry.name,
        description=f"{entry.description} (downloaded on first use)",
        attribution=PIPER,
        installed=False,
        version=None,
        languages=[entry.language.code],
    )


def build_info(
    voices: Sequence[VoiceInfo],
    published: PiperCatalog | None = None,
    downloadable: Sequence[CatalogVoice] = (),
) -> Info:
    """The `info` answer: one TTS program listing every installed voice (`installed`), then
    the published voices that a request would download (`downloadable`), not installed."""
    listed = [_installed_voice(info, published) for info in sorted(voices, key=lambda i: i.name)]
    listed += [_downloadable_voice(entry) for entry in downloadable]
    return Info(
        tts=[
            TtsProgram(
                name="tts-service",
                description="Piper neural text to speech, shared fairly between clients",
                attribution=PIPER,
                installed=True,
                version=__version__,
                voices=listed,
                supports_synthesize_streaming=True,
            )
        ]
    )
