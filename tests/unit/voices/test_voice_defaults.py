"""Per-voice defaults: read strictly, the setting over the file key by key, applied when a
request does not say and overridden when it does; a broken file makes its voice unavailable
with the reason, and a fixed one is read again. Real engine and scheduler, tiny voices."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tts_service.config import Settings
from tts_service.errors import VoiceUnavailable
from tts_service.service import SpeechRequest, TTSService
from tts_service.voices.defaults import DefaultsBook, VoiceDefaults, read_defaults
from voicegen import expected_num_samples

TEXT = "One little sentence."


@pytest.fixture
def folder(tiny_voices: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "voices"
    shutil.copytree(tiny_voices, copy)
    return copy


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)


def settings_for(folder: Path, tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        voices_dir=[folder],
        download_dir=tmp_path / "downloads",
        default_voice="tiny-single",
        workers=1,
        rescan_interval=0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def service(folder: Path, tmp_path: Path) -> AsyncIterator[TTSService]:
    service = TTSService(settings_for(folder, tmp_path))
    await service.start()
    yield service
    await service.stop()


async def samples(service: TTSService, request: SpeechRequest) -> int:
    admitted = await service.submit(request)
    return len(await service.scheduler.collect(admitted.job)) // 2


def ids(service: TTSService, voice: str = "tiny-single") -> int:
    return sum(len(s) for s in service.voices.loaded._loaded[voice].phonemize(TEXT))


# ---------------------------------------------------------------------- the files


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{ nope", "not valid JSON"),
        ("[1.5]", "not a JSON object"),
        ('{"length_scale": "1.5"}', "length_scale"),
        ('{"length_scale": 0}', "length_scale"),
        ('{"speed": 2}', "speed"),
        ('{"volume": 11}', "volume"),
    ],
)
def test_a_bad_defaults_file_says_what_is_wrong(tmp_path: Path, content: str, said: str) -> None:
    path = tmp_path / "v.defaults.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=said):
        read_defaults(path)


def test_an_oversized_defaults_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "v.defaults.json"
    path.write_text('{"length_scale": 1.0' + " " * 100_000 + "}")
    with pytest.raises(ValueError, match="larger than"):
        read_defaults(path)


def test_the_setting_wins_over_the_file_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "v.defaults.json"
    path.write_text(json.dumps({"length_scale": 1.5, "sentence_silence": 0.2, "speaker": 1}))
    book = DefaultsBook({"v": VoiceDefaults(length_scale=1.1)})
    book.use_files({"v": path})
    assert book.for_voice("v").given() == {
        "length_scale": 1.1,
        "sentence_silence": 0.2,
        "speaker": 1,
    }
    assert book.for_voice("other").given() == {}


# ---------------------------------------------------------------------- in requests


async def test_a_defaults_file_slows_a_voice_and_a_request_overrides_it(
    service: TTSService, folder: Path
) -> None:
    plain = await samples(service, SpeechRequest(text=TEXT))
    assert plain == expected_num_samples(ids(service))
    (folder / "tiny-single.defaults.json").write_text(json.dumps({"length_scale": 2.0}))
    await service.voices.folders.rescan(force=True)
    slowed = await samples(service, SpeechRequest(text=TEXT))
    assert slowed == expected_num_samples(ids(service), 2.0) > plain
    own = await samples(service, SpeechRequest(text=TEXT, length_scale=1.0))
    assert own == plain
    # A speed (OpenAI's) is relative to the voice's default pace: its defaults' 2.0 here.
    faster = await samples(service, SpeechRequest(text=TEXT, speed=2.0))
    assert faster == plain


async def test_silence_volume_and_speaker_defaults_apply(folder: Path, tmp_path: Path) -> None:
    settings = settings_for(
        folder,
        tmp_path,
        voice_defaults={"tiny-multi": {"speaker": "carol", "sentence_silence": 0.5}},
    )
    service = TTSService(settings)
    await service.start()
    try:
        voice, options = await service.resolve(SpeechRequest(text=TEXT, voice="tiny-multi"))
        assert (options.speaker_id, options.sentence_silence, options.volume) == (2, 0.5, 1.0)
        _, own = await service.resolve(
            SpeechRequest(text=TEXT, voice="tiny-multi", speaker="bob", sentence_silence=0.0)
        )
        assert (own.speaker_id, own.sentence_silence) == (1, 0.0)
        padded = await samples(service, SpeechRequest(text=TEXT, voice="tiny-multi"))
        assert padded == expected_num_samples(ids(service, "tiny-multi")) + voice.sample_rate // 2
    finally:
        await service.stop()


async def test_a_broken_defaults_file_makes_its_voice_unavailable_until_fixed(
    service: TTSService, folder: Path
) -> None:
    path = folder / "tiny-single.defaults.json"
    path.write_text('{"length_scale": "slow"}')
    await service.voices.folders.rescan(force=True)
    with pytest.raises(VoiceUnavailable) as refused:
        await service.submit(SpeechRequest(text=TEXT))
    assert "tiny-single.defaults.json" in refused.value.message
    assert refused.value.status == 500
    path.write_text('{"length_scale": 1.0}')
    assert await samples(service, SpeechRequest(text=TEXT)) > 0


async def test_defaults_naming_a_missing_speaker_are_reported(folder: Path, tmp_path: Path) -> None:
    service = TTSService(
        settings_for(folder, tmp_path, voice_defaults={"tiny-multi": {"speaker": 9}})
    )
    await service.start()
    try:
        with pytest.raises(VoiceUnavailable, match="defaults name a speaker"):
            await service.submit(SpeechRequest(text=TEXT, voice="tiny-multi"))
    finally:
        await service.stop()
