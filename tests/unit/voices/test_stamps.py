"""A file replaced by `mv` of another with the same size and mtime (a rename-swap) is
noticed by every cache that re-reads a file when it changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tts_service.voices.defaults import DefaultsBook
from tts_service.voices.folders import scan
from tts_service.voices.loaded import LoadedVoices, discover
from tts_service.voices.published import PACKAGED_CATALOG, CatalogSource
from tts_service.voices.stamps import file_stamp
from voicegen import tiny_voice_config, write_tiny_voice


def swap_in(target: Path, content: str | bytes) -> None:
    """Replace `target` by renaming onto it a new file of the same size and mtime."""
    data = content.encode() if isinstance(content, str) else content
    before = target.stat()
    assert len(data) == before.st_size
    replacement = target.with_name(target.name + ".new")
    replacement.write_bytes(data)
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, target)
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_the_stamp_changes_with_the_inode(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("aaaa")
    before = file_stamp(path)
    swap_in(path, "bbbb")
    assert file_stamp(path) != before
    assert file_stamp(tmp_path / "missing") is None


def test_the_loaded_voices_reread_a_swapped_config(tmp_path: Path) -> None:
    write_tiny_voice(tmp_path, "tiny", num_speakers=1, sample_rate=16000)
    voices = LoadedVoices(discover([tmp_path]), 1, 1)
    assert voices.info("tiny").sample_rate == 16000
    config = tiny_voice_config("tiny", num_speakers=1, sample_rate=22050)
    swap_in(tmp_path / "tiny.onnx.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    assert voices.info("tiny").sample_rate == 22050


def test_the_defaults_book_rereads_a_swapped_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.defaults.json"
    path.write_text(json.dumps({"length_scale": 1.5}))
    book = DefaultsBook({})
    book.use_files({"tiny": path})
    assert book.for_voice("tiny").length_scale == 1.5
    swap_in(path, json.dumps({"length_scale": 2.5}))
    assert book.for_voice("tiny").length_scale == 2.5


def test_a_folder_scan_sees_a_swapped_model(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny", num_speakers=1)
    before = scan([tmp_path])
    swap_in(model, model.read_bytes()[::-1])
    assert scan([tmp_path]).changed_since(before) == (set(), {"tiny"}, set())


def test_the_published_list_rereads_a_swapped_file(tmp_path: Path) -> None:
    path = tmp_path / "voices.json"
    lines = PACKAGED_CATALOG.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines), encoding="utf-8")
    source = CatalogSource(path, tmp_path)
    first, second = list(source.current().voices)[:2]  # in the file's order
    swap_in(path, "".join([lines[0], lines[2], lines[1], *lines[3:]]))
    assert list(source.current().voices)[:2] == [second, first]
