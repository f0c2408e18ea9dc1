"""The published voice list and downloads by name.

`GET /voices/catalog` lists every published voice with whether it is installed here;
`POST /voices/{name}/download` installs one. Downloading writes to the server's disk, so
the route is off unless the server has an API key (which it then requires) or was started
with `--voice-downloads`. The download goes on if the client hangs up; a second request for
the same voice waits for the first download instead of starting another.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tts_service.api.connection import get_service
from tts_service.api.errors import ServiceErrorBody, documented_errors
from tts_service.errors import DownloadsDisabled, ShuttingDown, VoiceNotFound
from tts_service.service import TTSService
from tts_service.voices.loaded import validate_voice_name

router = APIRouter(tags=["voices"])


class CatalogEntry(BaseModel):
    name: str
    language: str = Field(description="Language code, e.g. en_US.")
    language_name: str = Field(description="e.g. English (United States).")
    quality: str
    num_speakers: int
    dataset: str
    size_bytes: int = Field(description="Bytes a download fetches (model and config).")
    aliases: list[str]
    installed: bool


class CatalogList(BaseModel):
    voices: list[CatalogEntry]


class DownloadReport(BaseModel):
    voice: str
    installed: bool
    already_installed: bool = Field(description="It was already there, checked by MD5.")
    fetched_bytes: int


def voice_extras(service: TTSService, name: str) -> dict[str, Any]:
    """What `/voices` adds to an installed voice from the catalog and its defaults."""
    voices = service.voices
    entry = voices.published_voice(name)
    extras: dict[str, Any] = {
        "aliases": list(entry.aliases) if entry is not None and entry.name == name else [],
        "language_name": entry.language.description if entry is not None else None,
    }
    problem = voices.defaults_problem(name)
    if problem is not None:
        extras.update(available=False, error=problem, loaded=False)
    else:
        extras["defaults"] = voices.defaults_for(name).given()
    return extras


@router.get("/voices/catalog", response_model=None, responses={200: {"model": CatalogList}})
async def catalog(request: Request) -> dict[str, Any]:
    """Every published voice that can be downloaded by name, and whether it is installed."""
    listing = await get_service(request).voices.listing()
    installed = set(listing.names)
    return {
        "voices": [
            {**entry.to_dict(), "installed": entry.name in installed} for entry in listing.published
        ]
    }


@router.post(
    "/voices/{name}/download",
    response_model=None,
    responses={
        200: {"model": DownloadReport, "description": "Installed (or already was)."},
        **documented_errors(
            ServiceErrorBody,
            {
                400: "Not a plain voice name.",
                403: "Downloads are off: start the server with --api-key or --voice-downloads.",
                404: "No published voice or alias by that name.",
                413: "A body over max_body_bytes (this route reads none).",
                502: "The download failed (upstream status, size or MD5); nothing installed.",
                503: "The server is shutting down and starts no download.",
            },
        ),
    },
)
async def download(request: Request, name: str) -> dict[str, Any]:
    """Download a published voice (or alias) into the download folder, checked by size and
    MD5; it can be used as soon as this answers."""
    service = get_service(request)
    if not service.settings.downloads_route:
        raise DownloadsDisabled(
            "voice downloads are off: start the server with --api-key (then send it) "
            "or with --voice-downloads"
        )
    validate_voice_name(name)
    if not service.accepting:
        raise ShuttingDown("the server is shutting down and starts no download")
    entry = service.voices.published_voice(name)
    if entry is None:
        raise VoiceNotFound(
            f"voice '{name}' is not in the voice catalog (GET /voices/catalog lists it)"
        )
    result = await service.voices.download(entry)
    return result.to_dict()
