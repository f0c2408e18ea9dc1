"""One streamed request's state, from synthesize-start to synthesize-stop: its handle once
the service has opened it, the text still waiting for a sentence end, how much it has said."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tts_service.errors import ServiceError, TextTooLong
from tts_service.service import Admitted, OpenStream
from tts_service.text.sentences import SentenceSplitter


@dataclass(eq=False)
class TextStream:
    """One streamed request, from synthesize-start to synthesize-stop."""

    last_text: float
    """When text (or the start) last arrived: the idle clock of an open stream."""
    opened: OpenStream | None = None
    """The service's stream; None while its voice is still being looked up."""
    error: ServiceError | None = None
    """Why it failed, once it has: its answer tells this."""
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever it may have been admitted, closed or failed: wakes its answer."""
    chars: int = 0
    """Characters of text received, against max_text_chars."""
    spoken: int = 0
    """Sentences whose audio has been written."""

    @property
    def admitted(self) -> Admitted | None:
        return self.opened.admitted if self.opened is not None else None

    @property
    def live(self) -> bool:
        admitted = self.admitted
        return (
            self.opened is not None
            and self.error is None
            and (admitted is None or not admitted.finished)
        )

    @property
    def waiting_for_text(self) -> bool:
        """Open, and every sentence it was given has been spoken: only the client can act."""
        if not self.live or self.opened is None or self.opened.closed:
            return False
        admitted = self.opened.admitted
        return admitted is None or self.spoken >= admitted.sentences

    def take(self, text: str, limit: int) -> list[str]:
        """The sentences `text` completes; the unfinished tail waits for more. Past `limit`
        characters in all, the stream is refused."""
        self.chars += len(text)
        if self.chars > limit:
            raise TextTooLong(f"the streamed text passed {limit} characters", param="text")
        return self.splitter.add(text)

    def fail(self, error: ServiceError) -> None:
        """Its answer tells `error` (or the one it already had), and wakes to tell it."""
        self.error = self.error or error
        self.changed.set()

    async def admission(self) -> Admitted | None:
        """Its job once the first sentence is admitted; None if it ended without one.
        Raises its error if it failed first."""
        while True:
            if self.error is not None:
                raise self.error
            opened = self.opened  # None while its voice is still being looked up
            if opened is not None and (opened.admitted is not None or opened.closed):
                return opened.admitted
            self.changed.clear()
            await self.changed.wait()
