"""The socket side of speech contexts, shared by every protocol that has them: messages
sent one at a time whatever context they come from, the read loop, and idleness (a
context with no text and nothing to say for idle_timeout is ended with an error; a
socket that sends nothing while nothing is spoken is closed, as the other sockets are)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from tts_service.api.contexts import ContextHub
from tts_service.errors import IdleTimeout

IDLE_CLOSE_CODE = 1000
_TICK = 1.0  # seconds between idleness checks while the socket is quiet


class SocketSender:
    """Sends whole JSON messages one after another (contexts speak concurrently)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self._lock:
            if self.websocket.application_state != WebSocketState.CONNECTED:
                return  # the client went away: what it can no longer hear is dropped
            try:
                await self.websocket.send_json(message)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # closed meanwhile; the read loop ends the socket

    async def close(self, code: int, reason: str) -> None:
        async with self._lock:
            if self.websocket.application_state == WebSocketState.CONNECTED:
                await self.websocket.close(code, reason)


async def _end_idle_contexts(hub: ContextHub, idle: float) -> None:
    for context in hub.idle_contexts(idle):
        await context.cancel(IdleTimeout(f"context {context.id!r} got no text for {idle:g} s"))


Handler = Callable[[str], Awaitable[bool]]
"""Handles one text message; False ends the socket (the handler closed it)."""


async def read_loop(
    websocket: WebSocket,
    hub: ContextHub,
    handle: Handler,
    idle: float,
    on_idle: Callable[[IdleTimeout], Awaitable[None]],
) -> None:
    """Read messages until the client leaves, `handle` says stop, or the socket idles."""
    quiet_since = swept = time.monotonic()
    try:
        while True:
            try:
                async with asyncio.timeout(min(_TICK, idle)):
                    message = await websocket.receive()
            except TimeoutError:
                await _end_idle_contexts(hub, idle)
                now = swept = time.monotonic()
                if hub.busy:
                    quiet_since = now
                # Its contexts are told first (each idles on its own clock, a little
                # after the socket's): the socket ends once none is left open.
                elif now - quiet_since > idle and not hub.live:
                    await on_idle(IdleTimeout(f"no text for {idle:g} s: closing the socket"))
                    return
                continue
            if message["type"] == "websocket.disconnect":
                return
            quiet_since = time.monotonic()
            if quiet_since - swept > _TICK:  # a busy socket's other contexts may idle too
                await _end_idle_contexts(hub, idle)
                swept = quiet_since
            raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            if not await handle(raw):
                return
    finally:
        await hub.close_all()
