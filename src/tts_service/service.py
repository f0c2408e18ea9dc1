"""The service every transport talks to: validate a request, phonemize it off the event
loop, admit it to the scheduler. HTTP, WebSocket, OpenAI and Wyoming all go through here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from tts_service import memory
from tts_service.config import Settings
from tts_service.engine.devices import choose_device
from tts_service.engine.voice import SynthesisOptions, Voice, pieces_with_offsets
from tts_service.engine.words import PlannedWord, WordClock
from tts_service.errors import (
    AudioTooLong,
    DeadlineExceeded,
    InvalidRequest,
    ShuttingDown,
    SpeakerNotFound,
    TextTooLong,
    ValidationFailed,
    VoiceUnavailable,
    WordTimestampsUnavailable,
)
from tts_service.memory import IdleTrimmer, seconds_since_process_start
from tts_service.scheduling.admission import retry_after
from tts_service.scheduling.scheduler import (
    Chunk,
    Job,
    Priority,
    Scheduler,
    SchedulerObserver,
    audio_limit_message,
)
from tts_service.voices.budget import LoadMeter
from tts_service.voices.defaults import DefaultsBook, VoiceDefaults
from tts_service.voices.downloads import Downloader, VoiceDownloads
from tts_service.voices.folders import VoiceFolders
from tts_service.voices.loaded import LoadedVoices, resolve_speaker
from tts_service.voices.lookup import VoiceLookup
from tts_service.voices.published import CatalogSource

__all__ = ["Admitted", "Chunk", "OpenStream", "SpeechRequest", "TTSService"]

log = logging.getLogger(__name__)

# A voice's speech per phoneme id varies by sentence (25-50 ms on the bundled voice at
# length_scale 1; a tiny test voice far less): the lower bound uses this share of the least
# the voice itself has produced so far, so it never refuses what would have fitted.
SPEECH_BOUND_SHARE = 0.5
WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog."  # a sentence of usual length


@dataclass(frozen=True)
class SpeechRequest:
    """A validated request, independent of the transport it came from."""

    text: str
    voice: str | None = None
    speaker: str | int | None = None
    length_scale: float | None = None
    speed: float | None = None
    """A speed factor relative to the voice's default pace (OpenAI's `speed`); an explicit
    length_scale wins over it."""
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    volume: float | None = None
    """None (here and above): the voice's defaults, then the server's, then 1.0 / 0 s."""
    sentence_silence: float | None = None
    priority: str = "normal"
    timeout: float | None = None
    client: str = ""
    """Who asked (HTTP: remote address; WebSocket and Wyoming: one connection), for the
    per-client limit and fairness between clients."""
    timestamps: bool = False
    """Time every word (see words.py); a voice that cannot is refused."""


@dataclass(eq=False)
class Admitted:
    """The handle a transport holds for one admitted request: its audio in order, touch,
    cancel, and the figures a response describes it with. Transports see the scheduler
    only through it."""

    job: Job
    scheduler: Scheduler = field(repr=False)
    voice: Voice
    sentences: int
    characters: int = 0
    text: str = ""
    words: list[list[PlannedWord]] | None = None
    """With timestamps: each sentence's words and their phoneme ids."""

    def chunks(self) -> AsyncIterator[Chunk]:
        """The request's sentences' audio in order; raises its error if it fails. Leaving
        early (client gone) cancels the request."""
        return self.scheduler.stream(self.job)

    async def collect(self) -> bytes:
        """All of the request's audio as one PCM buffer."""
        return b"".join([chunk.pcm async for chunk in self.chunks()])

    def touch(self) -> None:
        """The reader took part of a chunk: slow but moving is not stalled."""
        self.scheduler.touch(self.job)

    def cancel(self) -> None:
        """Drop what is left of the request; safe to call twice and after it ended."""
        self.scheduler.cancel(self.job)

    @property
    def finished(self) -> bool:
        return self.job.finished

    @property
    def outcome(self) -> str:
        """queued, running, done, failed, cancelled or expired."""
        return self.job.state.value

    @property
    def audio_seconds(self) -> float:
        """Audio delivered so far."""
        return self.job.audio_seconds

    @property
    def audio_samples(self) -> int:
        return self.job.audio_samples

    @property
    def synth_seconds(self) -> float:
        return self.job.synth_seconds

    @property
    def queue_wait(self) -> float:
        return self.job.queue_wait

    def phoneme_ids(self, index: int) -> int:
        """How many phoneme ids sentence `index` has."""
        return len(self.job.sentences[index])

    @property
    def total_phoneme_ids(self) -> int:
        return sum(len(sentence) for sentence in self.job.sentences)

    def word_clock(self) -> WordClock | None:
        """A clock that times each sentence's words as its audio arrives; None without
        timestamps."""
        if self.words is None:
            return None
        silence = int(self.voice.sample_rate * self.job.options.sentence_silence)
        return WordClock(self.text, self.words, self.voice.sample_rate, silence)


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
        catalog: LoadedVoices | None = None,
        observer: SchedulerObserver | None = None,
    ) -> None:
        self.settings = settings
        self.device = choose_device(settings.device)  # DeviceUnavailable: no start
        # A GPU run has the device to itself: no all-cores session for first sentences.
        solo_threads = settings.solo_threads if self.device.active == "cpu" else None
        self.folders = VoiceFolders(
            settings.voice_folders, settings.rescan_interval, quiet=[settings.download_dir]
        )
        self.catalog = catalog or LoadedVoices(
            self.folders.last.voices,
            threads_per_session=settings.threads_per_worker,
            max_loaded=settings.max_loaded_voices,
            spin=settings.worker_count * settings.threads_per_worker <= settings.core_count,
            solo_threads=solo_threads,
            alignments=settings.word_timestamps,
            memory_budget=settings.memory_budget,
            meter=LoadMeter(quiet=self._quiet),
            retry_after=lambda: retry_after(self.scheduler.stats()["predicted_wait_seconds"]),
            device=self.device,
        )
        self.defaults = DefaultsBook(settings.voice_defaults)
        if catalog is None:  # a catalog handed in (tests) is kept as it is
            self.folders.bind(self.catalog, self.defaults)
        else:
            self.defaults.use_files(self.folders.last.defaults)
        self.published = CatalogSource(settings.catalog, settings.download_dir)
        self.downloads = VoiceDownloads(Downloader(settings.voices_url), settings.download_dir)
        self.lookup = VoiceLookup(
            settings, self.catalog, self.folders, self.published, self.downloads
        )
        self._watch: asyncio.Task[None] | None = None
        self.scheduler = Scheduler(
            workers=settings.worker_count,
            policy=settings.policy,
            max_queued_requests=settings.max_queued_requests,
            max_queued_sentences=settings.max_queued_sentences,
            max_sentences_ahead=settings.max_sentences_ahead,
            observer=observer,
            solo_first=solo_threads is not None,
            max_client_requests=settings.max_client_requests,
            stall_timeout=settings.stall_timeout,
            batch=settings.batch_rule,
        )
        # espeak-ng is process-global behind Piper's lock: one thread is all it can use.
        self._phonemizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phonemizer")
        self.trimmer = IdleTrimmer(self.scheduler.idle, self._activity, keep=settings.warm_heap)
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
        log.info("voices run on the %s (%s)", self.device.active, self.device.reason)
        self.scheduler.start()
        self.trimmer.start()
        loop = asyncio.get_running_loop()
        for name in dict.fromkeys([self.settings.default_voice, *self.settings.preload_voices]):
            # By any name a request may use; with download_missing, fetched now if needed.
            voice = await self.lookup.voice(name)
            # One sentence now: the first request does not pay onnxruntime's first-run
            # cost, the voice knows its pace for the audio cap's estimate, and admission
            # starts from a measured synthesis speed instead of a guess.
            ids, seconds = await loop.run_in_executor(None, warm_up, voice)
            self.scheduler.learn_speed(voice, ids, seconds)
        self._watch = asyncio.create_task(self.folders.watch(), name="watch voice folders")
        self.ready = True
        self.ready_seconds = seconds_since_process_start()
        log.info("ready in %.2f s after the process started", self.ready_seconds)

    async def stop(self) -> None:
        self.ready = False
        self.trimmer.stop()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.downloads.close()
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
            "idle_settles": self.trimmer.settles,
        }

    def stats(self) -> dict[str, Any]:
        """The scheduler's figures (queues, workers, latencies) for health and metrics."""
        return self.scheduler.stats()

    @property
    def draining(self) -> bool:
        return self.scheduler.draining

    async def drain(self, grace: float) -> int:
        """Refuse new work, let admitted work finish for up to `grace` seconds; how many
        requests were cut off."""
        return await self.scheduler.drain(grace)

    @property
    def accepting(self) -> bool:
        return self.ready and not self.scheduler.draining

    async def phonemize(self, voice: Voice, text: str) -> list[list[int]]:
        if self.scheduler.stopped:  # the phonemizer pool is shut down too: say so, not a 500
            raise ShuttingDown("the server is shutting down and takes no new requests")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._phonemizer, voice.phonemize, speakable(text))

    async def phonemize_words(
        self, voice: Voice, text: str
    ) -> tuple[list[list[int]], list[list[PlannedWord]]]:
        """`phonemize`, and each sentence's words (offsets into `text`: `speakable` keeps
        every character where it was). Mapping words costs about three times phonemizing,
        so the phonemizer takes the text a piece at a time: other requests' texts are
        phonemized between the pieces of a long one."""
        loop = asyncio.get_running_loop()
        text = speakable(text)
        sentences: list[list[int]] = []
        plans: list[list[PlannedWord]] = []
        for offset, piece in pieces_with_offsets(text):
            if self.scheduler.stopped:  # the phonemizer pool is shut down too
                raise ShuttingDown("the server is shutting down and takes no new requests")
            piece_sentences, piece_plans = await loop.run_in_executor(
                self._phonemizer, voice.phonemize_piece_words, text, offset, piece
            )
            sentences += piece_sentences
            plans += piece_plans
        return sentences, plans

    def check_text(self, text: str) -> None:
        if not text.strip():
            raise ValidationFailed("text must not be empty", param="text")
        if len(text) > self.settings.max_text_chars:
            raise TextTooLong(
                f"text has {len(text)} characters; the limit is {self.settings.max_text_chars}",
                param="text",
            )

    async def resolve(
        self, request: SpeechRequest, within: float | None = None, hold: bool = False
    ) -> tuple[Voice, SynthesisOptions]:
        """The voice (found, or downloaded within `within` seconds) and how it speaks.
        `hold`: the voice stays loaded until `catalog.release(voice)`."""
        name = request.voice or self.settings.default_voice
        voice, _ = await self.lookup.find(name, within, hold=hold)
        try:
            return voice, self.options_for(voice, request)
        except BaseException:
            if hold:
                self.catalog.release(voice)
            raise

    def options_for(self, voice: Voice, request: SpeechRequest) -> SynthesisOptions:
        """The request's values, else the voice's defaults, else the server's."""
        defaults = self.defaults.for_voice(voice.info.name)
        return SynthesisOptions(
            speaker_id=self._speaker(voice, request.speaker, defaults),
            length_scale=_first(request.length_scale, self._paced(voice, request.speed)),
            noise_scale=_first(
                request.noise_scale, defaults.noise_scale, self.settings.noise_scale
            ),
            noise_w_scale=_first(
                request.noise_w_scale, defaults.noise_w_scale, self.settings.noise_w_scale
            ),
            volume=_or(1.0, request.volume, defaults.volume),
            sentence_silence=_or(0.0, request.sentence_silence, defaults.sentence_silence),
        )

    def _paced(self, voice: Voice, speed: float | None) -> float | None:
        """The length scale for `speed` relative to the voice's default pace (its defaults'
        length_scale, else its config's); without a speed, its defaults' length_scale."""
        given = self.defaults.for_voice(voice.info.name).length_scale
        if speed is None:
            return given
        base = given if given is not None else voice.default_length_scale
        return base / speed

    @staticmethod
    def _speaker(voice: Voice, requested: str | int | None, defaults: VoiceDefaults) -> int | None:
        if requested is not None and requested != "":
            return resolve_speaker(voice.info, requested)
        try:
            return resolve_speaker(voice.info, defaults.speaker)
        except SpeakerNotFound as error:
            raise VoiceUnavailable(
                f"voice '{voice.info.name}' is unavailable: its defaults name a speaker it "
                f"does not have ({error.message})"
            ) from None

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

    def _timeout(self, requested: float | None, waited: float = 0.0) -> float:
        """A request may shorten the server's deadline, never extend it; time it already
        `waited` (for its voice to download) counts against it."""
        limit = self.settings.request_timeout
        if requested is not None:
            limit = min(requested, limit)
        if waited <= 0:
            return limit
        if waited >= limit:
            raise DeadlineExceeded(f"the request waited past its {limit:g} s deadline")
        return limit - waited

    async def submit(self, request: SpeechRequest, label: str = "") -> Admitted:
        """Validate fully, phonemize, admit. Raises a ServiceError before any audio exists."""
        self.check_text(request.text)
        priority = _priority(request.priority)
        name = request.voice or self.settings.default_voice
        voice, waited = await self.lookup.find(name, self._timeout(request.timeout), hold=True)
        try:  # the job releases the voice when it is over; until then, this does
            job, sentences, plans = await self._admit(request, label, voice, waited, priority)
        except BaseException:
            self.catalog.release(voice)
            raise
        return Admitted(
            job, self.scheduler, voice, len(sentences), len(request.text), request.text, plans
        )

    async def _admit(
        self, request: SpeechRequest, label: str, voice: Voice, waited: float, priority: Priority
    ) -> tuple[Job, list[list[int]], list[list[PlannedWord]] | None]:
        options = self.options_for(voice, request)
        plans: list[list[PlannedWord]] | None = None
        if request.timestamps:
            check_word_timestamps(voice)
            sentences, plans = await self.phonemize_words(voice, request.text)
        else:
            sentences = await self.phonemize(voice, request.text)
        if not sentences:
            raise ValidationFailed("text contains nothing that can be spoken", param="text")
        self.check_audio_length(voice, sentences, options)
        job = self.scheduler.submit(
            voice,
            sentences,
            options,
            priority=priority,
            timeout=self._timeout(request.timeout, waited),
            label=label,
            client=request.client,
            max_seconds=self.settings.max_audio_seconds,
            on_done=partial(self.catalog.release, voice),
        )
        return job, sentences, plans

    async def open_stream(self, request: SpeechRequest, label: str = "") -> OpenStream:
        """Start a request whose text arrives in pieces (see `add_text`).

        Everything about it is checked now (priority, voice, speaker, shutdown), so a bad
        request is told at once; it enters the scheduler only with its first sentence, so
        a client that opens a stream and stays silent holds no admission slot."""
        _priority(request.priority)
        if self.scheduler.draining or self.scheduler.stopped:
            raise ShuttingDown("the server is shutting down and takes no new requests")
        voice, options = await self.resolve(request, self._timeout(request.timeout))
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
                stream.admitted = Admitted(
                    job, self.scheduler, stream.voice, len(sentences), stream.characters
                )
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


def check_word_timestamps(voice: Voice) -> None:
    if not voice.word_timestamps:
        raise WordTimestampsUnavailable(
            f"voice '{voice.info.name}' cannot time words: its model does not report "
            "phoneme durations (GET /voices shows word_timestamps for each loaded voice)",
            param="timestamps",
        )


def warm_up(voice: Voice) -> tuple[int, float]:
    """Speak a sentence twice (the first run pays onnxruntime's one-time costs); return
    its phoneme ids and the seconds the second run took: a fair first speed figure."""
    quiet = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    sentences = voice.phonemize(WARM_UP_TEXT)
    for sentence in sentences:
        voice.synthesize(sentence, quiet)
    started = time.perf_counter()
    for sentence in sentences:
        voice.synthesize(sentence, quiet)
    return sum(len(sentence) for sentence in sentences), time.perf_counter() - started


def speakable(text: str) -> str:
    """`text` without what the phonemizer chokes on; tabs and line breaks stay."""
    return _UNSPEAKABLE.sub(" ", text)


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)


def _or(fallback: float, *values: float | None) -> float:
    found = _first(*values)
    return fallback if found is None else found


def _priority(name: str) -> Priority:
    try:
        return Priority.parse(name)
    except KeyError:
        raise InvalidRequest(
            f"priority must be one of high, normal, low (got {name!r})", param="priority"
        ) from None
