"""One Wyoming connection (Home Assistant's voice protocol) over the same service as HTTP:
one more transport, in the same process and event loop. The messages are in `protocol`.

Each connection reads events without ever waiting on audio, so a client that hangs up is
noticed at once and its work cancelled; replies are written strictly in request order.

Home Assistant reads until audio-stop (synthesize) or synthesize-stopped (a stream) or the
end of the connection, and ignores `error`. So a refused or failed request gets an `error`
in place of the rest of its audio (a stream: `error`, then synthesize-stopped) and then the
connection is closed, cancelling whatever else it had asked for.

A streamed request speaks each sentence as soon as its end has arrived; it enters the
scheduler with its first sentence, so an open stream still waiting for text holds no
admission slot. The plain `synthesize` a client sends inside a stream (Home Assistant does,
for servers without streaming) repeats text that is already being spoken, so it is ignored.

Every connection is bounded in time and memory: events larger than max_body_bytes end it;
an open stream that gets no text for idle_timeout gets `error` (idle_timeout) and
synthesize-stopped, a connection with nothing to do for idle_timeout is closed, and a
client that takes no bytes for stall_timeout while audio waits is cut off.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from functools import partial
from typing import Any

from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from tts_service.errors import IdleTimeout, InvalidRequest, ServiceError
from tts_service.service import Admitted, SpeechRequest, TTSService
from tts_service.text.options import TextOptions
from tts_service.wyoming.describe import service_info
from tts_service.wyoming.idleness import until_idle
from tts_service.wyoming.protocol import (
    audio_chunk,
    audio_start,
    audio_stop,
    check_text_format,
    parse_voice,
    pcm_pieces,
    samples_in,
    text_of,
    voice_wanted,
)
from tts_service.wyoming.reading import read_event
from tts_service.wyoming.replies import Reply, ReplyQueue
from tts_service.wyoming.text_stream import TextStream

log = logging.getLogger(__name__)

MAX_PENDING_REPLIES = 16
WYOMING_READING = TextOptions(clean=True, normalize=True)
"""Home Assistant sends its assistants' answers here, a language model's among them:
Markdown, emoji, "$3.50" and "8:00" are read as words, not as symbols. The protocol has no
field to ask otherwise; SSML is still recognised by its <speak> root."""
"""A client that queues more requests than this on one connection without reading is cut off."""


class StalledReader(ConnectionError):
    """The client took no bytes for stall_timeout seconds: it cannot even be told."""


_connection_ids = itertools.count(1)


class WyomingHandler(AsyncEventHandler):
    """One client connection.

    Home Assistant reads until audio-stop or synthesize-stopped and ignores `error`, so an
    error is always followed by the end of the connection (after synthesize-stopped for a
    stream): the client stops waiting at once, and its other requests are cancelled."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: TTSService,
        tasks: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.client = f"wyoming#{next(_connection_ids)}"
        self._tasks = tasks if tasks is not None else set()
        self._replies = ReplyQueue()
        self._writing = False
        self._helpers: list[asyncio.Task[None]] = []
        self._jobs: set[Admitted] = set()  # admitted for this client and not yet answered
        self._stream: TextStream | None = None
        self._running = False
        self._closing = False  # an error was decided: no new work, the connection ends
        self._fatal: ServiceError | None = None  # the refusal that ends the connection
        self._last_event = self._last_write = time.monotonic()

    async def run(self) -> None:
        task = asyncio.current_task()
        if task is not None:  # so the server can wait for its connections on shutdown
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._running = True
        self._helpers = [
            asyncio.create_task(self._write_replies(), name="wyoming replies"),
            asyncio.create_task(self._watch_idle(), name="wyoming idle watch"),
        ]
        limit = self.service.settings.max_body_bytes
        try:
            while self._running:
                event = await read_event(self.reader, limit)
                if event is None or not await self.handle_event(event):
                    break
        finally:
            await self.disconnect()
            self.writer.close()

    async def stop(self) -> None:
        self._running = False
        self.writer.close()
        self.reader.feed_eof()

    async def disconnect(self) -> None:
        """The connection ended (or the server stops): cancel everything it asked for."""
        self._closing = True
        for admitted in self._jobs:
            admitted.cancel()
        self._jobs.clear()
        self._stream = None
        for helper in self._helpers:
            helper.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)

    # ---------------------------------------------------------------- reading

    async def handle_event(self, event: Event) -> bool:
        if self._closing:
            return True  # an error is on its way and the connection with it: nothing new
        self._last_event = time.monotonic()
        if len(self._replies) >= MAX_PENDING_REPLIES:
            log.warning(
                "wyoming client queued %d requests without reading: closing", MAX_PENDING_REPLIES
            )
            return False
        try:
            await self._dispatch(event)
        except ServiceError as error:
            log.info("wyoming %s refused: %s", event.type, error.message)
            self._refuse(error)
        except Exception:  # a bug must not take the other connections down with it
            log.exception("wyoming %s failed", event.type)
            self._refuse(ServiceError("internal error"))
        return True

    async def _dispatch(self, event: Event) -> None:
        kind, data = event.type, event.data
        if Describe.is_type(kind):
            self._reply(partial(self._send, (await service_info(self.service)).event()))
        elif Ping.is_type(kind):
            self._reply(partial(self._send, Pong(text=data.get("text")).event()))
        elif SynthesizeStart.is_type(kind):
            await self._start_stream(data)
        elif SynthesizeChunk.is_type(kind):
            await self._stream_text(data)
        elif SynthesizeStop.is_type(kind):
            await self._stop_stream()
        elif Synthesize.is_type(kind) and self._stream is None:
            await self._synthesize(data)
        # Anything else (and a synthesize inside a stream) is dropped, as the protocol asks.

    def _reply(self, reply: Reply, stream: TextStream | None = None) -> None:
        self._replies.put(reply, stream)

    def _refuse(self, error: ServiceError) -> None:
        """The connection ends with `error`: cancel all its work; the answer being written
        stops where it is and tells the error (a stream's adds synthesize-stopped), and
        nothing queued after it is sent."""
        if self._fatal is not None:
            return
        self._fatal = error
        self._closing = True
        stream = self._stream
        if stream is not None:
            stream.fail(error)
        for admitted in self._jobs:
            admitted.cancel()
        self._reply(partial(self._send_error, error))  # told here if nothing else tells it

    def _request(self, text: str, voice: SynthesizeVoice | None) -> SpeechRequest:
        name, speaker = voice_wanted(voice)
        return SpeechRequest(
            text=text,
            voice=name,
            speaker=speaker,
            priority="normal",
            client=self.client,
            streamed=True,  # audio-chunks go out as they are made
            reading=WYOMING_READING,
        )

    async def _synthesize(self, data: dict[str, Any]) -> None:
        check_text_format(data)
        request = self._request(text_of(data), parse_voice(data.get("voice")))
        admitted = await self.service.submit(request, label="wyoming")
        self._jobs.add(admitted)
        self._reply(partial(self._answer_synthesize, admitted))

    async def _start_stream(self, data: dict[str, Any]) -> None:
        """Check the voice now (a bad one is told at once); admit nothing until text comes."""
        if self._stream is not None:
            raise InvalidRequest("synthesize-start inside an open stream; send synthesize-stop")
        stream = self._stream = TextStream(last_text=time.monotonic())
        self._reply(partial(self._answer_stream, stream), stream)
        check_text_format(data)
        request = self._request("", parse_voice(data.get("voice")))
        stream.opened = await self.service.open_stream(request, label="wyoming")

    async def _stream_text(self, data: dict[str, Any]) -> None:
        """Queue the sentences this chunk completed; the unfinished tail waits for more."""
        stream = self._stream
        if stream is None:
            raise InvalidRequest("synthesize-chunk outside a stream; send synthesize-start first")
        stream.last_text = time.monotonic()
        if not stream.live:
            return
        assert stream.opened is not None
        sentences = stream.take(text_of(data), self.service.settings.max_text_chars)
        if sentences:
            try:
                await self.service.add_text(stream.opened, " ".join(sentences))
            finally:
                self._track(stream)

    async def _stop_stream(self) -> None:
        stream = self._stream
        if stream is None:
            raise InvalidRequest("synthesize-stop outside a stream; send synthesize-start first")
        if not stream.live:
            self._stream = None
            return  # its answer already tells why
        assert stream.opened is not None
        try:
            await self.service.add_text(stream.opened, stream.splitter.flush(), close=True)
        finally:
            self._track(stream)
        self._stream = None  # only now: a refusal above is the open stream's to tell

    def _track(self, stream: TextStream) -> None:
        """After text was added: own the stream's job, if it has one now; wake its answer."""
        admitted = stream.admitted
        if admitted is not None:
            self._jobs.add(admitted)
            if stream.error is not None or self._closing:  # failed while text was phonemized
                admitted.cancel()
        stream.changed.set()

    # ---------------------------------------------------------------- idleness

    def _busy(self) -> bool:
        """Work is under way for this client, so its silence is no idleness."""
        return self._writing or self._replies.busy()

    def _quiet_since(self) -> float:
        """An open stream is idle without text (a ping does not keep it); a connection
        without one, without any event."""
        heard = self._stream.last_text if self._stream is not None else self._last_event
        return max(heard, self._last_write)

    async def _watch_idle(self) -> None:
        limit = self.service.settings.idle_timeout
        await until_idle(limit, self._quiet_since, self._busy)
        if self._stream is not None:
            log.info("wyoming stream got no text for %g s: closing", limit)
            self._refuse(IdleTimeout(f"the stream got no text for {limit:g} s"))
        else:
            log.info("wyoming connection idle for %g s: closing", limit)
            self._closing = True
            await self.stop()

    # ---------------------------------------------------------------- writing

    async def write_event(self, event: Event) -> None:
        """Write one event; a client that takes none of it for stall_timeout is cut off."""
        limit = self.service.settings.stall_timeout
        self._writing = True
        try:
            async with asyncio.timeout(limit):
                await super().write_event(event)
        except TimeoutError:
            raise StalledReader(f"the client took no data for {limit:g} s") from None
        finally:
            self._writing = False
            self._last_write = time.monotonic()

    async def _write_replies(self) -> None:
        """Write the replies in request order until one ends the connection."""
        try:
            await self._replies.write_all()
        except StalledReader as exc:
            log.info("wyoming client stalled: %s", exc)
            self.writer.transport.abort()  # what it did not read would never leave
        except ConnectionError as exc:
            log.info("wyoming client went away: %s", exc)
        except Exception:
            log.exception("wyoming reply failed")
        self._closing = True
        await self.stop()  # ends the reading loop, whose end cancels the rest

    async def _send(self, event: Event) -> bool:
        if not self._closing:  # after an error, only the error is sent
            await self.write_event(event)
        return True

    async def _send_error(self, error: ServiceError) -> bool:
        self._closing = True
        await self.write_event(Error(text=error.message, code=error.code).event())
        return False

    async def _answer_synthesize(self, admitted: Admitted) -> bool:
        try:
            await self._speak(admitted)
        except ServiceError as error:  # Cancelled, when a refusal cut it short: tell that
            return await self._send_error(self._fatal or error)
        return True

    async def _answer_stream(self, stream: TextStream) -> bool:
        """The stream's audio then synthesize-stopped; or its error, synthesize-stopped, and
        the end of the connection."""
        keep_open = True
        try:
            admitted = await stream.admission()
            if admitted is not None:
                await self._speak(admitted, stream)
            else:  # ended before any sentence: an answer of silence
                assert stream.opened is not None
                rate = stream.opened.voice.sample_rate
                await self.write_event(audio_start(rate))
                await self.write_event(audio_stop(0, rate))
        except ServiceError as error:
            keep_open = await self._send_error(stream.error or self._fatal or error)
        await self.write_event(SynthesizeStopped().event())
        return keep_open

    async def _speak(self, admitted: Admitted, stream: TextStream | None = None) -> None:
        """audio-start, one or more audio-chunks per sentence as each is ready, audio-stop.
        Raises the job's error in place of the rest."""
        rate = admitted.voice.sample_rate
        start = audio_start(rate)
        samples, started = 0, False
        try:
            async for chunk in admitted.chunks():
                if not started:
                    await self.write_event(start)
                    started = True
                for piece in pcm_pieces(chunk.pcm):
                    await self.write_event(audio_chunk(piece, rate, samples))
                    samples += samples_in(piece)
                    admitted.touch()  # slow is not stalled
                if stream is not None and chunk.last:
                    stream.spoken += 1
        finally:  # also when this client went away: stop its remaining sentences
            admitted.cancel()
            self._jobs.discard(admitted)
            _log_request(admitted, "stream" if stream is not None else "synthesize")
        if not started:  # nothing to say is still an answer, of silence
            await self.write_event(start)
        await self.write_event(audio_stop(samples, rate))


def _log_request(admitted: Admitted, kind: str) -> None:
    log.info(
        "wyoming %s voice=%s sentences=%d queue_wait=%.4f synthesis_time=%.4f "
        "audio_seconds=%.4f outcome=%s",
        kind,
        admitted.voice.info.name,
        admitted.sentences,
        admitted.queue_wait,
        admitted.synth_seconds,
        admitted.audio_seconds,
        admitted.outcome,
    )
