"""A real server says which loaded voices decode in chunks, keeps their splits in its
cache folder, and writes nothing into the voice folders."""

from __future__ import annotations

from pathlib import Path

import httpx

from conftest import ServerProcess
from tts_service.engine.calibration import LOUDNESS_FOLDER
from voicegen import write_tiny_voice


def test_voices_say_whether_they_decode_in_chunks(
    start_server: type[ServerProcess], tmp_path: Path
) -> None:
    folder = tmp_path / "voices"
    write_tiny_voice(folder, "tiny-vits", 3, 22050, vits=True)
    write_tiny_voice(folder, "tiny-tone", 1, alignments=True)
    before = sorted(folder.iterdir())
    cache = tmp_path / "split-cache"
    server = start_server("--voices-dir", str(folder), env={"TTS_SPLIT_CACHE_DIR": str(cache)})
    url = server.base_url
    unloaded = {v["name"]: v for v in httpx.get(f"{url}/voices", timeout=10).json()["voices"]}
    assert unloaded["tiny-vits"]["chunked_decoding"] is None  # not loaded yet
    for name in ("tiny-vits", "tiny-tone"):
        body = {"text": "Hello there.", "voice": name}
        spoken = httpx.post(f"{url}/synthesize/binary", json=body, timeout=60)
        assert spoken.status_code == 200, spoken.text
    listed = {v["name"]: v for v in httpx.get(f"{url}/voices", timeout=10).json()["voices"]}
    assert listed["en_US-joe-medium"]["chunked_decoding"] is True
    assert listed["tiny-vits"]["chunked_decoding"] is True
    assert listed["tiny-tone"]["chunked_decoding"] is False  # no seam: whole sentences
    splits = [entry for entry in cache.iterdir() if entry.name != LOUDNESS_FOLDER]
    kept = sorted(entry.name.rsplit("-", 1)[0] for entry in splits)
    assert kept == ["en_US-joe-medium", "tiny-tone", "tiny-vits"]
    # The voices that chunk have their loudness kept beside their splits.
    loudness = sorted(p.name.rsplit("-", 1)[0] for p in (cache / LOUDNESS_FOLDER).iterdir())
    assert loudness == ["en_US-joe-medium", "tiny-vits"]
    assert sorted(folder.iterdir()) == before


def test_chunked_decoding_can_be_turned_off(
    start_server: type[ServerProcess], tmp_path: Path
) -> None:
    cache = tmp_path / "split-cache"
    server = start_server("--no-chunked-decoding", env={"TTS_SPLIT_CACHE_DIR": str(cache)})
    listed = httpx.get(f"{server.base_url}/voices", timeout=10).json()["voices"]
    joe = next(v for v in listed if v["name"] == "en_US-joe-medium")
    assert joe["loaded"] and joe["chunked_decoding"] is False
    assert not cache.exists()
