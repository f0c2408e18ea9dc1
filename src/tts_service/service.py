"""The service every transport talks to: validate a request, phonemize it off the event
loop, admit it to the scheduler. HTTP, WebSocket, OpenAI and Wyoming all go through here."""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from tts_service import memory
from tts_service.admission import retry_after
from tts_service.config import Settings, available_cores
from tts_service.engine import SynthesisOptions, Voice
from tts_service.errors import (
    AudioTooLong,
    InvalidRequest,
    ShuttingDown,
    TextTooLong,
    ValidationFailed,
)
from tts_service.memory import IdleTrimmer, seconds_since_process_start
from tts_service.scheduler import Job, Priority, Scheduler, SchedulerObserver, audio_limit_message
from tts_service.voice_memory import LoadMeter
from tts_service.voices import VoiceCatalog, discover, resolve_speaker

log = logging.getLogger(__name__)

# A voice's speech per phoneme id varies by sentence (25-50 ms on the bundled voice at
# length_scale 1; a tiny test voice far less): the lower bound uses this share of the least
# the voice itself has produced so far, so it never refuses what would have fitted.
SPEECH_BOUND_SHARE = 0.5


@dataclass(frozen=True)
class SpeechRequest:
    """A validated request, independent of the transport it came from."""

    text: str
    voice: str | None = None
    speaker: str | int | None = None
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    volume: float = 1.0
    sentence_silence: float = 0.0
    priority: str = "normal"
    timeout: float | None = None
    client: str = ""
    """Who asked (HTTP: remote address; WebSocket and Wyoming: one connection), for the
    per-client limit and fairness between clients."""


@dataclass
class Admitted:
    """A request the scheduler accepted, with what a response needs to describe it."""

    job: Job
    voice: Voice
    sentences: int
    characters: int = 0


@dataclass(eq=False)
class OpenStream:
    """A streamed request: validated when opened, admitted with its first sentence."""

    request: SpeechRequest
    voice: Voice
    options: SynthesisOptions
    label: str = ""
    admitted: Admitted | None = None
    """Set once the first sentence has arrived and the scheduler took the job."""
    characters: int = 0
    closed: bool = False
    """No more text will come."""


class TTSService:
    def __init__(
        self,
        settings: Settings,
        *,
        catalog: VoiceCatalog | None = None,
        observer: SchedulerObserver | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or VoiceCatalog(
            discover(settings.voices_dir),
            threads_per_session=settings.threads_per_worker,
            max_loaded=settings.max_loaded_voices,
            spin=settings.worker_count * settings.threads_per_worker <= available_cores(),
            solo_threads=settings.solo_threads,
            memory_budget=settings.memory_budget,
            meter=LoadMeter(quiet=self._quiet),
            retry_after=lambda: retry_after(self.scheduler.stats()["predicted_wait_seconds"]),
        )
        self.scheduler = Scheduler(
            workers=settings.worker_count,
            policy=settings.policy,
            max_queued_requests=settings.max_queued_requests,
            max_queued_sentences=settings.max_queued_sentences,
            max_sentences_ahead=settings.max_sentences_ahead,
            observer=observer,
            solo_first=settings.solo_threads is not None,
            max_client_requests=settings.max_client_requests,
            stall_timeout=settings.stall_timeout,
        )
        # espeak-ng is process-global behind Piper's lock: one thread is all it can use.
        self._phonemizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phonemizer")
        self.trimmer = IdleTrimmer(self.scheduler.idle, self._activity)
        self.ready = False
        self.ready_seconds: float | None = None
        """From the process's start to readiness (default voice loaded and warm)."""

    def _quiet(self) -> int | None:
        """None while synthesis runs; else a count that changes when it has run."""
        return None if self.scheduler.working else self._activity()

    def _activity(self) -> int:
        """Grows with every sentence and load: work that leaves freed memory behind."""
        return int(self.scheduler.totals["sentences"]) + self.catalog.loads

    async def start(self) -> None:
        self.scheduler.start()
        self.trimmer.start()
        loop = asyncio.get_running_loop()
        for name in dict.fromkeys([self.settings.default_voice, *self.settings.preload_voices]):
            voice = await self.catalog.get(name)
            # One sentence now: the first request does not pay onnxruntime's first-run
            # cost, and the voice knows its pace for the audio cap's estimate.
            await loop.run_in_executor(None, voice.warm_up)
        self.ready = True
        self.ready_seconds = seconds_since_process_start()
        log.info("ready in %.2f s after the process started", self.ready_seconds)

    async def stop(self) -> None:
        self.ready = False
        self.trimmer.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.scheduler.stop)
        self._phonemizer.shutdown(wait=False, cancel_futures=True)

    def memory_report(self) -> dict[str, int | None]:
        """The process's memory now, what loaded voices take (measured as each loaded)
        and the budget they keep to."""
        return {
            "resident_bytes": memory.resident_bytes(),
            "peak_resident_bytes": memory.peak_resident_bytes(),
            "voices_bytes": self.catalog.memory_bytes,
            "budget_bytes": self.settings.memory_budget,
            "idle_trims": self.trimmer.trims,
        }

    @property
    def accepting(self) -> bool:
        return self.ready and not self.scheduler.draining

    async def phonemize(self, voice: Voice, text: str) -> list[list[int]]:
        if self.scheduler.stopped:  # the phonemizer pool is shut down too: say so, not a 500
            raise ShuttingDown("the server is shutting down and takes no new requests")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._phonemizer, voice.phonemize, speakable(text))

    def check_text(self, text: str) -> None:
        if not text.strip():
            raise ValidationFailed("text must not be empty", param="text")
        if len(text) > self.settings.max_text_chars:
            raise TextTooLong(
                f"text has {len(text)} characters; the limit is {self.settings.max_text_chars}",
                param="text",
            )

    async def resolve(
        self, request: SpeechRequest, hold: bool = False
    ) -> tuple[Voice, SynthesisOptions]:
        """The request's voice and options. `hold`: the voice stays loaded until
        `catalog.release(voice)` (submit hands that to the job's end)."""
        name = request.voice or self.settings.default_voice
        voice = await (self.catalog.acquire(name) if hold else self.catalog.get(name))
        try:
            speaker_id = resolve_speaker(voice.info, request.speaker)
        except BaseException:
            if hold:
                self.catalog.release(voice)
            raise
        options = SynthesisOptions(
            speaker_id=speaker_id,
            length_scale=request.length_scale,
            noise_scale=_first(request.noise_scale, self.settings.noise_scale),
            noise_w_scale=_first(request.noise_w_scale, self.settings.noise_w_scale),
            volume=request.volume,
            sentence_silence=request.sentence_silence,
        )
        return voice, options

    def check_audio_length(
        self, voice: Voice, sentences: list[list[int]], options: SynthesisOptions
    ) -> None:
        """Refuse before any synthesis what is sure to pass the output cap; what is not
        sure is stopped when its audio passes the cap (the scheduler enforces it)."""
        least = least_audio_seconds(voice, sentences, options)
        limit = self.settings.max_audio_seconds
        if least > limit:
            raise AudioTooLong(
                f"{audio_limit_message(limit)}: this text gives at least {least:.0f} s "
                f"({len(sentences)} sentences at length_scale "
                f"{options.length_scale or voice.default_length_scale:g}, "
                f"{options.sentence_silence:g} s of silence after each)",
                param="text",
                limit_seconds=limit,
            )

    def _timeout(self, requested: float | None) -> float:
        """A request may shorten the server's deadline, never extend it."""
        if requested is None:
            return self.settings.request_timeout
        return min(requested, self.settings.request_timeout)

    async def submit(self, request: SpeechRequest, label: str = "") -> Admitted:
        """Validate fully, phonemize, admit. Raises a ServiceError before any audio exists."""
        self.check_text(request.text)
        priority = _priority(request.priority)
        voice, options = await self.resolve(request, hold=True)
        try:  # the job releases the voice when it is over; until then, this does
            sentences = await self.phonemize(voice, request.text)
            if not sentences:
                raise ValidationFailed("text contains nothing that can be spoken", param="text")
            self.check_audio_length(voice, sentences, options)
            job = self.scheduler.submit(
                voice,
                sentences,
                options,
                priority=priority,
                timeout=self._timeout(request.timeout),
                label=label,
                client=request.client,
                max_seconds=self.settings.max_audio_seconds,
                on_done=partial(self.catalog.release, voice),
            )
        except BaseException:
            self.catalog.release(voice)
            raise
        return Admitted(job, voice, len(sentences), len(request.text))

    async def open_stream(self, request: SpeechRequest, label: str = "") -> OpenStream:
        """Start a request whose text arrives in pieces (see `add_text`).

        Everything about it is checked now (priority, voice, speaker, shutdown), so a bad
        request is told at once; it enters the scheduler only with its first sentence, so
        a client that opens a stream and stays silent holds no admission slot."""
        _priority(request.priority)
        if self.scheduler.draining or self.scheduler.stopped:
            raise ShuttingDown("the server is shutting down and takes no new requests")
        voice, options = await self.resolve(request)
        return OpenStream(request, voice, options, label)

    async def add_text(self, stream: OpenStream, text: str, close: bool = False) -> None:
        """Add text to a stream; `close` ends it. The first sentence admits its job (which may
        raise Overloaded); a stream closed before any sentence is admitted never."""
        if stream.admitted is None and text.strip():
            await self._admit_first_text(stream, text, close)
            return
        sentences = await self.phonemize(stream.voice, text) if text.strip() else []
        stream.characters += len(text)
        if stream.admitted is not None:
            stream.admitted.sentences += len(sentences)
            stream.admitted.characters += len(text)
            self.scheduler.add_sentences(stream.admitted.job, sentences, close=close)
        stream.closed = close

    async def _admit_first_text(self, stream: OpenStream, text: str, close: bool) -> None:
        """A silent open stream holds no voice (the cache may evict it meanwhile): the
        first text takes the voice again and holds it for the job."""
        stream.voice = await self.catalog.acquire(stream.voice.info.name)
        try:
            sentences = await self.phonemize(stream.voice, text)
            stream.characters += len(text)
            if sentences:
                job = self._admit_stream(stream, sentences, closed=close)
                stream.admitted = Admitted(job, stream.voice, len(sentences), stream.characters)
        except BaseException:
            self.catalog.release(stream.voice)
            raise
        if stream.admitted is None:  # only unspeakable text so far: nothing holds it
            self.catalog.release(stream.voice)
        stream.closed = close

    def _admit_stream(self, stream: OpenStream, sentences: list[list[int]], closed: bool) -> Job:
        # The whole text is unknown here, so the audio cap cannot be checked up front;
        # the scheduler stops the job when its audio passes it.
        request = stream.request
        return self.scheduler.submit(
            stream.voice,
            sentences,
            stream.options,
            priority=_priority(request.priority),
            timeout=self._timeout(request.timeout),
            closed=closed,
            label=stream.label,
            client=request.client,
            max_seconds=self.settings.max_audio_seconds,
            on_done=partial(self.catalog.release, stream.voice),
        )


# espeak-ng reads C strings: a NUL raises, and an unpaired UTF-16 surrogate (JSON "\ud800")
# cannot even be encoded. No control character is ever spoken: make them all spaces.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def least_audio_seconds(
    voice: Voice, sentences: list[list[int]], options: SynthesisOptions
) -> float:
    """A lower bound on the audio `sentences` produce: the silence after each, plus each
    phoneme id at half the least speech per id (per unit of length scale) the voice has
    produced so far (nothing, until it has spoken)."""
    length_scale = options.length_scale or voice.default_length_scale
    ids = sum(len(sentence) for sentence in sentences)
    pace = voice.least_seconds_per_id or 0.0
    speech = ids * SPEECH_BOUND_SHARE * pace * length_scale
    return speech + len(sentences) * options.sentence_silence


def speakable(text: str) -> str:
    """`text` without what the phonemizer chokes on; tabs and line breaks stay."""
    return _UNSPEAKABLE.sub(" ", text)


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _priority(name: str) -> Priority:
    try:
        return Priority.parse(name)
    except KeyError:
        raise InvalidRequest(
            f"priority must be one of high, normal, low (got {name!r})", param="priority"
        ) from None
