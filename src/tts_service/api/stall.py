"""Bound how long one send may wait for the client: a reader that takes nothing for
`stall_timeout` seconds has its connection closed, so it holds no task, no buffer and no
slot for longer than that (the scheduler frees the slot itself; this frees the rest).

Pure ASGI, so HTTP responses and WebSocket messages share it. Bodies go out in slices
(api/streaming.py), so a send that waits this long means the client read nothing at all.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class _Stalled(Exception):
    """Raised inside the app by a send that waited too long; ends the app's call."""


class StallGuardMiddleware:
    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def bounded_send(message: Message) -> None:
            try:
                async with asyncio.timeout(self.timeout):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await self.app(scope, receive, bounded_send)
        except _Stalled:
            # Returning with the response unfinished makes the server close the connection.
            log.info(
                "client at %s took nothing for %g s on %s: connection closed",
                (scope.get("client") or ("?",))[0],
                self.timeout,
                scope.get("path"),
            )
