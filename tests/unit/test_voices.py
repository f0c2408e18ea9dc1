"""Voice discovery, name validation, loading once, the LRU cache, and speakers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tts_service.engine import Voice, VoiceInfo
from tts_service.errors import InvalidRequest, SpeakerNotFound, VoiceNotFound
from tts_service.voices import (
    BUNDLED_VOICE,
    VoiceCatalog,
    VoiceFiles,
    bundled_voice,
    discover,
    resolve_speaker,
    validate_voice_name,
)
from voicegen import write_tiny_voice

TRAVERSAL = ["../x", "/etc/passwd", "a/b", "..", "../../etc/passwd", "a\\b", ".hidden", ""]


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    for name, speakers in (("tiny-a", 3), ("tiny-b", 1), ("tiny-c", 1)):
        write_tiny_voice(folder, name, num_speakers=speakers)
    return folder


class CountingLoader:
    """The real loader, counting calls per voice (and from how many threads at once)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, files: VoiceFiles, threads: int) -> Voice:
        with self._lock:
            self.calls.append(files.name)
        return Voice.load(files.name, files.model, files.config, threads)


def catalog_for(folder: Path, max_loaded: int = 4) -> tuple[VoiceCatalog, CountingLoader]:
    loader = CountingLoader()
    catalog = VoiceCatalog(discover([folder]), 1, max_loaded, loader=loader)
    return catalog, loader


# ------------------------------------------------------------------ discovery


def test_discovery_finds_the_bundled_voice_and_a_folder(voice_dir: Path) -> None:
    found = discover([voice_dir])
    assert set(found) == {BUNDLED_VOICE, "tiny-a", "tiny-b", "tiny-c"}
    assert found["tiny-a"].model == voice_dir / "tiny-a.onnx"
    assert found["tiny-a"].config == voice_dir / "tiny-a.onnx.json"
    bundled = bundled_voice()
    assert bundled is not None and bundled.model.is_file() and bundled.config.is_file()


def test_discovery_skips_incomplete_and_oddly_named_files(tmp_path: Path) -> None:
    write_tiny_voice(tmp_path, "good", num_speakers=1)
    (tmp_path / "orphan.onnx").write_bytes(b"no config beside me")
    (tmp_path / "config-only.onnx.json").write_text("{}")
    bad = write_tiny_voice(tmp_path / "sub", "-dash", num_speakers=1)
    bad.rename(tmp_path / bad.name)
    (tmp_path / "sub" / "-dash.onnx.json").rename(tmp_path / "-dash.onnx.json")
    found = discover([tmp_path, tmp_path / "does-not-exist"])
    assert set(found) == {BUNDLED_VOICE, "good"}


def test_a_later_folder_wins(tmp_path: Path) -> None:
    first = write_tiny_voice(tmp_path / "one", "same", num_speakers=1)
    second = write_tiny_voice(tmp_path / "two", "same", num_speakers=3)
    assert discover([first.parent, second.parent])["same"].model == second
    assert discover([second.parent, first.parent])["same"].model == first


async def test_catalog_describes_voices_without_loading_them(voice_dir: Path) -> None:
    catalog, loader = catalog_for(voice_dir)
    infos = {info.name: info for info in catalog.infos()}
    assert catalog.names == sorted(infos)
    assert infos["tiny-a"].speakers == {"alice": 0, "bob": 1, "carol": 2}
    assert infos["tiny-b"].num_speakers == 1 and infos["tiny-b"].sample_rate == 16000
    assert infos[BUNDLED_VOICE].sample_rate == 22050
    assert loader.calls == [] and not catalog.is_loaded("tiny-a")


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("name", TRAVERSAL)
async def test_traversal_names_are_refused_and_nothing_is_opened(
    voice_dir: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog, loader = catalog_for(voice_dir)
    opened: list[str] = []
    real_open = open

    def watching_open(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", watching_open)
    with pytest.raises(InvalidRequest) as refused:
        await catalog.get(name)
    with pytest.raises(InvalidRequest):
        catalog.info(name)
    assert refused.value.status == 400
    assert name not in refused.value.message or name == ""  # junk is not echoed back
    assert loader.calls == [] and opened == []


@pytest.mark.parametrize("name", [*TRAVERSAL, 7, None, "x" * 200])
def test_validate_voice_name_refuses(name: object) -> None:
    with pytest.raises(InvalidRequest):
        validate_voice_name(name)


@pytest.mark.parametrize("name", ["en_US-joe-medium", "tiny-a", "de_DE-thorsten+x.v2"])
def test_validate_voice_name_accepts(name: str) -> None:
    assert validate_voice_name(name) == name


async def test_unknown_voice_lists_the_available_ones(voice_dir: Path) -> None:
    catalog, loader = catalog_for(voice_dir)
    with pytest.raises(VoiceNotFound) as missing:
        await catalog.get("nope")
    error = missing.value
    assert error.status == 404 and "nope" in error.message
    assert error.to_dict()["available"] == [BUNDLED_VOICE, "tiny-a", "tiny-b", "tiny-c"]
    assert loader.calls == []


# ------------------------------------------------------------------ loading and caching


async def test_concurrent_gets_load_a_voice_once(voice_dir: Path) -> None:
    catalog, loader = catalog_for(voice_dir)
    got = await asyncio.gather(*(catalog.get("tiny-a") for _ in range(8)))
    assert catalog.loads == 1 and loader.calls == ["tiny-a"]
    assert all(voice is got[0] for voice in got)
    assert got[0].info.name == "tiny-a" and catalog.is_loaded("tiny-a")
    assert await catalog.get("tiny-a") is got[0]
    assert catalog.loads == 1


async def test_a_failed_load_is_not_cached(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "broken", num_speakers=1)
    model.write_bytes(b"not an onnx model")
    catalog, loader = catalog_for(tmp_path)
    for _ in range(2):
        with pytest.raises(Exception, match=r"(?i)protobuf|onnx|load|invalid"):
            await catalog.get("broken")
    assert loader.calls == ["broken", "broken"] and not catalog.is_loaded("broken")


async def test_least_recently_used_voice_is_evicted(voice_dir: Path) -> None:
    catalog, loader = catalog_for(voice_dir, max_loaded=2)
    a = await catalog.get("tiny-a")
    await catalog.get("tiny-b")
    assert await catalog.get("tiny-a") is a  # a is now the most recent
    await catalog.get("tiny-c")

    assert [catalog.is_loaded(n) for n in ("tiny-a", "tiny-b", "tiny-c")] == [True, False, True]
    await catalog.get("tiny-b")  # loaded again; a is now the least recent
    assert loader.calls == ["tiny-a", "tiny-b", "tiny-c", "tiny-b"]
    assert [catalog.is_loaded(n) for n in ("tiny-a", "tiny-b", "tiny-c")] == [False, True, True]
    assert catalog.loads == 4


# ------------------------------------------------------------------ speakers


def info(speakers: int) -> VoiceInfo:
    names = {"alice": 0, "bob": 1, "carol": 2} if speakers > 1 else {}
    return VoiceInfo("v", "en_US", 16000, "x_low", names, speakers, None)


@pytest.mark.parametrize(
    ("speaker", "expected"),
    [(None, None), ("", None), ("alice", 0), ("bob", 1), ("carol", 2), (2, 2), ("1", 1), (0, 0)],
)
def test_speakers_by_name_and_id(speaker: str | int | None, expected: int | None) -> None:
    assert resolve_speaker(info(3), speaker) == expected


@pytest.mark.parametrize("speaker", [3, -1, "3", "dave", "Alice", True, 99])
def test_out_of_range_speakers_are_refused(speaker: str | int) -> None:
    with pytest.raises(SpeakerNotFound) as refused:
        resolve_speaker(info(3), speaker)
    assert refused.value.status == 400


def test_unknown_speaker_name_lists_the_speakers() -> None:
    with pytest.raises(SpeakerNotFound) as refused:
        resolve_speaker(info(3), "dave")
    assert refused.value.to_dict()["available"] == ["alice", "bob", "carol"]


@pytest.mark.parametrize(("speaker", "expected"), [(None, None), (0, None), ("0", None)])
def test_single_speaker_voice_takes_only_speaker_zero(
    speaker: str | int | None, expected: int | None
) -> None:
    assert resolve_speaker(info(1), speaker) == expected


@pytest.mark.parametrize("speaker", [1, "1", "alice", -1])
def test_single_speaker_voice_refuses_others(speaker: str | int) -> None:
    with pytest.raises(SpeakerNotFound):
        resolve_speaker(info(1), speaker)
