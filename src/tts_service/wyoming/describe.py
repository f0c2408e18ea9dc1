"""What the service offers, as the `info` answer: the one place Wyoming reads the service's
voice lists, so a change in how the service lists its voices is made here alone."""

from __future__ import annotations

from wyoming.info import Info

from tts_service.service import TTSService
from tts_service.wyoming.info import build_info


async def service_info(service: TTSService) -> Info:
    """Installed voices (after a rescan, so a voice just copied in is offered), then, when
    missing voices are downloaded, the published ones not installed."""
    listing = await service.voices.listing()
    published = listing.published
    downloadable = listing.downloadable() if service.settings.download_missing else []
    return build_info(listing.infos, published, downloadable)
