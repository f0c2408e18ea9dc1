"""Speech contexts: several streamed texts on one socket, each spoken as its sentences end.

A context takes text in pieces (a language model's tokens). Each sentence whose end has
arrived, or the unfinished rest on a flush, is spoken at once: the sentences ready then
become one request to the service, with word timings, and their audio goes to the
socket sentence by sentence through one encoder per context (so a resampled or encoded
stream runs on across requests with no seam). Waiting for text, a context holds nothing
in the scheduler. Cancelling a context stops its request and drops its waiting text at
once; the socket's other contexts go on. Protocols (native, ElevenLabs) differ only in
their messages: they drive a `ContextHub` and get what it says through a `ContextSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from tts_service.api.char_timing import spoken_span
from tts_service.api.timed import timed_chunks
from tts_service.audio.encoders import StreamEncoder, make_encoder
from tts_service.engine.words import Word
from tts_service.errors import (
    InvalidRequest,
    ServiceError,
    TextTooLong,
    WordTimestampsUnavailable,
)
from tts_service.service import Admitted, SpeechRequest, TTSService
from tts_service.text.sentences import SentenceSplitter

MAX_PENDING_CHARS: Final = 10_000_000
"""Text a context may hold without a sentence end (about 10 MB): past it, it is refused."""
MAX_CONTEXTS: Final = 32
"""Contexts one socket may have open at once."""
_REMEMBERED: Final = 1024  # closed context ids kept, to tell a late piece from a new context


class UnknownContext(InvalidRequest):
    code = "unknown_context"


class ContextClosed(InvalidRequest):
    code = "context_closed"


class TooManyContexts(InvalidRequest):
    code = "too_many_contexts"


@dataclass(frozen=True)
class Output:
    """How a context's audio is encoded: a format and, if chosen, its rate. `pcm` without
    a rate is raw PCM at the voice's own rate."""

    fmt: str = "pcm"
    rate: int | None = None

    def encoder(self, voice_rate: int) -> StreamEncoder:
        rate = self.rate or (voice_rate if self.fmt == "pcm" else None)
        return make_encoder(self.fmt, voice_rate, rate)


@dataclass(frozen=True)
class Spoken:
    """One piece of a context's audio: `text` is the sentence it speaks ("" for the
    encoder's tail); `words` are timed in seconds from the context's first audio, with
    offsets into `text`; `start` and `duration` place the piece on that clock."""

    audio: bytes
    text: str
    words: list[Word]
    start: float
    duration: float


class ContextSink(Protocol):
    """What a protocol tells its client about a context."""

    async def spoken(self, context: SpeechContext, piece: Spoken) -> None: ...

    async def finished(self, context: SpeechContext) -> None:
        """All of a closed context's audio was sent."""
        ...

    async def cancelled(self, context: SpeechContext) -> None: ...

    async def failed(self, context: SpeechContext, error: ServiceError) -> None: ...


def _sentence_of(text: str, words: list[Word], offset: float) -> tuple[str, list[Word]]:
    """The part of `text` that `words` speak, and the words re-based onto it and onto the
    context's clock (`offset` seconds)."""
    if not words:
        return "", []
    begin, end = spoken_span(text, words)
    shifted = [
        dataclasses.replace(
            word,
            start=word.start + offset,
            end=word.end + offset,
            char_start=word.char_start - begin,
            char_end=word.char_end - begin,
        )
        for word in words
    ]
    return text[begin:end], shifted


@dataclass(eq=False)
class SpeechContext:
    """One context: its text waiting for sentence ends, its speaker task, its clock."""

    id: str
    template: SpeechRequest
    """Everything about how it speaks; `text` is set per request."""
    output: Output
    service: TTSService
    sink: ContextSink
    label: str = "contexts"
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    ready: list[str] = field(default_factory=list)
    """Sentences whose end has arrived, not yet given to the service."""
    closing: bool = False
    current: Admitted | None = None
    last_activity: float = field(default_factory=time.monotonic)
    clock: float = 0.0
    """Seconds of audio sent so far."""
    timed: bool = True
    """Asks for word timings until the voice turns out to have none."""
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _encoder: StreamEncoder | None = None
    _task: asyncio.Task[None] | None = None
    _encoding: asyncio.Future[bytes] | None = None
    """The encoder's call running in a thread, if any: the codec is freed only after it."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._speak(), name=f"context {self.id}")

    @property
    def speaking(self) -> bool:
        return self.current is not None or bool(self.ready)

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def add(self, text: str) -> None:
        if self.closing:
            raise ContextClosed(f"context {self.id!r} is closed: it takes no more text")
        self.last_activity = time.monotonic()
        self.ready += self.splitter.add(text)
        if len(self.splitter.pending) > MAX_PENDING_CHARS:
            self.splitter.flush()
            raise TextTooLong(
                f"context {self.id!r} sent {MAX_PENDING_CHARS} characters without a sentence end",
                param="text",
            )
        self._wake.set()

    def flush(self) -> None:
        """Speak the unfinished rest now, as a sentence of its own."""
        self.last_activity = time.monotonic()
        if tail := self.splitter.flush():
            self.ready.append(tail)
            self._wake.set()

    def close(self) -> None:
        """No more text: speak the rest, then say it is finished."""
        self.flush()
        self.closing = True
        self._wake.set()

    async def cancel(self, error: ServiceError | None = None) -> None:
        """Stop at once: its request is cancelled, its waiting text dropped. With `error`
        (an idle context), the client is told that error instead of a cancel."""
        self.closing = True
        self.ready.clear()
        if self._task is None or self._task.done():
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        # Told here, not in the task: a task cancelled before it first ran never could.
        if error is not None:
            await self.sink.failed(self, error)
        else:
            await self.sink.cancelled(self)

    async def _speak(self) -> None:
        try:
            while True:
                while not self.ready and not self.closing:
                    self._wake.clear()
                    await self._wake.wait()
                if not self.ready:
                    break
                text = " ".join(self.ready)
                self.ready.clear()
                await self._say(text)
            await self._tail()
            await self.sink.finished(self)
        except ServiceError as error:
            await self.sink.failed(self, error)
        finally:
            if self.current is not None:
                self.current.cancel()
            close = getattr(self._encoder, "close", None)  # frees a codec left mid-stream
            if callable(close):
                if self._encoding is not None and not self._encoding.done():
                    self._encoding.add_done_callback(lambda _: close())
                else:
                    close()

    async def _run(self, call: Callable[..., bytes], *args: bytes) -> bytes:
        """An encoder call, off the event loop (a cancel may not free the codec under it)."""
        self._encoding = asyncio.get_running_loop().run_in_executor(None, call, *args)
        return await self._encoding

    async def _submit(self, text: str) -> Admitted:
        # Streamed: a long first sentence comes in pieces as it is decoded (its words with
        # the first), so a context's first audio comes as soon as a request's does.
        request = dataclasses.replace(
            self.template, text=text, timestamps=self.timed, streamed=True
        )
        try:
            return await self.service.submit(request, label=self.label)
        except WordTimestampsUnavailable:
            self.timed = False  # this voice cannot time words: speak without them
            return await self.service.submit(
                dataclasses.replace(request, timestamps=False), label=self.label
            )

    async def _say(self, text: str) -> None:
        admitted = self.current = await self._submit(text)
        rate = admitted.voice.sample_rate
        if self._encoder is None:
            self._encoder = self.output.encoder(rate)
        offset = self.clock
        async for chunk, words, _, _ in timed_chunks(self.service, admitted):
            audio = await self._run(self._encoder.encode, chunk.pcm)
            sentence, timed = _sentence_of(text, words, offset)
            duration = len(chunk.pcm) / 2 / rate
            piece = Spoken(audio, sentence, timed, self.clock, duration)
            self.clock += duration
            await asyncio.shield(self.sink.spoken(self, piece))
            admitted.touch()
        self.current = None
        self.last_activity = time.monotonic()

    async def _tail(self) -> None:
        if self._encoder is None:
            return
        tail = await self._run(self._encoder.flush)
        if tail:
            await asyncio.shield(self.sink.spoken(self, Spoken(tail, "", [], self.clock, 0.0)))


class ContextHub:
    """The contexts of one socket: opened by id, looked up, forgotten once over."""

    def __init__(
        self, service: TTSService, sink: ContextSink, client: str, label: str = "contexts"
    ) -> None:
        self.service = service
        self.sink = sink
        self.client = client
        self.label = label
        self.contexts: dict[str, SpeechContext] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()

    async def open(self, context_id: str, template: SpeechRequest, output: Output) -> SpeechContext:
        """A new context; its voice and options are checked now, so a bad one is told at
        once, before any text."""
        self._forget_finished()
        if context_id in self.contexts or context_id in self._closed:
            raise ContextClosed(f"context {context_id!r} was already opened")
        if len(self.contexts) >= MAX_CONTEXTS:
            raise TooManyContexts(f"a socket may have {MAX_CONTEXTS} contexts open at once")
        template = dataclasses.replace(template, client=self.client)
        await self.service.open_stream(template, self.label)  # checks it all, holds nothing
        if context_id in self.contexts:  # opened meanwhile by a message read concurrently
            raise ContextClosed(f"context {context_id!r} was already opened")
        context = SpeechContext(context_id, template, output, self.service, self.sink, self.label)
        self.contexts[context_id] = context
        context.start()
        return context

    def get(self, context_id: str) -> SpeechContext:
        """The open context by that id; a closed one or one never opened is an error."""
        self._forget_finished()
        context = self.contexts.get(context_id)
        if context is not None and not context.closing:
            return context
        if context is not None or context_id in self._closed:
            raise ContextClosed(f"context {context_id!r} is closed: it takes no more text")
        raise UnknownContext(f"no context {context_id!r} is open on this socket")

    def known(self, context_id: str) -> bool:
        return context_id in self.contexts or context_id in self._closed

    async def cancel(self, context_id: str) -> SpeechContext | None:
        """Cancel a live context (None if it is not live)."""
        context = self.contexts.get(context_id)
        if context is None or context.done:
            return None
        await context.cancel()
        self._forget_finished()
        return context

    @property
    def busy(self) -> bool:
        """Some context is being spoken: the socket is not idle."""
        return any(context.speaking for context in self.contexts.values())

    @property
    def live(self) -> bool:
        """Some context is live (speaking, or waiting for text)."""
        return any(not context.done for context in self.contexts.values())

    def idle_contexts(self, limit: float) -> list[SpeechContext]:
        """Open contexts with nothing to say and no text for `limit` seconds."""
        now = time.monotonic()
        return [
            context
            for context in self.contexts.values()
            if not context.speaking and not context.done and now - context.last_activity > limit
        ]

    async def close_all(self) -> None:
        for context in list(self.contexts.values()):
            with contextlib.suppress(Exception):
                await context.cancel()
        self.contexts.clear()

    def _forget_finished(self) -> None:
        for context_id in [key for key, context in self.contexts.items() if context.done]:
            del self.contexts[context_id]
            self._closed[context_id] = None
        while len(self._closed) > _REMEMBERED:
            self._closed.popitem(last=False)
