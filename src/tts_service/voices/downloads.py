"""Download published voices by name into a folder: checked, atomic, resumable, one at a time.

Each file goes to a hidden `.FILE.part` beside its final place, is checked against the
catalog's size (a larger answer is refused as it arrives) and MD5, and only then renamed:
a voice is installed (both `NAME.onnx` and `NAME.onnx.json` present) only once both
files are whole. An interrupted transfer leaves its `.part`, which the next attempt
continues with an HTTP range request; a part that turns out wrong is deleted. A lock file
per voice makes a second downloader, in this process or another, wait and then find the
voice installed instead of fetching it again. The optional `MODEL_CARD` is fetched when
the repository has it and never fails a download.

`VoiceDownloads` runs these in threads for the server: off the event loop, at most a few
at once, and callers asking for the same voice share one download.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx

from tts_service import __version__
from tts_service.errors import DownloadFailed
from tts_service.voices.progress import NoProgress, Progress
from tts_service.voices.published import (
    DEFAULT_BASE_URL,
    MODEL_CARD,
    CatalogError,
    CatalogFile,
    CatalogVoice,
    PiperCatalog,
    dump_catalog,
    parse_catalog,
)

log = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
"""No byte for 30 s ends a transfer (it can be resumed)."""
MAX_CONCURRENT_DOWNLOADS = 2
MAX_CATALOG_BYTES = 20_000_000
"""The published list is ~250 kB; anything near this size is not it."""


@dataclass(frozen=True)
class DownloadResult:
    name: str
    folder: Path
    fetched_bytes: int
    """Bytes transferred by this call (0 when the voice was already installed)."""
    already_installed: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "voice": self.name,
            "installed": True,
            "already_installed": self.already_installed,
            "fetched_bytes": self.fetched_bytes,
        }


def file_url(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(path)}"


def installed_paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.onnx", folder / f"{name}.onnx.json"


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(path: Path, expected: CatalogFile) -> bool:
    """The file is there with the published size and MD5."""
    try:
        if path.stat().st_size != expected.size_bytes:
            return False
    except OSError:
        return False
    return md5_of(path) == expected.md5_digest


def is_installed(voice: CatalogVoice, folder: Path) -> bool:
    return _published(voice, *installed_paths(folder, voice.name))


def _published(voice: CatalogVoice, model: Path, config: Path) -> bool:
    return matches(config, voice.config) and matches(model, voice.model)


@contextlib.contextmanager
def voice_lock(folder: Path, name: str, on_wait: Callable[[], None] | None) -> Iterator[None]:
    """Hold this voice's lock file in `folder` (shared by every process using it)."""
    with open(folder / f".{name}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Restart(Exception):
    """The server ignored or refused the range: fetch the file from its start."""


class Downloader:
    """Fetches voices from `base_url` laid out like the piper-voices repository."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        progress: Progress | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._progress = progress or NoProgress()
        self._transport = transport

    def download(
        self,
        voice: CatalogVoice,
        folder: Path,
        force: bool = False,
        on_wait: Callable[[], None] | None = None,
        installed: tuple[Path, Path] | None = None,
    ) -> DownloadResult:
        """Install `voice` in `folder`; DownloadFailed leaves nothing that looks installed.

        Nothing is fetched (unless `force`) when `folder` already has the published files,
        or when `installed`, the (model, config) a voice of that name has now wherever it
        is (the bundled voice is the published en_US-joe-medium), are the published ones."""
        if not force and installed is not None and _published(voice, *installed):
            return DownloadResult(voice.name, installed[0].parent, 0, already_installed=True)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with voice_lock(folder, voice.name, on_wait):
                if not force and is_installed(voice, folder):
                    return DownloadResult(voice.name, folder, 0, already_installed=True)
                return self._download(voice, folder)
        except OSError as error:
            raise DownloadFailed(
                f"voice '{voice.name}': cannot write to the download folder "
                f"({error.strerror or type(error).__name__})",
                voice=voice.name,
            ) from error

    def _download(self, voice: CatalogVoice, folder: Path) -> DownloadResult:
        with self._client() as client:
            fetched = 0
            parts: list[tuple[Path, Path]] = []
            for item in (voice.model, voice.config):
                part, count = self._fetch(client, voice, item, folder)
                parts.append((part, folder / item.file_name))
                fetched += count
            card = voice.file(MODEL_CARD)
            if card is not None:
                fetched += self._fetch_card(client, voice, card, folder)
        config = installed_paths(folder, voice.name)[1]
        config.unlink(missing_ok=True)  # never an old config beside the new model
        for part, final in parts:  # the config last: the voice appears whole or not at all
            os.replace(part, final)
        _sync_folder(folder)
        log.info("installed voice %s in %s (%d bytes fetched)", voice.name, folder, fetched)
        return DownloadResult(voice.name, folder, fetched)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            follow_redirects=True,
            timeout=TIMEOUT,
            transport=self._transport,
            headers={"User-Agent": f"tts-service/{__version__}"},
        )

    def _fetch(
        self, client: httpx.Client, voice: CatalogVoice, item: CatalogFile, folder: Path
    ) -> tuple[Path, int]:
        """Bring `item` to a checked `.part` file; (its path, bytes transferred)."""
        part = folder / f".{item.file_name}.part"
        for attempt in range(2):
            try:
                fetched = self._transfer(client, voice, item, part, resume=attempt == 0)
                break
            except _Restart:
                part.unlink(missing_ok=True)
        else:  # pragma: no cover - the second attempt never resumes, so never restarts
            raise DownloadFailed(f"voice '{voice.name}': {item.file_name} could not be fetched")
        if md5_of(part) != item.md5_digest:
            part.unlink(missing_ok=True)
            raise DownloadFailed(
                f"voice '{voice.name}': {item.file_name} does not have the published MD5 "
                f"digest {item.md5_digest}; nothing was installed",
                voice=voice.name,
                file=item.file_name,
            )
        return part, fetched

    def _transfer(
        self,
        client: httpx.Client,
        voice: CatalogVoice,
        item: CatalogFile,
        part: Path,
        resume: bool,
    ) -> int:
        """Append to (or start) `part` until it has `item.size_bytes` bytes."""
        have = part.stat().st_size if resume and part.exists() else 0
        if have > item.size_bytes:
            raise _Restart
        if have == item.size_bytes and part.exists():
            if md5_of(part) == item.md5_digest:
                return 0
            raise _Restart
        url = file_url(self.base_url, item.path)
        headers = {"Range": f"bytes={have}-"} if have else {}
        fail = partial(_failure, voice.name, item.file_name)
        try:
            with client.stream("GET", url, headers=headers) as response:
                if have and response.status_code in (200, 416):
                    raise _Restart  # no range support, or our part is not theirs
                if response.status_code not in (200, 206):
                    raise fail(f"{url} answered HTTP {response.status_code}", delete=part)
                if response.status_code == 206 and _range_start(response) != have:
                    raise _Restart
                _check_length(response, have, item, fail, part)
                return self._receive(response, part, have, item, fail)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            raise fail(f"could not be fetched: {url} cannot be reached ({error})") from error
        except httpx.TransportError as error:
            raise fail(
                f"the transfer from {url} was interrupted ({type(error).__name__}); "
                "run the download again to resume it"
            ) from error

    def _receive(
        self,
        response: httpx.Response,
        part: Path,
        have: int,
        item: CatalogFile,
        fail: Callable[..., DownloadFailed],
    ) -> int:
        received = 0
        self._progress.start(item.file_name, item.size_bytes, have)
        with open(part, "ab" if have else "wb") as out:
            # As it arrives (no re-chunking buffer), so an interrupted transfer keeps
            # every byte it got for the next attempt to resume from.
            for chunk in response.iter_bytes():
                if have + received + len(chunk) > item.size_bytes:
                    out.close()
                    raise fail(f"is larger than the published {item.size_bytes} bytes", part)
                out.write(chunk)
                received += len(chunk)
                self._progress.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        self._progress.finish()
        if have + received != item.size_bytes:
            raise fail(
                f"ended after {have + received} of its {item.size_bytes} bytes (truncated)",
                part,
            )
        return received

    def _fetch_card(
        self, client: httpx.Client, voice: CatalogVoice, card: CatalogFile, folder: Path
    ) -> int:
        """The model card, beside the voice as `NAME.MODEL_CARD`; any problem is only logged."""
        try:
            part, fetched = self._fetch(client, voice, card, folder)
        except DownloadFailed as error:
            log.info("voice %s: no model card (%s)", voice.name, error.message)
            (folder / f".{card.file_name}.part").unlink(missing_ok=True)
            return 0
        os.replace(part, folder / f"{voice.name}.{MODEL_CARD}")
        return fetched


def _failure(name: str, file_name: str, what: str, delete: Path | None = None) -> DownloadFailed:
    """The error for one file; `delete` is a part that must not be resumed."""
    if delete is not None:
        delete.unlink(missing_ok=True)
    message = f"voice '{name}': {file_name} {what}; nothing was installed"
    return DownloadFailed(message, voice=name, file=file_name)


def _check_length(
    response: httpx.Response,
    have: int,
    item: CatalogFile,
    fail: Callable[..., DownloadFailed],
    part: Path,
) -> None:
    """Refuse before reading a body the server says is not the published file."""
    declared = response.headers.get("Content-Length")
    if declared is None or not declared.isdigit():
        return
    if have + int(declared) != item.size_bytes:
        total = have + int(declared)
        raise fail(f"is {total} bytes upstream, not the published {item.size_bytes}", part)


def _range_start(response: httpx.Response) -> int | None:
    """Where a 206 answer starts (`Content-Range: bytes START-END/TOTAL`)."""
    unit, _, spec = response.headers.get("Content-Range", "").partition(" ")
    start = spec.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _sync_folder(folder: Path) -> None:
    """Make the renames durable (a crash right after must not lose or half-show them)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def refresh_catalog(
    url: str, output: Path, transport: httpx.BaseTransport | None = None
) -> PiperCatalog:
    """Fetch the upstream `voices.json`, check every entry, and write the trimmed list to
    `output` atomically (a temp file renamed over it). DownloadFailed leaves it untouched."""
    try:
        with httpx.Client(follow_redirects=True, timeout=TIMEOUT, transport=transport) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise DownloadFailed(f"{url} answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    body += chunk
                    if len(body) > MAX_CATALOG_BYTES:
                        raise DownloadFailed(f"{url} is over {MAX_CATALOG_BYTES} bytes")
    except httpx.HTTPError as error:
        raise DownloadFailed(f"fetching {url} failed ({type(error).__name__})") from error
    try:
        catalog = parse_catalog(json.loads(body))
    except (CatalogError, ValueError) as error:
        raise DownloadFailed(f"the voice list at {url} is not usable: {error}") from error
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.part")
    temporary.write_text(dump_catalog(catalog), encoding="utf-8")
    os.replace(temporary, output)
    return catalog


class VoiceDownloads:
    """Downloads for the server: in their own threads (never on the event loop), at most
    `MAX_CONCURRENT_DOWNLOADS` at once, one per voice; concurrent callers share it, and a
    caller that gives up (a client hanging up, a deadline) leaves it running for the rest."""

    def __init__(self, downloader: Downloader, folder: Path) -> None:
        self.downloader = downloader
        self.folder = folder
        self._executor = ThreadPoolExecutor(
            max_workers=MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="download"
        )
        self._running: dict[str, asyncio.Task[DownloadResult]] = {}

    @property
    def running(self) -> list[str]:
        return sorted(self._running)

    async def fetch(
        self, voice: CatalogVoice, installed: tuple[Path, Path] | None = None
    ) -> DownloadResult:
        """Download `voice` (see `Downloader.download` for `installed`), or join the
        download of it already under way."""
        task = self._running.get(voice.name)
        if task is None:
            log.info("downloading voice %s (%d bytes)", voice.name, voice.download_bytes)
            running = self._run(voice, installed)
            task = asyncio.create_task(running, name=f"download voice {voice.name}")
            task.add_done_callback(partial(self._settled, voice.name))
            self._running[voice.name] = task
        else:
            log.info("voice %s: a download is already under way; waiting for it", voice.name)
        return await asyncio.shield(task)

    async def _run(
        self, voice: CatalogVoice, installed: tuple[Path, Path] | None
    ) -> DownloadResult:
        loop = asyncio.get_running_loop()
        download = partial(self.downloader.download, voice, self.folder, installed=installed)
        return await loop.run_in_executor(self._executor, download)

    def _settled(self, name: str, task: asyncio.Task[DownloadResult]) -> None:
        if self._running.get(name) is task:
            del self._running[name]
        if not task.cancelled() and task.exception() is not None:
            log.warning("download of voice %s failed: %s", name, task.exception())

    def close(self) -> None:
        """Stop taking downloads; one under way ends at its next chunk or timeout."""
        self._executor.shutdown(wait=False, cancel_futures=True)
