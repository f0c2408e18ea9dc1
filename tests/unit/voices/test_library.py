"""The library answers for the voice parts: a listing sees the folders as they are now,
says which published voices are not installed, and the loaded voices are its to report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tts_service.config import Settings
from tts_service.engine.devices import CPU
from tts_service.voices.budget import LoadMeter
from tts_service.voices.library import VoiceLibrary
from tts_service.voices.loaded import BUNDLED_VOICE
from voicegen import write_tiny_voice
from voicemirror import published, tiny_voice_files, voice_files, write_catalog

INSTALLED = "en_US-tiny-x_low"
REMOTE = "en_GB-tiny-x_low"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("TTS_")]:
        monkeypatch.delenv(key)


def library_for(tmp_path: Path) -> VoiceLibrary:
    voices = tmp_path / "voices"
    write_tiny_voice(voices, INSTALLED, num_speakers=1)
    files = voice_files(voices, INSTALLED)
    catalog = write_catalog(
        tmp_path / "catalog.json",
        {
            INSTALLED: published(INSTALLED, files, ["tiny-alias"]),
            REMOTE: published(REMOTE, tiny_voice_files(tmp_path / "remote", REMOTE)),
        },
    )
    settings = Settings(
        voices_dir=[voices],
        download_dir=tmp_path / "downloads",
        catalog=catalog,
        rescan_interval=0.001,
        default_voice=INSTALLED,
    )
    return VoiceLibrary(settings, CPU, solo_threads=None, meter=LoadMeter(), retry_after=lambda: 1)


async def test_a_listing_sees_a_voice_copied_in_and_one_broken(tmp_path: Path) -> None:
    library = library_for(tmp_path)
    first = await library.listing()
    assert first.names == sorted([BUNDLED_VOICE, INSTALLED])
    write_tiny_voice(tmp_path / "voices", "newcomer", num_speakers=1)
    (tmp_path / "voices" / "broken.onnx").write_bytes(b"")
    (tmp_path / "voices" / "broken.onnx.json").write_text("{")
    listing = await library.listing()
    assert "newcomer" in listing.names and "broken" in listing.names
    assert "newcomer" in {info.name for info in listing.infos}
    assert set(listing.problems) == {"broken"}
    assert "not valid JSON" in listing.problems["broken"]


async def test_a_listing_names_the_published_voices_not_installed(tmp_path: Path) -> None:
    library = library_for(tmp_path)
    listing = await library.listing()
    assert [entry.name for entry in listing.downloadable()] == [REMOTE]
    alias = library.published_voice("tiny-alias")
    assert alias is not None and alias.name == INSTALLED
    assert library.published_voice("nobody") is None


async def test_the_loaded_voices_and_their_memory(tmp_path: Path) -> None:
    library = library_for(tmp_path)
    assert library.loaded_names() == [] and library.memory_bytes == 0
    voice = await library.acquire(INSTALLED)
    assert library.loaded_names() == [INSTALLED]
    assert library.loaded_voice(INSTALLED) is voice
    assert library.loaded_voices() == {INSTALLED: voice}
    # A tiny voice may load into heap the process already holds: its measure can be 0.
    assert library.memory_bytes == voice.memory_bytes and library.loads == 1
    assert library.budget_bytes is None
    library.release(voice)
    found, waited = await library.find("tiny-alias")
    assert found is voice and waited == 0.0
    library.close()


async def test_a_voice_defaults_or_why_not(tmp_path: Path) -> None:
    library = library_for(tmp_path)
    folder = tmp_path / "voices"
    (folder / f"{INSTALLED}.defaults.json").write_text(json.dumps({"length_scale": 1.5}))
    (folder / f"{BUNDLED_VOICE}.defaults.json").write_text("[]")
    await library.folders.rescan(force=True)
    assert library.defaults_for(INSTALLED).length_scale == 1.5
    assert library.defaults_problem(INSTALLED) is None
    problem = library.defaults_problem(BUNDLED_VOICE)
    assert problem is not None and "is not a JSON object" in problem
