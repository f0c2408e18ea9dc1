"""TTSService, the one door: validate a request, take its voice, phonemize it off the
event loop, admit it to the scheduler, and hand back a handle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from tts_service import memory
from tts_service.cache.requests import RequestCache, VoiceIdentity
from tts_service.cache.store import AudioCache
from tts_service.config import Settings
from tts_service.engine.devices import Device, choose_device
from tts_service.engine.phonemizer import pieces_with_offsets
from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.engine.words import PlannedWord
from tts_service.errors import ShuttingDown, ValidationFailed
from tts_service.memory import IdleTrimmer, seconds_since_process_start
from tts_service.scheduling.admission import retry_after
from tts_service.scheduling.jobs import Job, Priority
from tts_service.scheduling.observer import SchedulerObserver
from tts_service.scheduling.scheduler import Scheduler
from tts_service.scheduling.workers import ExpressRule
from tts_service.service.checks import (
    check_audio_length,
    check_text,
    check_word_timestamps,
    parse_priority,
    request_deadline,
)
from tts_service.service.options import synthesis_options
from tts_service.service.requests import Admitted, OpenStream, SpeechRequest
from tts_service.service.spoken import Spoken, segments_of, speak
from tts_service.text.clean import speakable
from tts_service.text.options import TextOptions
from tts_service.voices.budget import LoadMeter
from tts_service.voices.library import VoiceLibrary
from tts_service.voices.loaded import LoadedVoices

# Logged as the package, as before it was one: log filters keep their logger name.
log = logging.getLogger(__package__)

WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog."  # a sentence of usual length


def scheduler_for(
    settings: Settings, device: Device, observer: SchedulerObserver | None, solo_first: bool
) -> Scheduler:
    """The scheduler the settings describe, on `device`."""
    return Scheduler(
        workers=settings.worker_count,
        policy=settings.policy,
        max_queued_requests=settings.max_queued_requests,
        max_queued_sentences=settings.max_queued_sentences,
        max_sentences_ahead=settings.max_sentences_ahead,
        observer=observer,
        solo_first=solo_first,
        max_client_requests=settings.max_client_requests,
        stall_timeout=settings.stall_timeout,
        batch=settings.batch_rule,
        # The express lane shares the CPU; a GPU runs one model at a time anyway.
        express=ExpressRule(
            settings.express_lane and device.active == "cpu", settings.express_max_ids
        ),
        worker_nice=settings.worker_nice,
    )


def request_cache(
    cache: AudioCache | None, voices: VoiceLibrary, voice: Voice, request: SpeechRequest
) -> RequestCache | None:
    """The request's view of the audio cache; None when the server or the request turns
    it off, or when the voice's files changed on disk since it loaded (what it would say
    may no longer be what the files say: nothing is served or kept)."""
    if cache is None or not request.cache:
        return None
    stamps = voices.stamps(voice)
    if stamps is None:
        return None
    return RequestCache(cache, VoiceIdentity(voice.info.name, *stamps, voice.sample_rate))


class TTSService:
    def __init__(
        self,
        settings: Settings,
        *,
        loaded: LoadedVoices | None = None,
        observer: SchedulerObserver | None = None,
    ) -> None:
        self.settings = settings
        self.device = choose_device(settings.device)  # DeviceUnavailable: no start
        # A GPU run has the device to itself: no all-cores session for first sentences.
        solo_threads = settings.solo_threads if self.device.active == "cpu" else None
        self.voices = VoiceLibrary(
            settings,
            self.device,
            solo_threads=solo_threads,
            meter=LoadMeter(quiet=self._quiet),
            retry_after=lambda: retry_after(self.scheduler.stats()["predicted_wait_seconds"]),
            loaded=loaded,
        )
        self._watch: asyncio.Task[None] | None = None
        self.scheduler = scheduler_for(settings, self.device, observer, solo_threads is not None)
        # espeak-ng is process-global behind Piper's lock: one thread is all it can use.
        self._phonemizer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phonemizer")
        self.trimmer = IdleTrimmer(self.scheduler.idle, self._activity, keep=settings.warm_heap)
        self.cache = AudioCache(settings.cache_budget) if settings.cache else None
        """Synthesized sentences for requests that say them again (None: off)."""
        self.ready = False
        self.ready_seconds: float | None = None
        """From the process's start to readiness (default voice loaded and warm)."""

    def _quiet(self) -> int | None:
        """None while synthesis runs; else a count that changes when it has run."""
        return None if self.scheduler.working else self._activity()

    def _activity(self) -> int:
        """Grows with every sentence and load: work that leaves freed memory behind."""
        return int(self.scheduler.figures.totals["sentences"]) + self.voices.loads

    async def start(self) -> None:
        log.info("voices run on the %s (%s)", self.device.active, self.device.reason)
        self.scheduler.start()
        self.trimmer.start()
        loop = asyncio.get_running_loop()
        for name in dict.fromkeys([self.settings.default_voice, *self.settings.preload_voices]):
            # By any name a request may use; with download_missing, fetched now if needed.
            voice = await self.voices.voice(name)
            # One sentence now: the first request does not pay onnxruntime's first-run
            # cost, the voice knows its pace for the audio cap's estimate, and admission
            # starts from a measured synthesis speed instead of a guess.
            ids, seconds = await loop.run_in_executor(None, warm_up, voice)
            self.scheduler.learn_speed(voice, ids, seconds)
        self._watch = asyncio.create_task(self.voices.watch(), name="watch voice folders")
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
        self.voices.close()
        await asyncio.get_running_loop().run_in_executor(None, self.scheduler.stop)
        self._phonemizer.shutdown(wait=False, cancel_futures=True)

    def memory_report(self) -> dict[str, int | None]:
        """The process's memory now, what loaded voices take (measured as each loaded)
        and the budget they keep to."""
        return {
            "resident_bytes": memory.resident_bytes(),
            "peak_resident_bytes": memory.peak_resident_bytes(),
            "voices_bytes": self.voices.memory_bytes,
            "budget_bytes": self.settings.memory_budget,
            "idle_trims": self.trimmer.trims,
            "idle_settles": self.trimmer.settles,
        }

    def cache_report(self) -> dict[str, int | bool]:
        """The audio cache's size, budget and counters (zeros when it is off)."""
        figures = self.cache.report() if self.cache is not None else AudioCache(0).report()
        return {"enabled": self.cache is not None, **figures}

    def cache_for(self, voice: Voice, request: SpeechRequest) -> RequestCache | None:
        """The request's view of the audio cache (see `request_cache`)."""
        return request_cache(self.cache, self.voices, voice, request)

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
        check_text(text, self.settings.max_text_chars)

    async def resolve(
        self, request: SpeechRequest, within: float | None = None, hold: bool = False
    ) -> tuple[Voice, SynthesisOptions]:
        """The voice (found, or downloaded within `within` seconds) and how it speaks.
        `hold`: the voice stays loaded until `voices.release(voice)`."""
        name = request.voice or self.settings.default_voice
        voice, _ = await self.voices.find(name, within, hold=hold)
        try:
            return voice, self.options_for(voice, request)
        except BaseException:
            if hold:
                self.voices.release(voice)
            raise

    def options_for(self, voice: Voice, request: SpeechRequest) -> SynthesisOptions:
        """The request's values, else the voice's defaults, else the server's."""
        defaults = self.voices.defaults_for(voice.info.name)
        return synthesis_options(voice, request, defaults, self.settings)

    def check_audio_length(
        self,
        voice: Voice,
        sentences: list[list[int]],
        options: SynthesisOptions,
        pauses: float = 0.0,
    ) -> None:
        check_audio_length(voice, sentences, options, self.settings.max_audio_seconds, pauses)

    async def read(
        self, voice: Voice, text: str, reading: TextOptions, options: SynthesisOptions, timed: bool
    ) -> Spoken:
        """The text through the front-end (text/frontend.py) with its voice's lexicon, then
        the phonemizer: its sentences, words (`timed`) and the options of those that differ."""
        lexicon = self.voices.lexicons.for_language(voice.info.language)
        segments = await segments_of(text, reading, voice.info.language, lexicon)
        words = partial(self.phonemize_words, voice) if timed else None
        return await speak(segments, voice, options, partial(self.phonemize, voice), words)

    async def _read_streamed(self, stream: OpenStream, text: str) -> Spoken:
        """A streamed piece of text (an SSML document arrives as one: SentenceSplitter)."""
        return await self.read(stream.voice, text, stream.request.reading, stream.options, False)

    def _timeout(self, requested: float | None, waited: float = 0.0) -> float:
        return request_deadline(self.settings.request_timeout, requested, waited)

    async def submit(self, request: SpeechRequest, label: str = "") -> Admitted:
        """Validate fully, phonemize, admit. Raises a ServiceError before any audio exists."""
        self.check_text(request.text)
        priority = parse_priority(request.priority)
        name = request.voice or self.settings.default_voice
        voice, waited = await self.voices.find(name, self._timeout(request.timeout), hold=True)
        try:  # the job releases the voice when it is over; until then, this does
            job, said = await self._admit(request, label, voice, waited, priority)
        except BaseException:
            self.voices.release(voice)
            raise
        return Admitted(
            job,
            self.scheduler,
            voice,
            len(said.sentences),
            len(request.text),
            request.text,
            said.plans,
            said.marks,
        )

    async def _admit(
        self, request: SpeechRequest, label: str, voice: Voice, waited: float, priority: Priority
    ) -> tuple[Job, Spoken]:
        options = self.options_for(voice, request)
        if request.timestamps:
            check_word_timestamps(voice)
        said = await self.read(voice, request.text, request.reading, options, request.timestamps)
        sentences = said.sentences
        if not sentences:
            raise ValidationFailed("text contains nothing that can be spoken", param="text")
        self.check_audio_length(voice, sentences, options, said.extra_silence)
        job = self.scheduler.submit(
            voice,
            sentences,
            options,
            priority=priority,
            timeout=self._timeout(request.timeout, waited),
            label=label,
            client=request.client,
            max_seconds=self.settings.max_audio_seconds,
            on_done=partial(self.voices.release, voice),
            pieces=request.streamed,
            cache=self.cache_for(voice, request),
            sentence_options=said.options,
        )
        return job, said

    async def open_stream(self, request: SpeechRequest, label: str = "") -> OpenStream:
        """Start a request whose text arrives in pieces (see `add_text`).

        Everything about it is checked now (priority, voice, speaker, shutdown), so a bad
        request is told at once; it enters the scheduler only with its first sentence, so
        a client that opens a stream and stays silent holds no admission slot."""
        parse_priority(request.priority)
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
        said = await self._read_streamed(stream, text) if text.strip() else Spoken()
        sentences = said.sentences
        stream.characters += len(text)
        if stream.admitted is not None:
            stream.admitted.sentences += len(sentences)
            stream.admitted.characters += len(text)
            stream.admitted.job.add_options(said.options)
            self.scheduler.add_sentences(stream.admitted.job, sentences, close=close)
        stream.closed = close

    async def _admit_first_text(self, stream: OpenStream, text: str, close: bool) -> None:
        """A silent open stream holds no voice (the cache may evict it meanwhile): the
        first text takes the voice again and holds it for the job."""
        stream.voice = await self.voices.acquire(stream.voice.info.name)
        try:
            said = await self._read_streamed(stream, text)
            sentences = said.sentences
            stream.characters += len(text)
            if sentences:
                job = self._admit_stream(stream, said, closed=close)
                stream.admitted = Admitted(
                    job, self.scheduler, stream.voice, len(sentences), stream.characters
                )
        except BaseException:
            self.voices.release(stream.voice)
            raise
        if stream.admitted is None:  # only unspeakable text so far: nothing holds it
            self.voices.release(stream.voice)
        stream.closed = close

    def _admit_stream(self, stream: OpenStream, said: Spoken, closed: bool) -> Job:
        # The whole text is unknown here, so the audio cap cannot be checked up front;
        # the scheduler stops the job when its audio passes it.
        request = stream.request
        return self.scheduler.submit(
            stream.voice,
            said.sentences,
            stream.options,
            priority=parse_priority(request.priority),
            timeout=self._timeout(request.timeout),
            closed=closed,
            label=stream.label,
            client=request.client,
            max_seconds=self.settings.max_audio_seconds,
            on_done=partial(self.voices.release, stream.voice),
            pieces=True,  # text that streams in streams out
            cache=self.cache_for(stream.voice, request),
            sentence_options=said.options,
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
