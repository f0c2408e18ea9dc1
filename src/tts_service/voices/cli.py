"""`tts-service voices [download NAME... | catalog | refresh-catalog]`: installed voices,
the published list, downloads by name (with a progress bar on a terminal)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tts_service.config import Settings
from tts_service.errors import ServiceError, VoiceNotFound
from tts_service.voices.downloads import Downloader, refresh_catalog
from tts_service.voices.folders import scan
from tts_service.voices.loaded import LoadedVoices
from tts_service.voices.progress import TextProgress
from tts_service.voices.published import CATALOG_FILE_NAME, CatalogSource, CatalogVoice


def _place_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an absent flag leaves what `voices --download-dir X download` set.
    hidden = argparse.SUPPRESS
    parser.add_argument(
        "--download-dir", type=Path, default=hidden, help="where downloaded voices go"
    )
    parser.add_argument(
        "--catalog", type=Path, default=hidden, help="the published voice list to use"
    )
    parser.add_argument(
        "--voices-url", default=hidden, help="base URL of the voice repository (or a mirror)"
    )


def add_voice_commands(voices: argparse.ArgumentParser) -> None:
    voices.add_argument("--json", action="store_true")
    commands = voices.add_subparsers(dest="voices_command")
    download = commands.add_parser("download", help="download published voices by name")
    download.add_argument("names", nargs="+", metavar="NAME", help="voice name or alias")
    download.add_argument("--force", action="store_true", help="fetch even if installed")
    _place_flags(download)
    catalog = commands.add_parser("catalog", help="list the published voices")
    catalog.add_argument("--json", action="store_true")
    catalog.add_argument("--language", help="only this language (en, en_GB, ...)")
    _place_flags(catalog)
    refresh = commands.add_parser("refresh-catalog", help="fetch the latest published list")
    refresh.add_argument("--url", help="the voices.json to fetch (default: VOICES_URL/voices.json)")
    refresh.add_argument("--output", type=Path, help="where to write it")
    _place_flags(refresh)


def run_voices(settings: Settings, args: argparse.Namespace) -> int:
    command = getattr(args, "voices_command", None)
    if command == "download":
        return download(settings, args.names, args.force)
    if command == "catalog":
        return list_catalog(settings, args.json, args.language)
    if command == "refresh-catalog":
        return refresh(settings, args.url, args.output)
    return list_installed(settings, args.json)


def list_installed(settings: Settings, as_json: bool) -> int:
    installed = LoadedVoices(scan(settings.voice_folders).voices, 1, 1)
    infos = installed.infos()
    if as_json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    for info in infos:
        marker = "*" if info.name == settings.default_voice else " "
        speakers = f", {info.num_speakers} speakers" if info.num_speakers > 1 else ""
        details = f"{info.language}, {info.sample_rate} Hz, {info.quality}{speakers}"
        print(f"{marker} {info.name}  ({details})")
    return 0


def _entries(settings: Settings, names: list[str]) -> list[CatalogVoice]:
    """Every name in the published list, or a 404 naming the ones that are not."""
    published = CatalogSource(settings.catalog, settings.download_dir).current()
    found = {name: published.get(name) for name in names}
    missing = [name for name, entry in found.items() if entry is None]
    if missing:
        raise VoiceNotFound(
            f"not in the voice catalog: {', '.join(missing)} "
            "(`tts-service voices catalog` lists the published voices)"
        )
    return [entry for entry in found.values() if entry is not None]


def download(settings: Settings, names: list[str], force: bool) -> int:
    """Download each voice; go on after a failure, exit with the first failure's code."""
    entries = _entries(settings, names)
    downloader = Downloader(settings.voices_url, TextProgress(sys.stderr))
    found = scan(settings.voice_folders).voices
    failed: ServiceError | None = None
    for entry in entries:
        files = found.get(entry.name)
        installed = (files.model, files.config) if files is not None else None

        def waiting(name: str = entry.name) -> None:
            print(f"{name}: another download of it is under way; waiting", file=sys.stderr)

        try:
            result = downloader.download(
                entry, settings.download_dir, force, on_wait=waiting, installed=installed
            )
        except ServiceError as error:
            print(f"tts-service: {error.message}", file=sys.stderr)
            failed = failed or error
            continue
        state = "already installed" if result.already_installed else "installed"
        print(f"{entry.name}: {state} in {result.folder}")
    return failed.exit_code if failed is not None else 0


def list_catalog(settings: Settings, as_json: bool, language: str | None) -> int:
    published = CatalogSource(settings.catalog, settings.download_dir).current()
    installed = set(scan(settings.voice_folders).voices)
    wanted = (language or "").lower().replace("-", "_")
    rows = [
        {**entry.to_dict(), "installed": entry.name in installed}
        for entry in published
        if wanted in ("", entry.language.code.lower(), entry.language.family.lower())
    ]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        mark = "*" if row["installed"] else " "
        size = f"{row['size_bytes'] / 1_000_000:.0f} MB"
        print(f"{mark} {row['name']}  ({row['language_name']}, {row['quality']}, {size})")
    return 0


def refresh(settings: Settings, url: str | None, output: Path | None) -> int:
    source = url or f"{settings.voices_url}/voices.json"
    target = output or settings.catalog or settings.download_dir / CATALOG_FILE_NAME
    previous = CatalogSource(settings.catalog, settings.download_dir).current()
    before = {entry.name for entry in previous}
    catalog = refresh_catalog(source, target)
    added = len(set(catalog.voices) - before)
    removed = len(before - set(catalog.voices))
    print(f"{len(catalog)} voices ({added} new, {removed} gone) written to {target}")
    return 0
