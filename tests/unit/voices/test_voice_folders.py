"""Live voice folders: scans are rate-limited and shared; added, changed and removed voices
reach the catalog; a voice in use keeps working after its files change or vanish."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

import pytest

from tts_service.engine.voice import SynthesisOptions
from tts_service.errors import VoiceNotFound
from tts_service.voices.defaults import DefaultsBook
from tts_service.voices.folders import VoiceFolders, scan
from tts_service.voices.loaded import BUNDLED_VOICE, LoadedVoices
from voicegen import expected_num_samples, write_tiny_voice


def watched(folder: Path, interval: float) -> tuple[VoiceFolders, LoadedVoices]:
    folders = VoiceFolders([folder], interval)
    catalog = LoadedVoices(folders.last.voices, 1, 4)
    folders.bind(catalog, DefaultsBook({}))
    return folders, catalog


async def test_a_new_voice_appears_on_the_next_scan(tmp_path: Path) -> None:
    folders, catalog = watched(tmp_path, interval=0.01)
    assert catalog.names == [BUNDLED_VOICE]
    write_tiny_voice(tmp_path, "newcomer", num_speakers=1)
    await asyncio.sleep(0.02)
    await folders.rescan()
    assert "newcomer" in catalog.names
    voice = await catalog.get("newcomer")
    assert voice.synthesize(voice.phonemize("Hi.")[0], SynthesisOptions()).pcm


async def test_scans_are_rate_limited_unless_forced(tmp_path: Path) -> None:
    folders, catalog = watched(tmp_path, interval=3600)
    write_tiny_voice(tmp_path, "newcomer", num_speakers=1)
    for _ in range(5):
        await folders.rescan()
    assert folders.scans == 1 and "newcomer" not in catalog.names
    await folders.rescan(force=True)  # after a download
    assert folders.scans == 2 and "newcomer" in catalog.names


async def test_an_interval_of_zero_turns_live_scans_off(tmp_path: Path) -> None:
    folders, catalog = watched(tmp_path, interval=0)
    write_tiny_voice(tmp_path, "newcomer", num_speakers=1)
    await folders.rescan()
    await folders.watch()  # returns at once: nothing to watch
    assert folders.scans == 1 and "newcomer" not in catalog.names


async def test_concurrent_callers_share_one_scan(tmp_path: Path) -> None:
    folders, _ = watched(tmp_path, interval=0.01)
    await asyncio.sleep(0.02)
    await asyncio.gather(*(folders.rescan() for _ in range(10)))
    assert folders.scans == 2


async def test_a_changed_voice_is_loaded_afresh_while_the_old_one_finishes(
    tmp_path: Path,
) -> None:
    write_tiny_voice(tmp_path, "shifty", num_speakers=1, sample_rate=16000)
    folders, catalog = watched(tmp_path, interval=0.01)
    old = await catalog.get("shifty")
    write_tiny_voice(tmp_path, "shifty", num_speakers=1, sample_rate=22050)
    await asyncio.sleep(0.02)
    await folders.rescan()
    assert not catalog.is_loaded("shifty")
    new = await catalog.get("shifty")
    assert (old.sample_rate, new.sample_rate) == (16000, 22050)
    ids = old.phonemize("Still here.")[0]
    assert len(old.synthesize(ids, SynthesisOptions()).pcm) == 2 * expected_num_samples(len(ids))


async def test_a_removed_voice_leaves_the_list_and_its_holder_finishes(tmp_path: Path) -> None:
    write_tiny_voice(tmp_path, "leaving", num_speakers=1)
    folders, catalog = watched(tmp_path, interval=0.01)
    held = await catalog.get("leaving")
    for suffix in (".onnx", ".onnx.json"):
        (tmp_path / f"leaving{suffix}").unlink()
    await asyncio.sleep(0.02)
    await folders.rescan()
    assert "leaving" not in catalog.names and not catalog.is_loaded("leaving")
    with pytest.raises(VoiceNotFound):
        await catalog.get("leaving")
    ids = held.phonemize("Goodbye.")[0]
    assert len(held.synthesize(ids, SynthesisOptions()).pcm) == 2 * expected_num_samples(len(ids))


def test_scan_finds_defaults_files_and_later_folders_win(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_tiny_voice(first, "tone", num_speakers=1)
    shutil.copytree(first, second)
    (first / "tone.defaults.json").write_text(json.dumps({"length_scale": 2}))
    (second / "tone.defaults.json").write_text(json.dumps({"length_scale": 3}))
    (first / f"{BUNDLED_VOICE}.defaults.json").write_text("{}")
    found = scan([first, second, tmp_path / "absent"])
    assert found.voices["tone"].model == second / "tone.onnx"
    assert found.defaults == {
        "tone": second / "tone.defaults.json",
        BUNDLED_VOICE: first / f"{BUNDLED_VOICE}.defaults.json",
    }


def test_a_missing_folder_is_reported_once_and_the_download_folder_never(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    absent, downloads = tmp_path / "absent", tmp_path / "downloads"
    with caplog.at_level(logging.WARNING):
        folders = VoiceFolders([downloads, absent], interval=0.01, quiet=[downloads])
        for _ in range(3):
            folders._scan()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"voice folder {absent} does not exist"]


async def test_a_config_change_seen_by_the_listing_reloads_the_voice(tmp_path: Path) -> None:
    """Between scans, the list re-reads a changed config: the voice in use follows it."""
    write_tiny_voice(tmp_path, "shifty", num_speakers=1, sample_rate=16000)
    _, catalog = watched(tmp_path, interval=3600)  # no scan will come
    assert (await catalog.get("shifty")).sample_rate == 16000
    write_tiny_voice(tmp_path, "shifty", num_speakers=1, sample_rate=22050)
    assert catalog.info("shifty").sample_rate == 22050
    assert not catalog.is_loaded("shifty")
    assert (await catalog.get("shifty")).sample_rate == 22050
