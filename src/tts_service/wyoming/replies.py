"""A connection's answers, written strictly in request order, one at a time, however the
requests' audio comes in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tts_service.wyoming.text_stream import TextStream

Reply = Callable[[], Awaitable[bool]]
"""Writes one answer; False when the connection must end after it (an error was told)."""


class ReplyQueue:
    """The answers still to write, and the one being written."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Reply, TextStream | None]] = asyncio.Queue()
        self.answering = False
        """The writer is in a reply."""
        self.answering_stream: TextStream | None = None
        """The stream whose answer is being written, if a stream's is."""

    def put(self, reply: Reply, stream: TextStream | None = None) -> None:
        """Queue an answer; `stream` when it answers that stream."""
        self._queue.put_nowait((reply, stream))

    def __len__(self) -> int:
        return self._queue.qsize()

    def busy(self) -> bool:
        """An answer is under way or waiting. A stream's that waits for text is not (nor
        are the answers queued behind it, which wait for it)."""
        if self.answering:
            stream = self.answering_stream
            return stream is None or not stream.waiting_for_text
        return not self._queue.empty()

    async def write_all(self) -> None:
        """Write the answers in order; return after one that ends the connection."""
        while True:
            reply, stream = await self._queue.get()
            self.answering, self.answering_stream = True, stream
            try:
                keep_open = await reply()
            finally:
                self.answering, self.answering_stream = False, None
            if not keep_open:
                return
