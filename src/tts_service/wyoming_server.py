"""The Wyoming protocol (Home Assistant's voice protocol) over the same service and scheduler
as HTTP: one more transport, in the same process and event loop.

Each connection reads events without ever waiting on audio, so a client that hangs up is
noticed at once and its work cancelled; replies are written strictly in request order.

    describe           -> info
    ping               -> pong
    synthesize         -> audio-start, audio-chunk*, audio-stop
    synthesize-start, synthesize-chunk*, [synthesize], synthesize-stop
                       -> audio-start, audio-chunk*, audio-stop, synthesize-stopped

A refused or failed request gets an `error` in place of the rest of its audio; a stream still
ends with synthesize-stopped once its synthesize-stop has arrived.

A streamed request speaks each sentence as soon as its end has arrived. The plain `synthesize`
a client sends inside a stream (Home Assistant does, for servers without streaming) repeats
text that is already being spoken, so it is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
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
from tts_service.engine import VoiceInfo
from tts_service.errors import InvalidRequest, ServiceError, TextTooLong, VoiceNotFound
from tts_service.scheduler import Job
from tts_service.service import Admitted, SpeechRequest, TTSService

log = logging.getLogger(__name__)

SAMPLES_PER_CHUNK = 1024
"""Audio goes out in events of at most this many samples (what wyoming-piper sends), so
satellites with small buffers can play a long sentence as it arrives."""

SAMPLE_WIDTH = 2  # bytes: the scheduler hands out 16-bit mono PCM
CHANNELS = 1

MAX_PENDING_REPLIES = 16
"""A client that queues more requests than this on one connection without reading is cut off."""

PIPER = Attribution(name="Piper", url="https://github.com/OHF-Voice/piper1-gpl")

Reply = Callable[[], Awaitable[None]]


# --------------------------------------------------------------------- pure pieces


# A sentence ends at . ! ? (or their CJK forms), possibly closed by quotes or brackets,
# followed by whitespace; a newline ends one whatever precedes it.
_BOUNDARY = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*\s+|\n\s*")
_LAST_WORD = re.compile(r"(\S+)$")
_TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs"})


def _is_abbreviation(before: str) -> bool:
    """True if `before` (the text up to and including a '.') ends in an abbreviation such
    as "Dr.", "e.g." or "J.": cutting there would make espeak read it letter by letter."""
    match = _LAST_WORD.search(before)
    if match is None:
        return False
    word = match.group(1).lstrip("\"'“‘«([")
    if not word.endswith(".") or word.endswith(".."):
        return False
    core = word[:-1]
    return "." in core or (len(core) == 1 and core.isalpha()) or core.lower() in _TITLES


class SentenceSplitter:
    """Buffers streamed text and releases the sentences whose end has arrived.

    Cutting only where a sentence ends changes nothing for the phonemizer (espeak ends its
    sentences there too); a cut that is only maybe an end (after an abbreviation) waits
    for more text, which costs latency but never pronunciation.
    """

    def __init__(self) -> None:
        self._buffer = ""

    @property
    def pending(self) -> str:
        """The unfinished tail."""
        return self._buffer

    def add(self, text: str) -> list[str]:
        """Take more text; return the sentences it completed, in order."""
        self._buffer += text
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            mark = match.group()
            if (
                mark.startswith(".")
                and "\n" not in mark
                and _is_abbreviation(self._buffer[start : match.start() + 1])
            ):
                continue
            sentence = self._buffer[start : match.start() + len(mark.rstrip())].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> str:
        """The end of the stream: whatever is left is the last sentence."""
        tail, self._buffer = self._buffer.strip(), ""
        return tail


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


def _describe_voice(info: VoiceInfo) -> str:
    base = info.dataset or info.name
    return f"{base} ({info.quality})" if info.quality else base


def _speakers(info: VoiceInfo) -> list[TtsVoiceSpeaker] | None:
    if info.num_speakers <= 1:
        return None
    if info.speakers:
        ordered = sorted(info.speakers, key=lambda name: info.speakers[name])
        return [TtsVoiceSpeaker(name=name) for name in ordered]
    return [TtsVoiceSpeaker(name=str(sid)) for sid in range(info.num_speakers)]


def build_info(voices: Sequence[VoiceInfo]) -> Info:
    """The `info` answer: one TTS program listing every installed voice."""
    return Info(
        tts=[
            TtsProgram(
                name="tts-service",
                description="Piper neural text to speech, shared fairly between clients",
                attribution=PIPER,
                installed=True,
                version=__version__,
                voices=[
                    TtsVoice(
                        name=info.name,
                        description=_describe_voice(info),
                        attribution=PIPER,
                        installed=True,
                        version=None,
                        languages=[info.language],
                        speakers=_speakers(info),
                    )
                    for info in sorted(voices, key=lambda info: info.name)
                ],
                supports_synthesize_streaming=True,
            )
        ]
    )


def _language_key(code: str) -> str:
    return code.strip().lower().replace("-", "_")


def voice_for_language(voices: Sequence[VoiceInfo], default: str, language: str) -> str:
    """A voice for a request that names only a language: the default voice if it speaks
    it, else the first by name; an exact match (en_US) before a family match (en)."""
    wanted = _language_key(language)
    ordered = sorted(voices, key=lambda info: (info.name != default, info.name))
    family = wanted.split("_")[0]
    for exact in (True, False):
        for info in ordered:
            code = _language_key(info.language)
            if code == wanted if exact else code.split("_")[0] == family:
                return info.name
    raise VoiceNotFound(
        f"no installed voice speaks '{language}'",
        available=sorted({info.language for info in voices}),
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


@dataclass(eq=False)
class _TextStream:
    """One streamed request, from synthesize-start to synthesize-stop."""

    admitted: Admitted | None = None
    error: ServiceError | None = None
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    chars: int = 0

    @property
    def live(self) -> bool:
        return self.admitted is not None and self.error is None and not self.admitted.job.finished


class WyomingHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        service: TTSService,
        tasks: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self._tasks = tasks if tasks is not None else set()
        self._replies: asyncio.Queue[Reply] = asyncio.Queue()
        self._replier: asyncio.Task[None] | None = None
        self._jobs: set[Job] = set()  # admitted for this client and not yet answered
        self._stream: _TextStream | None = None

    async def run(self) -> None:
        task = asyncio.current_task()
        if task is not None:  # so the server can wait for its connections on shutdown
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._replier = asyncio.create_task(self._write_replies(), name="wyoming replies")
        await super().run()

    async def disconnect(self) -> None:
        """The connection ended (or the server stops): cancel everything it asked for."""
        for job in self._jobs:
            self.service.scheduler.cancel(job)
        self._jobs.clear()
        self._stream = None
        if self._replier is not None:
            self._replier.cancel()
            await asyncio.gather(self._replier, return_exceptions=True)

    # ---------------------------------------------------------------- reading

    async def handle_event(self, event: Event) -> bool:
        if self._replies.qsize() >= MAX_PENDING_REPLIES:
            log.warning(
                "wyoming client queued %d requests without reading: closing", MAX_PENDING_REPLIES
            )
            return False
        try:
            await self._dispatch(event)
        except ServiceError as error:
            log.info("wyoming %s refused: %s", event.type, error.message)
            self._reply(partial(self._send_error, error))
        except Exception:  # a bug must not take the other requests down with it
            log.exception("wyoming %s failed", event.type)
            self._reply(partial(self._send_error, ServiceError("internal error")))
        return True

    async def _dispatch(self, event: Event) -> None:
        kind, data = event.type, event.data
        if Describe.is_type(kind):
            info = build_info(self.service.catalog.infos()).event()
            self._reply(partial(self.write_event, info))
        elif Ping.is_type(kind):
            self._reply(partial(self.write_event, Pong(text=data.get("text")).event()))
        elif SynthesizeStart.is_type(kind):
            await self._start_stream(data)
        elif SynthesizeChunk.is_type(kind):
            await self._stream_text(data)
        elif SynthesizeStop.is_type(kind):
            await self._stop_stream()
        elif Synthesize.is_type(kind) and self._stream is None:
            await self._synthesize(data)
        # Anything else (and a synthesize inside a stream) is dropped, as the protocol asks.

    def _reply(self, reply: Reply) -> None:
        self._replies.put_nowait(reply)

    def _request(self, text: str, voice: SynthesizeVoice | None) -> SpeechRequest:
        name = voice.name if voice is not None else None
        if voice is not None and name is None and voice.language:
            name = voice_for_language(
                self.service.catalog.infos(), self.service.settings.default_voice, voice.language
            )
        speaker = voice.speaker if voice is not None else None
        return SpeechRequest(text=text, voice=name, speaker=speaker, priority="normal")

    async def _synthesize(self, data: dict[str, Any]) -> None:
        _check_text_format(data)
        request = self._request(_text_of(data), parse_voice(data.get("voice")))
        admitted = await self.service.submit(request, label="wyoming")
        self._jobs.add(admitted.job)
        self._reply(partial(self._send_audio, admitted))

    async def _start_stream(self, data: dict[str, Any]) -> None:
        if self._stream is not None:
            raise InvalidRequest("synthesize-start inside an open stream; send synthesize-stop")
        stream = self._stream = _TextStream()
        try:
            _check_text_format(data)
            request = self._request("", parse_voice(data.get("voice")))
            stream.admitted = await self.service.open_stream(request, label="wyoming")
            self._jobs.add(stream.admitted.job)
        except ServiceError as error:
            log.info("wyoming stream refused: %s", error.message)
            stream.error = error  # told in its turn; the rest of the stream is ignored
        self._reply(partial(self._send_stream, stream))

    async def _stream_text(self, data: dict[str, Any]) -> None:
        """Queue the sentences this chunk completed; the unfinished tail waits for more."""
        stream = self._stream
        if stream is None:
            raise InvalidRequest("synthesize-chunk outside a stream; send synthesize-start first")
        if not stream.live:
            return
        assert stream.admitted is not None
        try:
            text = _text_of(data)
            stream.chars += len(text)
            if stream.chars > self.service.settings.max_text_chars:
                raise TextTooLong(
                    f"the streamed text passed {self.service.settings.max_text_chars} characters",
                    param="text",
                )
        except ServiceError as error:
            stream.error = error  # told instead of the audio that is cut off now
            self.service.scheduler.cancel(stream.admitted.job)
            return
        sentences = stream.splitter.add(text)
        if sentences:
            await self.service.add_text(stream.admitted, " ".join(sentences))

    async def _stop_stream(self) -> None:
        stream = self._stream
        if stream is None:
            raise InvalidRequest("synthesize-stop outside a stream; send synthesize-start first")
        self._stream = None
        try:
            if stream.live:
                assert stream.admitted is not None
                await self.service.add_text(stream.admitted, stream.splitter.flush(), close=True)
        finally:  # synthesize-stopped is owed whatever happened to the stream
            stream.stopped.set()

    # ---------------------------------------------------------------- writing

    async def _write_replies(self) -> None:
        try:
            while True:
                reply = await self._replies.get()
                await reply()
        except ConnectionError as exc:
            log.info("wyoming client went away: %s", exc)
        except Exception:
            log.exception("wyoming reply failed")
        await self.stop()  # ends the reading loop, whose end cancels the rest

    async def _send_error(self, error: ServiceError) -> None:
        await self.write_event(Error(text=error.message, code=error.code).event())

    async def _send_audio(self, admitted: Admitted, stream: _TextStream | None = None) -> None:
        """audio-start, one or more audio-chunks per sentence as each is ready, audio-stop."""
        rate = admitted.voice.sample_rate
        start = AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=CHANNELS, timestamp=0).event()
        samples, started = 0, False
        try:
            async for chunk in self.service.scheduler.stream(admitted.job):
                if not started:
                    await self.write_event(start)
                    started = True
                for piece in pcm_pieces(chunk.pcm):
                    await self.write_event(_audio_chunk(piece, rate, samples))
                    samples += len(piece) // SAMPLE_WIDTH
        except ServiceError as error:
            await self._send_error(stream.error if stream is not None and stream.error else error)
            return
        finally:  # also when this client went away: stop its remaining sentences
            self.service.scheduler.cancel(admitted.job)
            self._jobs.discard(admitted.job)
            _log_request(admitted, "stream" if stream is not None else "synthesize")
        if not started:  # nothing to say is still an answer, of silence
            await self.write_event(start)
        await self.write_event(AudioStop(timestamp=_milliseconds(samples, rate)).event())

    async def _send_stream(self, stream: _TextStream) -> None:
        if stream.admitted is not None:
            await self._send_audio(stream.admitted, stream)
        elif stream.error is not None:
            await self._send_error(stream.error)
        await stream.stopped.wait()
        await self.write_event(SynthesizeStopped().event())


def _log_request(admitted: Admitted, kind: str) -> None:
    job = admitted.job
    log.info(
        "wyoming %s voice=%s sentences=%d queue_wait=%.4f synthesis_time=%.4f "
        "audio_seconds=%.4f outcome=%s",
        kind,
        admitted.voice.info.name,
        admitted.sentences,
        job.queue_wait,
        job.synth_seconds,
        job.audio_seconds,
        job.state.value,
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
