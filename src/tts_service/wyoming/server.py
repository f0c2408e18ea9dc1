"""The Wyoming server: listens on a URI and hands each connection its own handler."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlparse

from wyoming.server import AsyncServer

from tts_service.service import TTSService
from tts_service.wyoming.handler import WyomingHandler

log = logging.getLogger(__name__)


def _server_for(uri: str) -> AsyncServer:
    """The library's server for `tcp://HOST:PORT` or `unix://PATH`; any other URI is a
    ValueError."""
    if urlparse(uri).scheme not in ("tcp", "unix"):
        raise ValueError(f"wyoming_uri must be tcp://HOST:PORT or unix://PATH (got {uri!r})")
    return AsyncServer.from_uri(uri)


class WyomingServer:
    """Serves Wyoming on `uri` in the running event loop until `stop()`."""

    def __init__(self, service: TTSService, uri: str) -> None:
        self.service = service
        self.uri = uri
        self._server = _server_for(uri)
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self._server.start(self._handler)
        log.info("serving Wyoming on %s", self.uri)

    async def stop(self, grace: float = 5.0) -> None:
        """Close every connection (cancelling its work) and stop listening."""
        await self._server.stop()
        if self._connections:
            await asyncio.wait(set(self._connections), timeout=grace)

    def _handler(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> WyomingHandler:
        return WyomingHandler(reader, writer, self.service, self._connections)
