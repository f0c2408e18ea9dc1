"""The Wyoming protocol (Home Assistant's voice protocol) over the same service and scheduler
as HTTP: one more transport, in the same process and event loop.

Each connection reads events without ever waiting on audio, so a client that hangs up is
noticed at once and its work cancelled; replies are written strictly in request order.

    describe           -> info
    ping               -> pong
    synthesize         -> audio-start, audio-chunk*, audio-stop
    synthesize-start, synthesize-chunk*, [synthesize], synthesize-stop
                       -> audio-start, audio-chunk*, audio-stop, synthesize-stopped

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
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlparse

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

from tts_service import __version__
from tts_service.engine.voice import VoiceInfo
from tts_service.errors import (
    IdleTimeout,
    InvalidRequest,
    ServiceError,
    TextTooLong,
)
from tts_service.service import Admitted, OpenStream, SpeechRequest, TTSService
from tts_service.text.sentences import SentenceSplitter
from tts_service.voices.names import language_key
from tts_service.voices.published import CatalogVoice, PiperCatalog

log = logging.getLogger(__name__)

SAMPLES_PER_CHUNK = 1024
"""Audio goes out in events of at most this many samples (what wyoming-piper sends), so
satellites with small buffers can play a long sentence as it arrives."""

SAMPLE_WIDTH = 2  # bytes: the scheduler hands out 16-bit mono PCM
CHANNELS = 1

MAX_PENDING_REPLIES = 16
"""A client that queues more requests than this on one connection without reading is cut off."""

PIPER = Attribution(name="Piper", url="https://github.com/OHF-Voice/piper1-gpl")

Reply = Callable[[], Awaitable[bool]]
"""Writes one answer; False when the connection must end after it (an error was told)."""


# --------------------------------------------------------------------- pure pieces


def pcm_pieces(pcm: bytes, samples: int = SAMPLES_PER_CHUNK) -> Iterator[bytes]:
    """Split 16-bit PCM into pieces of at most `samples` samples (never a split sample)."""
    step = samples * SAMPLE_WIDTH
    for offset in range(0, len(pcm), step):
        yield pcm[offset : offset + step]


def _milliseconds(samples: int, rate: int) -> int:
    return samples * 1000 // rate


def _audio_chunk(pcm: bytes, rate: int, samples_before: int) -> Event:
    return AudioChunk(
        rate=rate,
        width=SAMPLE_WIDTH,
        channels=CHANNELS,
        audio=pcm,
        timestamp=_milliseconds(samples_before, rate),
    ).event()


def _describe_voice(info: VoiceInfo, published: PiperCatalog | None) -> str:
    """`Joe, English (United States), medium` for a published voice; a custom one gets its
    dataset, quality and (when a published voice shares its code) language name."""
    entry = published.get(info.name) if published is not None else None
    if entry is not None and entry.name == info.name:
        return entry.description
    base = info.dataset or info.name
    text = f"{base} ({info.quality})" if info.quality else base
    language = _language_name(info.language, published)
    return f"{text}, {language}" if language else text


def _language_name(code: str, published: PiperCatalog | None) -> str | None:
    wanted = language_key(code)
    for entry in published or ():
        if language_key(entry.language.code) == wanted:
            return entry.language.description
    return None


def _speakers(info: VoiceInfo) -> list[TtsVoiceSpeaker] | None:
    if info.num_speakers <= 1:
        return None
    if info.speakers:
        ordered = sorted(info.speakers, key=lambda name: info.speakers[name])
        return [TtsVoiceSpeaker(name=name) for name in ordered]
    return [TtsVoiceSpeaker(name=str(sid)) for sid in range(info.num_speakers)]


def _installed_voice(info: VoiceInfo, published: PiperCatalog | None) -> TtsVoice:
    return TtsVoice(
        name=info.name,
        description=_describe_voice(info, published),
        attribution=PIPER,
        installed=True,
        version=None,
        languages=[info.language],
        speakers=_speakers(info),
    )


def _downloadable_voice(entry: CatalogVoice) -> TtsVoice:
    return TtsVoice(
        name=entry.name,
        description=f"{entry.description} (downloaded on first use)",
        attribution=PIPER,
        installed=False,
        version=None,
        languages=[entry.language.code],
    )


def build_info(
    voices: Sequence[VoiceInfo],
    published: PiperCatalog | None = None,
    downloadable: Sequence[CatalogVoice] = (),
) -> Info:
    """The `info` answer: one TTS program listing every installed voice (`installed`), then
    the published voices that a request would download (`downloadable`), not installed."""
    listed = [_installed_voice(info, published) for info in sorted(voices, key=lambda i: i.name)]
    listed += [_downloadable_voice(entry) for entry in downloadable]
    return Info(
        tts=[
            TtsProgram(
                name="tts-service",
                description="Piper neural text to speech, shared fairly between clients",
                attribution=PIPER,
                installed=True,
                version=__version__,
                voices=listed,
                supports_synthesize_streaming=True,
            )
        ]
    )


def parse_voice(raw: object) -> SynthesizeVoice | None:
    """The `voice` of a synthesize event, type-checked (the library trusts its input)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest('voice must be an object such as {"name": "en_US-joe-medium"}')
    name, language, speaker = raw.get("name"), raw.get("language"), raw.get("speaker")
    for key, value in (("name", name), ("language", language)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"voice.{key} must be a string", param=f"voice.{key}")
    if isinstance(speaker, int) and not isinstance(speaker, bool):
        speaker = str(speaker)
    if speaker is not None and not isinstance(speaker, str):
        raise InvalidRequest("voice.speaker must be a name or an id", param="voice.speaker")
    if name is None and language is None and speaker is None:
        return None
    return SynthesizeVoice(name=name, language=language, speaker=speaker)


def _text_of(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidRequest("text must be a string", param="text")
    return text


def _check_text_format(data: dict[str, Any]) -> None:
    text_format = data.get("text_format")
    if text_format not in (None, "text"):
        raise InvalidRequest(
            f"text_format {text_format!r} is not supported (only plain text)",
            param="text_format",
        )


# --------------------------------------------------------------------- one connection


class StalledReader(ConnectionError):
    """The client took no bytes for stall_timeout seconds: it cannot even be told."""


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """The next event; None at the end of the connection or for anything malformed.

    Unlike the library's reader, it refuses an event whose declared data and payload
    exceed `max_bytes`, instead of buffering whatever length a header claims."""
    try:
        line = await reader.readline()  # at most the reader's limit (64 KiB) long
        if not line:
            return None
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            return None
        data, data_length = header.get("data") or {}, header.get("data_length") or 0
        payload_length = header.get("payload_length") or 0
        lengths = (data_length, payload_length)
        if not isinstance(data, dict) or not all(isinstance(n, int) and n >= 0 for n in lengths):
            return None
        if data_length + payload_length > max_bytes:
            log.info("wyoming event of %d bytes refused", data_length + payload_length)
            return None
        if data_length:
            more = json.loads(await reader.readexactly(data_length))
            if not isinstance(more, dict):
                return None
            data = {**data, **more}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (ValueError, asyncio.IncompleteReadError, ConnectionError):
        return None  # ValueError: bad JSON or UTF-8, or a line past the reader's limit
    return Event(type=header["type"], data=data, payload=payload)


@dataclass(eq=False)
class _TextStream:
    """One streamed request, from synthesize-start to synthesize-stop."""

    last_text: float
    """When text (or the start) last arrived: the idle clock of an open stream."""
    opened: OpenStream | None = None
    error: ServiceError | None = None
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    chars: int = 0
    spoken: int = 0  # sentences whose audio has been written

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
        self._replies: asyncio.Queue[Reply] = asyncio.Queue()
        self._answering = False  # the writer is in a reply
        self._answering_stream: _TextStream | None = None  # ... and it is this stream's
        self._writing = False
        self._helpers: list[asyncio.Task[None]] = []
        self._jobs: set[Admitted] = set()  # admitted for this client and not yet answered
        self._stream: _TextStream | None = None
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
        if self._replies.qsize() >= MAX_PENDING_REPLIES:
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
            self._reply(partial(self._send, await self._describe()))
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

    async def _describe(self) -> Event:
        service = self.service
        await service.folders.rescan()  # a voice just copied in is offered
        published = service.published.current()
        installed = set(service.catalog.names)
        downloadable = (
            [entry for entry in published if entry.name not in installed]
            if service.settings.download_missing
            else []
        )
        return build_info(service.catalog.infos(), published, downloadable).event()

    def _reply(self, reply: Reply) -> None:
        self._replies.put_nowait(reply)

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
            stream.error = stream.error or error
            stream.changed.set()
        for admitted in self._jobs:
            admitted.cancel()
        self._reply(partial(self._send_error, error))  # told here if nothing else tells it

    def _request(self, text: str, voice: SynthesizeVoice | None) -> SpeechRequest:
        name = voice.name if voice is not None else None
        if voice is not None and name is None and voice.language:
            name = voice.language  # the best installed voice for it (voice_names)
        speaker = voice.speaker if voice is not None else None
        return SpeechRequest(
            text=text, voice=name, speaker=speaker, priority="normal", client=self.client
        )

    async def _synthesize(self, data: dict[str, Any]) -> None:
        _check_text_format(data)
        request = self._request(_text_of(data), parse_voice(data.get("voice")))
        admitted = await self.service.submit(request, label="wyoming")
        self._jobs.add(admitted)
        self._reply(partial(self._answer_synthesize, admitted))

    async def _start_stream(self, data: dict[str, Any]) -> None:
        """Check the voice now (a bad one is told at once); admit nothing until text comes."""
        if self._stream is not None:
            raise InvalidRequest("synthesize-start inside an open stream; send synthesize-stop")
        stream = self._stream = _TextStream(last_text=time.monotonic())
        self._reply(partial(self._answer_stream, stream))
        _check_text_format(data)
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
        text = _text_of(data)
        stream.chars += len(text)
        limit = self.service.settings.max_text_chars
        if stream.chars > limit:
            raise TextTooLong(f"the streamed text passed {limit} characters", param="text")
        sentences = stream.splitter.add(text)
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

    def _track(self, stream: _TextStream) -> None:
        """After text was added: own the stream's job, if it has one now; wake its answer."""
        admitted = stream.admitted
        if admitted is not None:
            self._jobs.add(admitted)
            if stream.error is not None or self._closing:  # failed while text was phonemized
                admitted.cancel()
        stream.changed.set()

    # ---------------------------------------------------------------- idleness

    def _busy(self) -> bool:
        """Work is under way for this client, so its silence is no idleness. A stream that
        waits for text is not (nor are the replies queued behind it, which wait for it)."""
        if self._writing:
            return True
        if self._answering:
            stream = self._answering_stream
            return stream is None or not stream.waiting_for_text
        return not self._replies.empty()

    def _quiet_since(self) -> float:
        """An open stream is idle without text (a ping does not keep it); a connection
        without one, without any event."""
        heard = self._stream.last_text if self._stream is not None else self._last_event
        return max(heard, self._last_write)

    async def _watch_idle(self) -> None:
        limit = self.service.settings.idle_timeout
        while True:
            left = self._quiet_since() + limit - time.monotonic()
            if left <= 0 and not self._busy():
                break
            # While busy, look again later: its end is a write, which restarts the clock.
            await asyncio.sleep(left if left > 0 else limit)
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
            while True:
                reply = await self._replies.get()
                self._answering = True
                try:
                    keep_open = await reply()
                finally:
                    self._answering = False
                if not keep_open:
                    break
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

    async def _answer_stream(self, stream: _TextStream) -> bool:
        """The stream's audio then synthesize-stopped; or its error, synthesize-stopped, and
        the end of the connection."""
        keep_open = True
        self._answering_stream = stream
        try:
            admitted = await stream.admission()
            if admitted is not None:
                await self._speak(admitted, stream)
            else:  # ended before any sentence: an answer of silence
                assert stream.opened is not None
                await self._send_silence(stream.opened.voice.sample_rate)
        except ServiceError as error:
            keep_open = await self._send_error(stream.error or self._fatal or error)
        finally:
            self._answering_stream = None
        await self.write_event(SynthesizeStopped().event())
        return keep_open

    async def _send_silence(self, rate: int) -> None:
        await self.write_event(
            AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS, timestamp=0).event()
        )
        await self.write_event(AudioStop(timestamp=0).event())

    async def _speak(self, admitted: Admitted, stream: _TextStream | None = None) -> None:
        """audio-start, one or more audio-chunks per sentence as each is ready, audio-stop.
        Raises the job's error in place of the rest."""
        rate = admitted.voice.sample_rate
        start = AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS, timestamp=0).event()
        samples, started = 0, False
        try:
            async for chunk in admitted.chunks():
                if not started:
                    await self.write_event(start)
                    started = True
                for piece in pcm_pieces(chunk.pcm):
                    await self.write_event(_audio_chunk(piece, rate, samples))
                    samples += len(piece) // SAMPLE_WIDTH
                    admitted.touch()  # slow is not stalled
                if stream is not None:
                    stream.spoken += 1
        finally:  # also when this client went away: stop its remaining sentences
            admitted.cancel()
            self._jobs.discard(admitted)
            _log_request(admitted, "stream" if stream is not None else "synthesize")
        if not started:  # nothing to say is still an answer, of silence
            await self.write_event(start)
        await self.write_event(AudioStop(timestamp=_milliseconds(samples, rate)).event())


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


# --------------------------------------------------------------------- the server


def _server_for(uri: str) -> AsyncServer:
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
