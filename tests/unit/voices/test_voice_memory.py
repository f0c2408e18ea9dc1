"""The voice cache's memory budget: least recently used idle voices make room, a voice
that requests are using is never evicted, refusals say why; load sizes and estimates."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from audiocheck import eventually
from tts_service.config import Settings, parse_size
from tts_service.engine.voice import SentenceAudio, SynthesisOptions, Voice
from tts_service.errors import ShuttingDown, VoiceMemoryFull, VoiceUnavailable
from tts_service.scheduling.scheduler import Scheduler
from tts_service.service import SpeechRequest, TTSService
from tts_service.voices.budget import MB, LoadMeter, MemoryBudget, VoiceHolds
from tts_service.voices.loaded import LoadedVoices, VoiceFiles, discover
from voicegen import write_tiny_voice

T = TypeVar("T")
NAMES = ("tiny-a", "tiny-b", "tiny-c")
OPTIONS = SynthesisOptions()
SIZE = 40 * MB  # what each tiny voice "measures" here


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("voices")
    for name in NAMES:
        write_tiny_voice(folder, name, num_speakers=1)
    return folder


class FixedMeter(LoadMeter):
    """Every load measures `size` bytes (quiet unless told otherwise)."""

    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.size = size
        self.busy = False

    def measure(self, load: Callable[[], T]) -> tuple[T, int | None]:
        return load(), None if self.busy else self.size


class GatedVoice(Voice):
    """A real tiny voice whose sentences wait for `gate`: a request stays in flight."""

    gate = threading.Event()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        assert self.gate.wait(30), "the test never opened the gate"
        return super().synthesize(phoneme_ids, options, solo)


@pytest.fixture(autouse=True)
def open_gate() -> Iterator[None]:
    GatedVoice.gate.set()
    yield
    GatedVoice.gate.set()  # no worker may be left waiting on it


def catalog(folder: Path, budget: int | None, max_loaded: int = 4) -> LoadedVoices:
    files = {name: f for name, f in discover([folder]).items() if name in NAMES}

    def load(f: VoiceFiles, threads: int) -> Voice:
        return GatedVoice.load(f.name, f.model, f.config, threads)

    meter = FixedMeter()
    return LoadedVoices(files, 1, max_loaded, loader=load, memory_budget=budget, meter=meter)


def model_bytes(folder: Path) -> int:
    return (folder / "tiny-a.onnx").stat().st_size


def learned(cat: LoadedVoices, folder: Path) -> None:
    """Estimates equal to measurements from here on (one session per tiny voice)."""
    cat.budget.session_bytes = SIZE - model_bytes(folder)


async def test_the_least_recently_used_voice_makes_room(voice_dir: Path) -> None:
    cat = catalog(voice_dir, int(2.5 * SIZE))
    learned(cat, voice_dir)
    await cat.get("tiny-a")
    await cat.get("tiny-b")
    await cat.get("tiny-a")  # b is now the least recently used
    await cat.get("tiny-c")
    assert set(cat.loaded_voices()) == {"tiny-a", "tiny-c"}
    assert cat.memory_bytes == 2 * SIZE <= cat.budget.limit  # type: ignore[operator]


async def test_a_voice_in_use_is_never_evicted(voice_dir: Path) -> None:
    cat = catalog(voice_dir, int(2.5 * SIZE))
    learned(cat, voice_dir)
    busy = await cat.acquire("tiny-a")  # a request holds it: the oldest, yet kept
    await cat.get("tiny-b")
    await cat.get("tiny-c")
    assert set(cat.loaded_voices()) == {"tiny-a", "tiny-c"}
    assert cat.loaded_voices()["tiny-a"] is busy


async def test_voices_in_use_filling_the_budget_refuse_a_load_at_once(voice_dir: Path) -> None:
    cat = catalog(voice_dir, int(2.5 * SIZE))
    learned(cat, voice_dir)
    first = await cat.acquire("tiny-a")
    await cat.acquire("tiny-b")
    loads = cat.loads
    with pytest.raises(VoiceMemoryFull) as refused:
        await cat.get("tiny-c")
    assert refused.value.status == 503 and refused.value.retry_after >= 1
    assert "tiny-c" in refused.value.message and "memory budget" in refused.value.message
    assert cat.loads == loads  # refused before loading anything
    cat.release(first)  # its request is over: now it may go
    await cat.get("tiny-c")
    assert set(cat.loaded_voices()) == {"tiny-b", "tiny-c"}


async def test_a_voice_larger_than_the_whole_budget_is_unavailable(voice_dir: Path) -> None:
    cat = catalog(voice_dir, int(0.5 * SIZE))
    learned(cat, voice_dir)
    with pytest.raises(VoiceUnavailable) as refused:
        await cat.get("tiny-a")
    assert "more than the whole memory budget" in refused.value.message
    assert cat.loads == 0


async def test_the_count_limit_still_holds_without_a_budget(voice_dir: Path) -> None:
    cat = catalog(voice_dir, None, max_loaded=2)
    for name in NAMES:
        await cat.get(name)
    assert list(cat.loaded_voices()) == ["tiny-b", "tiny-c"]


async def test_a_measurement_taken_while_busy_becomes_an_estimate(voice_dir: Path) -> None:
    cat = catalog(voice_dir, None)
    meter = cat._meter
    assert isinstance(meter, FixedMeter)
    meter.busy = True
    voice = await cat.get("tiny-a")
    assert not voice.memory_measured
    assert voice.memory_bytes == cat.budget.estimate(model_bytes(voice_dir), 1)


async def test_an_in_flight_request_keeps_its_voice_until_its_job_ends(voice_dir: Path) -> None:
    """Through the service: a request holds its voice from admission to its job's end."""
    cat = catalog(voice_dir, int(2.5 * SIZE))
    learned(cat, voice_dir)
    service = TTSService(
        Settings(default_voice="tiny-a", workers=1, solo_first_sentence=False), loaded=cat
    )
    service.scheduler.start()
    GatedVoice.gate.clear()
    try:
        admitted = await service.submit(SpeechRequest(text="Hold on.", voice="tiny-a"))
        await cat.get("tiny-b")
        await cat.get("tiny-c")  # would evict tiny-a, the oldest, were it not in use
        assert set(cat.loaded_voices()) == {"tiny-a", "tiny-c"}
        assert cat.in_use(admitted.voice)
        GatedVoice.gate.set()
        await service.scheduler.collect(admitted.job)
        assert not cat.in_use(admitted.voice)  # released when its job ended
        await cat.get("tiny-b")  # tiny-a is idle and the oldest now: it makes room
        assert set(cat.loaded_voices()) == {"tiny-c", "tiny-b"}
    finally:
        await service.stop()


async def test_a_refused_request_releases_its_voice(voice_dir: Path) -> None:
    cat = catalog(voice_dir, None)
    service = TTSService(
        Settings(default_voice="tiny-a", workers=1, solo_first_sentence=False), loaded=cat
    )
    service.scheduler.start()
    try:
        voice = await cat.get("tiny-a")
        service.scheduler.draining = True  # refused at admission, after the voice was held
        with pytest.raises(ShuttingDown):
            await service.submit(SpeechRequest(text="Not now.", voice="tiny-a"))
        assert not cat.in_use(voice)
    finally:
        await service.stop()


# ------------------------------------------------------------------ pieces


def test_to_free_picks_the_oldest_idle_voices_first() -> None:
    budget = MemoryBudget(limit=100)
    loaded = [("a", 40, False), ("b", 30, True), ("c", 20, False), ("d", 10, False)]
    assert budget.to_free(loaded, extra=0, max_count=4) == []
    assert budget.to_free(loaded, extra=20, max_count=4) == ["a"]
    assert budget.to_free(loaded, extra=55, max_count=4) == ["a", "c"]
    assert budget.to_free(loaded, extra=0, max_count=2) == ["a", "c"]
    assert budget.to_free(loaded, extra=100, max_count=4) == ["a", "c", "d"]  # not enough
    assert not budget.fits(30, 100)


def test_estimates_learn_the_largest_session_seen() -> None:
    budget = MemoryBudget(limit=None, session_bytes=10)
    assert budget.estimate(model_bytes=100, sessions=2) == 120
    budget.learn(measured=150, model_bytes=100, sessions=1)
    assert budget.estimate(100, 2) == 200
    budget.learn(measured=120, model_bytes=100, sessions=1)  # smaller: keeps the safe one
    assert budget.session_bytes == 50


def test_holds_count_per_voice() -> None:
    holds: VoiceHolds[str] = VoiceHolds()
    holds.hold("a")
    holds.hold("a")
    holds.release("a")
    assert holds.held("a")
    holds.release("a")
    assert not holds.held("a")
    holds.release("a")  # an extra release never goes below zero
    holds.hold("a")
    assert holds.held("a")


def test_a_load_meter_trusts_only_quiet_loads() -> None:
    readings = iter([100, 350])
    token = [1]
    meter = LoadMeter(resident=lambda: next(readings), quiet=lambda: token[0])
    assert meter.measure(lambda: "voice") == ("voice", 250)

    readings = iter([100, 350])

    def busy_meanwhile() -> str:
        token[0] += 1  # a sentence ran while it loaded
        return "voice"

    assert meter.measure(busy_meanwhile) == ("voice", None)
    meter.quiet = lambda: None  # synthesis running right now
    readings = iter([100, 350])
    assert meter.measure(lambda: "voice")[1] is None


@pytest.mark.parametrize(
    ("text", "size"),
    [(1500000, 1500000), ("512M", 512 * MB), ("1.5G", 1536 * MB), ("800MB", 800 * MB),
     ("2GiB", 2048 * MB), ("64k", 65536)],
)  # fmt: skip
def test_sizes_read_with_units(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "-5M", "1.5X", "", True, None])
def test_sizes_that_make_no_sense_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_the_budget_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_MEMORY_BUDGET", "1.5G")
    assert Settings().memory_budget == 1536 * MB
    monkeypatch.setenv("TTS_MEMORY_BUDGET", "none")
    assert Settings().memory_budget is None
    monkeypatch.setenv("TTS_MEMORY_BUDGET", "1M")  # too small to hold any voice
    with pytest.raises(ValueError, match="memory_budget"):
        Settings()


def async_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


class HeldVoice:
    """A `Synthesizer` whose sentences wait for `gate`; `entered` says one is running."""

    sample_rate = 1000
    has_solo_session = False

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        self.entered.set()
        assert self.gate.wait(30)
        return SentenceAudio(b"\0\0" * 10)


async def test_a_cancelled_job_releases_its_voice_only_when_its_sentence_ends() -> None:
    scheduler = Scheduler(workers=1)
    scheduler.start()
    voice, done = HeldVoice(), []
    try:
        job = scheduler.submit(
            voice, [[1, 2], [3, 4]], SynthesisOptions(), on_done=lambda: done.append(1)
        )
        assert await asyncio.to_thread(voice.entered.wait, 30)
        scheduler.cancel(job)
        assert job.finished and done == []  # its sentence still runs on the voice
        voice.gate.set()
        await eventually(async_true(lambda: done == [1]), 10, "the voice released")
    finally:
        voice.gate.set()
        await asyncio.to_thread(scheduler.stop)


async def test_a_finished_job_releases_its_voice_once() -> None:
    scheduler = Scheduler(workers=2)
    scheduler.start()
    voice, done = HeldVoice(), []
    voice.gate.set()
    try:
        job = scheduler.submit(
            voice, [[1], [2], [3]], SynthesisOptions(), on_done=lambda: done.append(1)
        )
        await scheduler.collect(job)
        assert done == [1]
        empty = scheduler.submit(voice, [], OPTIONS, on_done=lambda: done.append(2))
        assert empty.finished and done == [1, 2]  # nothing to say: over at once
    finally:
        await asyncio.to_thread(scheduler.stop)
