"""Latency clients for speech contexts (`WS /synthesize/contexts`): the text arrives as a
language model writes it, a word at a time, and each sentence is spoken once its end has
arrived. Timed like the other transports: from the first piece sent to the context's end."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tts_service.bench.errors import BenchError

_TOKENS = re.compile(r"\S+\s*")
_LOAD_CODES = frozenset({"overloaded", "memory_budget_full", "too_many_requests"})


def tokens(text: str) -> list[str]:
    """`text` as a language model streams it: a word and its following space per piece."""
    return _TOKENS.findall(text)


class ContextClients:
    name = "Contexts (token by token)"

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://", 1) + "/synthesize/contexts"
        self._ids = itertools.count(1)

    def _connect(self, address: str) -> Any:
        return connect(self.url, local_addr=(address, 0), max_size=None, open_timeout=30)

    async def _speak(self, ws: ClientConnection, text: str, audio: asyncio.Event | None) -> bool:
        """Send `text` a token at a time into a new context, close it, read to its end.
        False if the server refused it for load."""
        context = f"c{next(self._ids)}"
        for piece in tokens(text):
            await ws.send(json.dumps({"context": context, "text": piece}))
        await ws.send(json.dumps({"context": context, "close": True}))
        while True:
            message = json.loads(await ws.recv())
            kind = message.get("type")
            if kind == "audio" and audio is not None:
                audio.set()
            elif kind == "done":
                return True
            elif kind == "error":
                if message["error"].get("code") in _LOAD_CODES:
                    return False
                raise BenchError(f"a context got an error: {message['error']}")

    async def long_client(self, address: str, text: str, audio: asyncio.Event) -> None:
        async with self._connect(address) as ws:
            while True:
                if not await self._speak(ws, text, audio):
                    raise BenchError("the server refused a long context client")

    async def short_request(self, address: str, text: str) -> float | None:
        async with self._connect(address) as ws:  # opened before the clock starts
            sent = time.perf_counter()
            spoken = await self._speak(ws, text, None)
            elapsed = time.perf_counter() - sent
        return elapsed if spoken else None
