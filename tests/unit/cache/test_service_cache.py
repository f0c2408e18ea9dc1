"""The audio cache behind TTSService, with the real engine and scheduler and the tiny
generated voices: a repeated request is served from it byte for byte (word timings too),
`cache: false` and the server setting bypass it, a voice file changed on disk misses."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tts_service.config import Settings
from tts_service.scheduling.jobs import Chunk
from tts_service.service import SpeechRequest, TTSService
from voicegen import write_tiny_voice

TEXT = "Turning on the kitchen lights. Sorry, I did not catch that."

MakeService = Callable[..., Awaitable[TTSService]]


@pytest.fixture
async def make_service(
    tiny_voices: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeService]:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)
    made: list[TTSService] = []

    async def make(**overrides: object) -> TTSService:
        settings = Settings(
            **{
                "voices_dir": [tiny_voices],
                "default_voice": "tiny-single",
                "workers": 2,
                "noise_scale": 0.0,
                "solo_first_sentence": False,
                **overrides,
            }
        )
        service = TTSService(settings)
        await service.start()
        made.append(service)
        return service

    yield make
    for service in made:
        await service.stop()


async def speak(service: TTSService, request: SpeechRequest) -> list[Chunk]:
    admitted = await service.submit(request)
    return [chunk async for chunk in admitted.chunks()]


def audio(chunks: list[Chunk]) -> list[tuple[bytes, tuple[int, ...] | None]]:
    return [(chunk.pcm, chunk.samples_per_id) for chunk in chunks]


async def test_a_repeated_request_is_served_from_the_cache(make_service: MakeService) -> None:
    service = await make_service()
    request = SpeechRequest(text=TEXT, speaker=None)
    first = await speak(service, request)
    before = service.cache_report()
    again = await speak(service, request)
    after = service.cache_report()
    assert audio(again) == audio(first)
    assert after["hits"] - before["hits"] == len(first) == 2
    assert after["misses"] == before["misses"] and after["entries"] == 2
    assert all(chunk.synth_seconds == 0.0 for chunk in again)


async def test_a_sentence_shared_by_two_replies_hits(make_service: MakeService) -> None:
    service = await make_service()
    await speak(service, SpeechRequest(text="Sorry, I did not catch that. Try again."))
    before = service.cache_report()
    await speak(service, SpeechRequest(text="Sorry, I did not catch that. Say it once more."))
    after = service.cache_report()
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (1, 1)


async def test_other_options_miss(make_service: MakeService) -> None:
    service = await make_service()
    await speak(service, SpeechRequest(text=TEXT))
    before = service.cache_report()
    await speak(service, SpeechRequest(text=TEXT, volume=0.5))
    await speak(service, SpeechRequest(text=TEXT, voice="tiny-multi", speaker=1))
    after = service.cache_report()
    assert after["hits"] == before["hits"] and after["misses"] - before["misses"] == 4


async def test_cache_false_neither_serves_nor_keeps(make_service: MakeService) -> None:
    service = await make_service()
    await speak(service, SpeechRequest(text=TEXT, cache=False))
    assert service.cache_report()["entries"] == 0
    await speak(service, SpeechRequest(text=TEXT))
    before = service.cache_report()
    await speak(service, SpeechRequest(text=TEXT, cache=False))
    after = service.cache_report()
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])


async def test_the_server_setting_turns_it_off(make_service: MakeService) -> None:
    service = await make_service(cache=False)
    await speak(service, SpeechRequest(text=TEXT))
    await speak(service, SpeechRequest(text=TEXT))
    report = service.cache_report()
    assert not report["enabled"] and report["hits"] == report["entries"] == 0


async def test_a_voice_file_changed_on_disk_misses(
    make_service: MakeService, tmp_path: Path
) -> None:
    folder, other = tmp_path / "voices", tmp_path / "other"
    folder.mkdir()
    write_tiny_voice(folder, "tiny-live", num_speakers=1, sample_rate=16000)
    write_tiny_voice(other, "tiny-live", num_speakers=1, sample_rate=22050)
    service = await make_service(
        voices_dir=[folder], default_voice="tiny-live", rescan_interval=3600
    )
    request = SpeechRequest(text=TEXT, voice="tiny-live")
    first = await speak(service, request)
    assert audio(await speak(service, request)) == audio(first)  # cached
    hits = service.cache_report()["hits"]
    # Replaced by another model of the same name (as `cp` over it would).
    shutil.copyfile(other / "tiny-live.onnx", folder / "tiny-live.onnx.new")
    os.replace(folder / "tiny-live.onnx.new", folder / "tiny-live.onnx")
    # Before any rescan notices: the loaded voice's files changed, nothing is served.
    assert audio(await speak(service, request)) == audio(first)  # the old model, synthesized
    assert service.cache_report()["hits"] == hits
    await service.voices.folders.rescan(force=True)  # the voice reloads from the new file
    changed = await speak(service, request)
    assert audio(changed) != audio(first)
    assert service.cache_report()["hits"] == hits
    assert audio(await speak(service, request)) == audio(changed)  # the new one is cached
    assert service.cache_report()["hits"] == hits + 2
