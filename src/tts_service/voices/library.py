"""The one face of `voices/`: what the service and the transports ask about voices.

It assembles the voice folders, the loaded voices, the defaults, the published list, the
downloads and the lookup, and answers in their place, so no caller reaches into them.
A listing (`/voices`, `/voices/catalog`, OpenAI's voice and model lists, Wyoming's `info`)
starts with a look at the folders, so a voice just copied in or removed shows at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from tts_service.config import Settings
from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.devices import Device
from tts_service.engine.voice import Voice, VoiceInfo
from tts_service.voices.budget import LoadMeter
from tts_service.voices.defaults import DefaultsBook, VoiceDefaults
from tts_service.voices.downloads import Downloader, DownloadResult, VoiceDownloads
from tts_service.voices.folders import VoiceFolders
from tts_service.voices.lexicons import LexiconBook
from tts_service.voices.loaded import LoadedVoices
from tts_service.voices.lookup import VoiceLookup
from tts_service.voices.published import CatalogSource, CatalogVoice, PiperCatalog
from tts_service.voices.stamps import Stamp


class VoiceListing:
    """The installed voices as a fresh look at the folders found them. Descriptions and
    the published list are read when first asked for, then kept for this listing."""

    def __init__(self, loaded: LoadedVoices, published: CatalogSource) -> None:
        self._loaded = loaded
        self._source = published
        self.names: list[str] = loaded.names
        """Every installed voice, broken ones included, sorted."""

    @cached_property
    def infos(self) -> list[VoiceInfo]:
        """Every voice whose config reads; broken ones are in `problems`."""
        return self._loaded.infos()

    @cached_property
    def problems(self) -> dict[str, str]:
        """Installed voices whose config is broken, each with the message a request gets."""
        return self._loaded.problems()

    @cached_property
    def published(self) -> PiperCatalog:
        return self._source.current()

    def downloadable(self) -> list[CatalogVoice]:
        """Published voices that are not installed here."""
        installed = set(self.names)
        return [entry for entry in self.published if entry.name not in installed]


def chunk_plan(settings: Settings) -> ChunkPlan | None:
    """How voices decode in chunks (None: whole sentences only)."""
    if not settings.chunked_decoding:
        return None
    left, right = settings.chunk_margins
    return ChunkPlan(left, right, tuple(settings.chunk_frames))


class VoiceLibrary:
    def __init__(
        self,
        settings: Settings,
        device: Device,
        *,
        solo_threads: int | None,
        meter: LoadMeter,
        retry_after: Callable[[], int],
        loaded: LoadedVoices | None = None,
    ) -> None:
        self.folders = VoiceFolders(
            settings.voice_folders, settings.rescan_interval, quiet=[settings.download_dir]
        )
        self.loaded = loaded or LoadedVoices(
            self.folders.last.voices,
            threads_per_session=settings.threads_per_worker,
            max_loaded=settings.max_loaded_voices,
            spin=settings.worker_count * settings.threads_per_worker <= settings.core_count,
            solo_threads=solo_threads,
            alignments=settings.word_timestamps,
            memory_budget=settings.memory_budget,
            meter=meter,
            retry_after=retry_after,
            device=device,
            chunking=chunk_plan(settings),
            split_cache=settings.split_cache_dir,
        )
        self.defaults = DefaultsBook(settings.voice_defaults)
        self.lexicons = LexiconBook(settings.voice_folders)
        if loaded is None:  # loaded voices handed in (tests) are kept as they are
            self.folders.bind(self.loaded, self.defaults)
        else:
            self.defaults.use_files(self.folders.last.defaults)
        self.published = CatalogSource(settings.catalog, settings.download_dir)
        self.downloads = VoiceDownloads(Downloader(settings.voices_url), settings.download_dir)
        self.lookup = VoiceLookup(
            settings, self.loaded, self.folders, self.published, self.downloads
        )

    # ------------------------------------------------------------------- listings

    async def listing(self) -> VoiceListing:
        """The installed voices after a look at the folders (at most once per
        rescan_interval, shared with concurrent callers)."""
        await self.folders.rescan()
        return VoiceListing(self.loaded, self.published)

    def loaded_names(self) -> list[str]:
        """The installed voices in memory now, by name."""
        return [name for name in self.loaded.names if self.loaded.is_loaded(name)]

    def loaded_voice(self, name: str) -> Voice | None:
        """The voice if it is in memory now (nothing is loaded by asking)."""
        return self.loaded.loaded(name)

    def loaded_voices(self) -> dict[str, Voice]:
        """The voices in memory, least recently used first."""
        return self.loaded.loaded_voices()

    @property
    def memory_bytes(self) -> int:
        """What the loaded voices take together, as measured when each loaded."""
        return self.loaded.memory_bytes

    @property
    def budget_bytes(self) -> int | None:
        """The most the loaded voices may take together (None: no budget)."""
        return self.loaded.budget.limit

    def stamps(self, voice: Voice) -> tuple[Stamp, Stamp] | None:
        """The voice's model and config stamps from its load, while its files still have
        them (see `LoadedVoices.stamps`)."""
        return self.loaded.stamps(voice)

    @property
    def loads(self) -> int:
        """How many times a model was loaded: each leaves freed memory behind."""
        return self.loaded.loads

    def defaults_for(self, name: str) -> VoiceDefaults:
        """The voice's defaults; VoiceUnavailable when its defaults file is broken."""
        return self.defaults.for_voice(name)

    def defaults_problem(self, name: str) -> str | None:
        """Why the voice's defaults file is unusable, or None when it is fine or absent."""
        return self.defaults.problem(name)

    def published_voice(self, name: str) -> CatalogVoice | None:
        """The published voice `name` names (directly or as an alias), if any."""
        return self.published.current().get(name)

    # ------------------------------------------------------------------- use

    async def find(
        self, requested: str, within: float | None = None, hold: bool = False
    ) -> tuple[Voice, float]:
        """The loaded voice for a request's name (see `VoiceLookup.find`), and the seconds
        spent waiting for its download. `hold`: kept loaded until `release(voice)`."""
        return await self.lookup.find(requested, within, hold=hold)

    async def voice(self, requested: str) -> Voice:
        """The loaded voice for a name, as a request would find it."""
        return await self.lookup.voice(requested)

    async def acquire(self, name: str) -> Voice:
        """The installed voice `name`, loaded and held until `release(voice)`."""
        return await self.loaded.acquire(name)

    def release(self, voice: Voice) -> None:
        """A request is done with the voice (callable from any thread)."""
        self.loaded.release(voice)

    async def download(self, entry: CatalogVoice) -> DownloadResult:
        """Download (or find already installed) and make it known at once."""
        return await self.lookup.download(entry)

    async def watch(self) -> None:
        """Rescan the folders in the background every interval until cancelled."""
        await self.folders.watch()

    def close(self) -> None:
        """Stop the downloads' client."""
        self.downloads.close()
