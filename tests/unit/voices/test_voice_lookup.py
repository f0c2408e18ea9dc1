"""From a requested name to a voice: aliases, languages, a voice copied in after start, and
download on first use (within the request's deadline, shared, going on past it). Real
service and engine with tiny voices; downloads from a local server in the upstream layout."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tts_service.config import Settings
from tts_service.engine.voice import VoiceInfo
from tts_service.errors import DeadlineExceeded, InvalidRequest, VoiceNotFound
from tts_service.service import SpeechRequest, TTSService
from tts_service.voices.names import is_language, voice_for_language
from voicegen import write_tiny_voice
from voicemirror import (
    VoiceMirror,
    published,
    running_mirror,
    tiny_voice_files,
    voice_files,
    write_catalog,
)

INSTALLED = "en_US-tiny-x_low"  # installed, published with an alias
REMOTE = "en_GB-tiny-x_low"  # published, only on the mirror


def info(name: str, language: str, quality: str | None) -> VoiceInfo:
    return VoiceInfo(name, language, 22050, quality, {}, 1, None)


VOICES = [
    info("en_US-joe-medium", "en_US", "medium"),
    info("en_US-lessac-high", "en_US", "high"),
    info("en_US-amy-low", "en_US", "low"),
    info("en_GB-alba-medium", "en_GB", "medium"),
    info("en_GB-cori-high", "en_GB", "high"),
    info("de_DE-custom", "de_DE", None),
    info("de_DE-thorsten-low", "de_DE", "low"),
]


@pytest.mark.parametrize(
    ("language", "default", "expected"),
    [
        ("en_GB", "en_US-joe-medium", "en_GB-cori-high"),  # exact, then the best quality
        ("en-gb", "en_GB-alba-medium", "en_GB-alba-medium"),  # the default first
        ("en_US", "de_DE-custom", "en_US-lessac-high"),
        ("en", "en_US-joe-medium", "en_US-joe-medium"),  # family: the default first
        ("en", "de_DE-custom", "en_GB-cori-high"),  # then the best, ties by name
        ("en_AU", "de_DE-custom", "en_GB-cori-high"),  # no exact: its family
        ("de", "en_US-joe-medium", "de_DE-thorsten-low"),  # a stated quality beats none
    ],
)
def test_the_best_installed_voice_for_a_language(
    language: str, default: str, expected: str
) -> None:
    assert voice_for_language(VOICES, default, language) == expected


def test_what_counts_as_a_language() -> None:
    assert all(is_language(x) for x in ("en", "en_GB", "en-gb", "fil", "pt_BR"))
    assert not any(is_language(x) for x in ("en_US-joe-medium", "tiny", "e", "en_GB_x"))


# ---------------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def remote_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("remote")
    return tiny_voice_files(folder, REMOTE)


@pytest.fixture
def mirror(remote_files: dict[str, bytes]) -> Iterator[VoiceMirror]:
    with running_mirror() as mirror:
        mirror.add_voice(REMOTE, remote_files)
        yield mirror


@pytest.fixture
def layout(tmp_path: Path, remote_files: dict[str, bytes]) -> tuple[Path, Path]:
    """A voice folder with the tiny voices and INSTALLED, and a catalog publishing
    INSTALLED (alias `tiny-alias`) and REMOTE."""
    voices = tmp_path / "voices"
    write_tiny_voice(voices, "tiny-single", num_speakers=1)
    write_tiny_voice(voices, INSTALLED, num_speakers=1)
    catalog = write_catalog(
        tmp_path / "catalog.json",
        {
            INSTALLED: published(INSTALLED, voice_files(voices, INSTALLED), ["tiny-alias"]),
            REMOTE: published(REMOTE, remote_files, ["remote-alias"]),
        },
    )
    return voices, catalog


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("TTS_")]:
        monkeypatch.delenv(key)


async def started(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror, **extra: object
) -> TTSService:
    voices, catalog = layout
    options: dict[str, object] = {
        "voices_dir": [voices],
        "download_dir": tmp_path / "downloads",
        "catalog": catalog,
        "voices_url": mirror.base_url,
        "default_voice": "tiny-single",
        "workers": 1,
        "rescan_interval": 0.01,
        **extra,
    }
    service = TTSService(Settings(**options))  # type: ignore[arg-type]
    try:
        await service.start()
    except BaseException:
        await service.stop()
        raise
    return service


@pytest.fixture
async def service(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror
) -> AsyncIterator[TTSService]:
    service = await started(layout, tmp_path, mirror)
    yield service
    await service.stop()


async def test_an_alias_and_a_language_name_installed_voices(service: TTSService) -> None:
    assert (await service.voices.voice("tiny-alias")).info.name == INSTALLED
    assert (await service.voices.voice("en_US")).info.name == "tiny-single"  # the default
    with pytest.raises(VoiceNotFound) as refused:
        await service.voices.voice("de")
    assert "no installed voice speaks 'de'" in refused.value.message


async def test_a_voice_copied_in_after_start_is_found_by_name(
    service: TTSService, layout: tuple[Path, Path]
) -> None:
    shutil.copy(layout[0] / "tiny-single.onnx", layout[0] / "late-comer.onnx")
    shutil.copy(layout[0] / "tiny-single.onnx.json", layout[0] / "late-comer.onnx.json")
    await asyncio.sleep(0.02)
    assert (await service.voices.voice("late-comer")).info.name == "late-comer"


async def test_a_published_voice_is_not_downloaded_unless_allowed(
    service: TTSService, mirror: VoiceMirror
) -> None:
    with pytest.raises(VoiceNotFound) as refused:
        await service.submit(SpeechRequest(text="Hi.", voice=REMOTE))
    message = refused.value.message
    assert "in the voice catalog" in message and f"voices download {REMOTE}" in message
    with pytest.raises(VoiceNotFound, match=r"is not installed$"):
        await service.voices.voice("nobody-anywhere")
    with pytest.raises(InvalidRequest):
        await service.voices.voice("../" + REMOTE)
    assert sum(mirror.gets.values()) == 0


async def test_download_on_first_use_by_name_or_alias(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror
) -> None:
    service = await started(layout, tmp_path, mirror, download_missing=True)
    try:
        admitted = await service.submit(SpeechRequest(text="Hi there.", voice="remote-alias"))
        assert admitted.voice.info.name == REMOTE
        assert await service.scheduler.collect(admitted.job)
        assert (tmp_path / "downloads" / f"{REMOTE}.onnx").is_file()
        again = await service.submit(SpeechRequest(text="Again.", voice=REMOTE))
        await service.scheduler.collect(again.job)
    finally:
        await service.stop()
    assert mirror.gets[mirror.path(REMOTE, f"{REMOTE}.onnx")] == 1


async def test_a_download_past_the_deadline_is_a_504_and_goes_on(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror
) -> None:
    model = mirror.path(REMOTE, f"{REMOTE}.onnx")
    gate = mirror.hold(model)
    service = await started(layout, tmp_path, mirror, download_missing=True)
    try:
        with pytest.raises(DeadlineExceeded) as late:
            await service.submit(SpeechRequest(text="Hi.", voice=REMOTE, timeout=0.2))
        assert late.value.status == 504 and "still downloading" in late.value.message
        assert service.voices.downloads.running == [REMOTE]
        gate.set()
        admitted = await service.submit(SpeechRequest(text="Hi.", voice=REMOTE))
        assert await service.scheduler.collect(admitted.job)
    finally:
        await service.stop()
    assert mirror.gets[model] == 1


async def test_a_stale_folder_listing_never_hides_a_downloaded_voice(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror
) -> None:
    """The scan after a download runs after any scan already under way."""
    service = await started(layout, tmp_path, mirror, download_missing=True)
    try:
        results = await asyncio.gather(
            service.voices.folders.rescan(force=True),
            service.voices.voice(REMOTE),
            service.voices.folders.rescan(force=True),
        )
        assert results[1].info.name == REMOTE and REMOTE in service.voices.loaded.names
    finally:
        await service.stop()


async def test_a_missing_default_voice_is_downloaded_at_start(
    layout: tuple[Path, Path], tmp_path: Path, mirror: VoiceMirror
) -> None:
    service = await started(
        layout, tmp_path, mirror, download_missing=True, preload_voices=["remote-alias"]
    )
    try:
        assert service.voices.loaded.is_loaded(REMOTE)
    finally:
        await service.stop()
    with pytest.raises(VoiceNotFound, match="in the voice catalog"):
        await started(layout, tmp_path / "elsewhere", mirror, default_voice=REMOTE)
