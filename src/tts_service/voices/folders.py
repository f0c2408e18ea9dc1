"""Live voice folders: voices added, changed or removed on disk are seen without a restart.

The folders are scanned again (in a thread: a network share may be slow) every
`rescan_interval` seconds in the background, and sooner when someone looks (the voice list,
Wyoming `describe`, a name that is not installed), but never more often than that
interval. A changed or removed voice leaves the loaded-voice cache; requests that already
hold it finish with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tts_service.voices.defaults import DEFAULTS_SUFFIX, DefaultsBook
from tts_service.voices.loaded import LoadedVoices, VoiceFiles, discover
from tts_service.voices.stamps import Stamp, file_stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FolderScan:
    voices: dict[str, VoiceFiles]
    stamps: dict[str, tuple[Stamp, Stamp]] = field(default_factory=dict)
    """Voice name -> (model, config) modification stamps."""
    defaults: dict[str, Path] = field(default_factory=dict)
    """Voice name -> its defaults file."""

    def changed_since(self, before: FolderScan) -> tuple[set[str], set[str], set[str]]:
        """(added, changed, removed) voice names."""
        added = set(self.voices) - set(before.voices)
        removed = set(before.voices) - set(self.voices)
        changed = {
            name
            for name in set(self.voices) & set(before.voices)
            if self.voices[name] != before.voices[name]
            or self.stamps.get(name) != before.stamps.get(name)
        }
        return added, changed, removed


def scan(folders: Iterable[Path]) -> FolderScan:
    """The bundled voice and every folder's voices and defaults files; later folders win.
    Folders that do not exist are skipped (the caller reports them)."""
    existing = [folder for folder in folders if folder.is_dir()]
    voices = discover(existing)
    stamps = {name: (file_stamp(f.model), file_stamp(f.config)) for name, f in voices.items()}
    defaults: dict[str, Path] = {}
    for folder in existing:
        for path in sorted(folder.glob(f"*{DEFAULTS_SUFFIX}")):
            defaults[path.name.removesuffix(DEFAULTS_SUFFIX)] = path
    return FolderScan(voices, stamps, defaults)


class VoiceFolders:
    """Keeps the loaded voices and the defaults book in step with the folders on disk."""

    def __init__(self, folders: list[Path], interval: float, quiet: Iterable[Path] = ()) -> None:
        self.folders = folders
        self.interval = interval
        """Least seconds between scans; 0: only at start and after a download."""
        self._quiet = set(quiet)  # may not exist yet (the download folder): no warning
        self._warned: set[Path] = set()
        self.last = self._scan()
        self._scanned_at = time.monotonic()
        self._loaded: LoadedVoices | None = None
        self._defaults: DefaultsBook | None = None
        self._scanning: asyncio.Task[None] | None = None
        self.scans = 1

    def bind(self, loaded: LoadedVoices, defaults: DefaultsBook) -> None:
        self._loaded, self._defaults = loaded, defaults
        defaults.use_files(self.last.defaults)

    def _scan(self) -> FolderScan:
        for folder in self.folders:
            missing = not folder.is_dir()
            if missing and folder not in self._quiet and folder not in self._warned:
                log.warning("voice folder %s does not exist", folder)
                self._warned.add(folder)
            elif not missing:
                self._warned.discard(folder)
        return scan(self.folders)

    async def rescan(self, force: bool = False) -> None:
        """Scan now if the last scan is older than the interval; concurrent callers share
        one scan. `force` (after a download) scans regardless, and after any scan that
        was already under way, which may have listed the folder too early."""
        running = self._scanning
        if running is not None:
            await asyncio.shield(running)
            if not force:
                return
        elif not force:
            age = time.monotonic() - self._scanned_at
            if self.interval <= 0 or age < self.interval:
                return
        if self._scanning is None:
            self._scanning = asyncio.create_task(self._rescan(), name="scan voice folders")
        await asyncio.shield(self._scanning)

    async def _rescan(self) -> None:
        try:
            found = await asyncio.to_thread(self._scan)
            self.apply(found)
        finally:
            self._scanned_at = time.monotonic()
            self._scanning = None
            self.scans += 1

    def apply(self, found: FolderScan) -> None:
        added, changed, removed = found.changed_since(self.last)
        self.last = found
        if added or changed or removed:
            log.info(
                "voice folders: added %s; changed %s; removed %s",
                ", ".join(sorted(added)) or "none",
                ", ".join(sorted(changed)) or "none",
                ", ".join(sorted(removed)) or "none",
            )
        if self._loaded is not None:
            self._loaded.update(found.voices, changed)
        if self._defaults is not None:
            self._defaults.use_files(found.defaults)

    async def watch(self) -> None:
        """Rescan in the background every interval until cancelled."""
        if self.interval <= 0:
            return
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.rescan()
            except Exception:  # a folder that cannot be read now may be readable later
                log.exception("scanning the voice folders failed")
