"""Voice discovery, name validation, loading once, the LRU cache, and speakers."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from audiocheck import eventually
from tts_service.engine.voice import Voice, VoiceInfo
from tts_service.errors import (
    InvalidRequest,
    SpeakerNotFound,
    VoiceNotFound,
    VoiceUnavailable,
)
from tts_service.voices.loaded import (
    BUNDLED_VOICE,
    LoadedVoices,
    VoiceFiles,
    bundled_voice,
    discover,
    resolve_speaker,
    validate_voice_name,
)
from voicegen import tiny_voice_config, write_tiny_voice

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


def catalog_for(folder: Path, max_loaded: int = 4) -> tuple[LoadedVoices, CountingLoader]:
    loader = CountingLoader()
    catalog = LoadedVoices(discover([folder]), 1, max_loaded, loader=loader)
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
        with pytest.raises(VoiceUnavailable, match=r"(?i)protobuf|onnx|load|invalid") as failed:
            await catalog.get("broken")
        assert failed.value.status == 500 and failed.value.code == "voice_unavailable"
        assert "'broken'" in failed.value.message and str(tmp_path) not in failed.value.message
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


# ------------------------------------------------------------------ a load outlives its callers


class GatedLoader:
    """A fake loader that holds each load until the test opens the gate, then returns a
    ready voice or raises `error`."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        self.error: Exception | None = None
        self.calls = 0
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, files: VoiceFiles, threads: int) -> Voice:
        self.calls += 1
        self.started.set()
        self.gate.wait(timeout=30)  # bounded: a failing test must not hang the run
        if self.error is not None:
            raise self.error
        return self.voice


@pytest.fixture(scope="module")
def tiny_voice(voice_dir: Path) -> Voice:
    files = discover([voice_dir])["tiny-b"]
    return Voice.load(files.name, files.model, files.config, 1)


def gated_catalog(voice_dir: Path, voice: Voice) -> tuple[LoadedVoices, GatedLoader]:
    loader = GatedLoader(voice)
    return LoadedVoices(discover([voice_dir]), 1, 4, loader=loader), loader


async def started_loading(loader: GatedLoader) -> None:
    assert await asyncio.to_thread(loader.started.wait, 30), "the load never started"


async def test_a_cancelled_first_caller_does_not_cancel_the_load(
    voice_dir: Path, tiny_voice: Voice
) -> None:
    catalog, loader = gated_catalog(voice_dir, tiny_voice)
    first = asyncio.create_task(catalog.get("tiny-b"))
    await started_loading(loader)
    others = [asyncio.create_task(catalog.get("tiny-b")) for _ in range(3)]
    await asyncio.sleep(0)  # the others are waiting on the same load
    first.cancel()
    loader.gate.set()
    got = await asyncio.gather(*others)
    assert all(voice is tiny_voice for voice in got)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert loader.calls == 1 and catalog.loads == 1 and catalog.is_loaded("tiny-b")


async def test_a_load_every_caller_gave_up_on_still_lands_in_the_cache(
    voice_dir: Path, tiny_voice: Voice
) -> None:
    catalog, loader = gated_catalog(voice_dir, tiny_voice)
    callers = [asyncio.create_task(catalog.get("tiny-b")) for _ in range(2)]
    await started_loading(loader)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    loader.gate.set()

    async def loaded() -> bool:
        return catalog.is_loaded("tiny-b")

    await eventually(loaded, 30, "the abandoned load finished")
    assert await catalog.get("tiny-b") is tiny_voice
    assert loader.calls == 1 and catalog.loads == 1


async def test_a_failing_load_fails_every_waiter_and_is_retried_later(
    voice_dir: Path, tiny_voice: Voice
) -> None:
    catalog, loader = gated_catalog(voice_dir, tiny_voice)
    loader.error = RuntimeError("the model file is truncated")
    waiters = [asyncio.create_task(catalog.get("tiny-b")) for _ in range(3)]
    await started_loading(loader)
    loader.gate.set()
    failures = await asyncio.gather(*waiters, return_exceptions=True)
    for failure in failures:
        assert isinstance(failure, VoiceUnavailable), failure
        assert failure.status == 500 and failure.code == "voice_unavailable"
        assert "'tiny-b'" in failure.message and "truncated" in failure.message
    assert loader.calls == 1 and catalog.loads == 0 and not catalog.is_loaded("tiny-b")

    loader.error = None  # the file is fixed: the next request loads it
    assert await catalog.get("tiny-b") is tiny_voice
    assert loader.calls == 2 and catalog.loads == 1 and catalog.is_loaded("tiny-b")


# ------------------------------------------------------------------ broken voice files


def without_sample_rate() -> str:
    config = tiny_voice_config("broken", num_speakers=1)
    del config["audio"]["sample_rate"]
    return json.dumps(config)


def without_phoneme_map() -> str:
    config = tiny_voice_config("broken", num_speakers=1)
    del config["phoneme_id_map"]
    return json.dumps(config)


BROKEN_CONFIGS = {
    "not JSON": ("{not json", "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "a list": ("[1, 2]", "unexpected value"),
    "no sample rate": (without_sample_rate(), "lacks the required key 'sample_rate'"),
    "no phoneme map": (without_phoneme_map(), "lacks the required key 'phoneme_id_map'"),
    "wrong type": (json.dumps({**tiny_voice_config(), "audio": "loud"}), "unexpected value"),
}


@pytest.fixture
def broken_dir(tmp_path: Path) -> Path:
    write_tiny_voice(tmp_path, "good", num_speakers=1)
    write_tiny_voice(tmp_path, "broken", num_speakers=1)
    return tmp_path


@pytest.mark.parametrize(("content", "reason"), BROKEN_CONFIGS.values(), ids=BROKEN_CONFIGS)
async def test_a_broken_config_hides_only_its_own_voice(
    broken_dir: Path, content: str, reason: str
) -> None:
    (broken_dir / "broken.onnx.json").write_text(content)
    catalog, loader = catalog_for(broken_dir)
    assert [info.name for info in catalog.infos()] == [BUNDLED_VOICE, "good"]
    problems = catalog.problems()
    assert list(problems) == ["broken"]
    assert "'broken'" in problems["broken"] and "broken.onnx.json" in problems["broken"]
    assert reason in problems["broken"] and str(broken_dir) not in problems["broken"]
    with pytest.raises(VoiceUnavailable) as described:
        catalog.info("broken")
    with pytest.raises(VoiceUnavailable) as loaded:
        await catalog.get("broken")
    assert described.value.message == loaded.value.message == problems["broken"]
    assert loader.calls == []  # refused from the config alone, no model load tried
    assert (await catalog.get("good")).info.name == "good"


async def test_a_config_that_is_not_utf8_is_broken(broken_dir: Path) -> None:
    (broken_dir / "broken.onnx.json").write_bytes(b"\xff\xfe{}")
    catalog, _ = catalog_for(broken_dir)
    assert "not UTF-8" in catalog.problems()["broken"]


async def test_a_repaired_config_is_read_again(broken_dir: Path) -> None:
    config = broken_dir / "broken.onnx.json"
    good = config.read_text()
    config.write_text("{not json")
    catalog, _ = catalog_for(broken_dir)
    assert "broken" in catalog.problems()
    config.write_text(good)  # another size, so the change shows even within one mtime tick
    assert catalog.problems() == {}
    assert catalog.info("broken").name == "broken"
    assert (await catalog.get("broken")).info.name == "broken"


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
