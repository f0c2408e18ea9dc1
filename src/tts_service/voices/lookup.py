"""From the name a request gives to an installed voice.

In order: an installed voice of that name; the same after a (rate-limited) rescan of the
voice folders; a published alias of an installed voice; a language alone (see
`voice_names`); with `download_missing`, a published voice (or alias) downloaded now, the
request waiting for it within its deadline while other requests are served. Anything else
is a 404 that says how to get the voice when the published list has it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tts_service.config import Settings
from tts_service.engine.voice import Voice
from tts_service.errors import DeadlineExceeded, VoiceNotFound
from tts_service.voices.downloads import DownloadResult, VoiceDownloads
from tts_service.voices.folders import VoiceFolders
from tts_service.voices.loaded import LoadedVoices, validate_voice_name
from tts_service.voices.names import is_language, voice_for_language
from tts_service.voices.published import CatalogSource, CatalogVoice

log = logging.getLogger(__name__)


class VoiceLookup:
    def __init__(
        self,
        settings: Settings,
        loaded: LoadedVoices,
        folders: VoiceFolders,
        published: CatalogSource,
        downloads: VoiceDownloads,
    ) -> None:
        self.settings = settings
        self.loaded = loaded
        self.folders = folders
        self.published = published
        self.downloads = downloads

    def installed_name(self, requested: str) -> str | None:
        """The installed voice `requested` names, directly or as a published alias."""
        names = self.loaded.names
        if requested in names:
            return requested
        entry = self.published.current().get(requested)
        if entry is not None and entry.name in names:
            return entry.name
        return None

    async def find(
        self, requested: str, within: float | None = None, hold: bool = False
    ) -> tuple[Voice, float]:
        """The loaded voice for `requested`, and the seconds spent waiting for it to
        download (which count against the request's deadline). `hold`: the voice is not
        evicted until `loaded.release(voice)`."""
        started = time.monotonic()
        name, downloaded = await self._name_for(requested, within)
        waited = time.monotonic() - started if downloaded else 0.0
        voice = await (self.loaded.acquire(name) if hold else self.loaded.get(name))
        return voice, waited

    async def voice(self, requested: str, within: float | None = None) -> Voice:
        return (await self.find(requested, within))[0]

    async def _name_for(self, requested: str, within: float | None) -> tuple[str, bool]:
        """The installed voice for `requested` and whether it was downloaded for it now;
        VoiceNotFound when there is none, DeadlineExceeded when a download outlasts
        `within` seconds."""
        validate_voice_name(requested)
        found = self.installed_name(requested)
        if found is None:
            await self.folders.rescan()
            found = self.installed_name(requested)
        if found is not None:
            return found, False
        if is_language(requested):
            name = voice_for_language(self.loaded.infos(), self.settings.default_voice, requested)
            return name, False
        entry = self.published.current().get(requested)
        if entry is None:
            raise VoiceNotFound(
                f"voice '{requested}' is not installed", available=self.loaded.names
            )
        if not self.settings.download_missing:
            raise VoiceNotFound(
                f"voice '{requested}' is not installed; it is in the voice catalog: "
                f"download it with `tts-service voices download {entry.name}` or "
                f"POST /voices/{entry.name}/download, or serve with --download-missing",
                available=self.loaded.names,
            )
        await self._download_within(entry, within)
        return entry.name, True

    async def download(self, entry: CatalogVoice) -> DownloadResult:
        """Download (or find already installed) and make it known at once."""
        files = self.folders.last.voices.get(entry.name)
        installed = (files.model, files.config) if files is not None else None
        result = await self.downloads.fetch(entry, installed)
        await self.folders.rescan(force=True)
        return result

    async def _download_within(self, entry: CatalogVoice, within: float | None) -> None:
        # The download goes on after a deadline: the next request finds the voice.
        try:
            async with asyncio.timeout(within):
                await self.download(entry)
        except TimeoutError:
            raise DeadlineExceeded(
                f"voice '{entry.name}' is still downloading ({entry.download_bytes} bytes); "
                "ask again shortly"
            ) from None
        if self.installed_name(entry.name) is None:  # e.g. shadowed by a broken scan
            raise VoiceNotFound(
                f"voice '{entry.name}' was downloaded but is not in the voice folders",
                available=self.loaded.names,
            )
