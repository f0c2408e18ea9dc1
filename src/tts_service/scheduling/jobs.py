"""What the scheduler holds per request: its job, the job's states, the chunks it hands
out, priority classes, and the claim a worker holds on one sentence."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tts_service.errors import AudioTooLong, ServiceError
from tts_service.scheduling.synthesizer import SentenceStore, Synthesizer

if TYPE_CHECKING:  # config imports scheduling: the engine stays unloaded until a voice is
    from tts_service.engine.pieces import SentencePieces
    from tts_service.engine.voice import SentenceAudio, SynthesisOptions

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, name: str) -> Priority:
        return cls[name.upper()]


class JobState(enum.Enum):
    QUEUED = "queued"  # admitted, no sentence started yet
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})


@dataclass(frozen=True)
class Chunk:
    """One synthesized sentence, 16-bit mono PCM at the voice's sample rate; or one piece
    of it, when it was decoded in pieces (`first` and `last` say which)."""

    index: int
    pcm: bytes
    synth_seconds: float
    samples_per_id: tuple[int, ...] | None = None
    """Samples each phoneme id took, when the voice reports it (for word timestamps); on
    a sentence's first piece only."""
    first: bool = True
    last: bool = True
    sentence_samples: int | None = None
    """On a first piece that is not the whole sentence: the sentence's samples, its
    silence included (word timings need them before the rest exists)."""

    @property
    def samples(self) -> int:
        """The sentence's samples, when this is its first chunk."""
        return self.sentence_samples if self.sentence_samples is not None else len(self.pcm) // 2


END = object()
"""The last item of a job's queue when it ended well (a failure ends it with its error)."""


@dataclass(eq=False)
class Job:
    """One admitted request: a voice, its sentences, settings, and its output queue."""

    voice: Synthesizer
    sentences: list[list[int]]
    options: SynthesisOptions
    priority: Priority
    timeout: float
    closed: bool = True
    """False while more sentences may still be added (streaming text input)."""
    label: str = ""
    client: str = ""
    """Who asked; fairness and the per-client limit are between clients."""
    max_samples: int | None = None
    """Most audio the request may produce (the output cap), in samples."""
    pieces: bool = False
    """Its reader streams: a first sentence may reach it in pieces as it is decoded."""
    on_done: Callable[[], None] | None = None
    """Called once when the job has finished and none of its sentences runs any more
    (the voice cache may then evict its voice)."""
    cache: SentenceStore | None = None
    """Where its sentences may already be (cached.py); None: each one is synthesized."""
    sentence_options: dict[int, SynthesisOptions] = field(default_factory=dict)
    """Sentences that speak otherwise than `options` (a pause after them, another pace)."""

    id: int = 0
    seq: int = 0
    state: JobState = JobState.QUEUED
    submitted_at: float = 0.0
    started_at: float | None = None
    first_audio_at: float | None = None
    finished_at: float | None = None
    synth_seconds: float = 0.0
    audio_samples: int = 0
    error: ServiceError | None = None
    next_dispatch: int = 0
    consumed: int = 0
    next_emit: int = 0
    cache_checked: int = 0
    """Its sentences before this index have been looked up in its cache (once each)."""
    in_flight: int = 0
    produced_samples: int = 0
    waiting_since: float | None = None
    """Since when audio has been waiting for a reader that takes nothing (stall guard)."""
    produced: dict[int, Chunk] = field(default_factory=dict)
    _queue: asyncio.Queue[Any] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _deadline_handle: asyncio.TimerHandle | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def queue_wait(self) -> float:
        end = self.started_at if self.started_at is not None else time.monotonic()
        return end - self.submitted_at

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.voice.sample_rate

    def options_at(self, index: int) -> SynthesisOptions:
        """How sentence `index` is spoken."""
        return self.sentence_options.get(index, self.options)

    def add_options(self, options: Mapping[int, SynthesisOptions]) -> None:
        """The options of sentences about to be added (indexed from the first of them)
        that differ from the job's; on the loop thread, before `add_sentences`, which
        alone adds sentences: no worker can claim them yet."""
        for index, mine in options.items():
            self.sentence_options[len(self.sentences) + index] = mine

    def pending_sentences(self) -> int:
        return len(self.sentences) - self.next_dispatch

    def start(self) -> None:
        """Its first sentence is claimed: the queue deadline no longer applies."""
        self.state = JobState.RUNNING
        self.started_at = time.monotonic()
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()

    def keep(self, index: int, audio: SentenceAudio, seconds: float) -> bool:
        """Hold sentence `index`'s audio until it is the reader's turn; False, holding
        nothing, when it takes the request past its audio cap."""
        self.synth_seconds += seconds
        self.produced_samples += len(audio.pcm) // 2
        if self.max_samples is not None and self.produced_samples > self.max_samples:
            return False
        whole = audio.streamed == 0
        timings = audio.samples_per_id if whole else None
        self.produced[index] = Chunk(index, audio.pcm, seconds, timings, first=whole)
        return True

    def piece(
        self,
        index: int,
        pcm: bytes,
        plan: SentencePieces,
        first: bool,
        first_audio: Callable[[float], None],
    ) -> bool:
        """Hand the reader a piece of the sentence it waits for (the next to emit) before
        the sentence is done, its timings on the first piece; False, handing nothing,
        past the audio cap."""
        self.produced_samples += len(pcm) // 2
        if self.max_samples is not None and self.produced_samples > self.max_samples:
            return False
        timings, samples = (plan.samples_per_id, plan.samples) if first else (None, None)
        chunk = Chunk(index, pcm, 0.0, timings, first, last=False, sentence_samples=samples)
        self._emitted(chunk, first_audio)
        return True

    def past_cap(self) -> AudioTooLong:
        """The error of a request whose audio went past its cap."""
        limit = (self.max_samples or 0) / self.voice.sample_rate
        return AudioTooLong(audio_limit_message(limit), param="text")

    def emit_ready(self, first_audio: Callable[[float], None]) -> None:
        """Hand finished sentences to the reader strictly in order; `first_audio` is told
        the wait from submission when the first of them goes."""
        while self.next_emit in self.produced:
            chunk = self.produced.pop(self.next_emit)
            self.next_emit += 1
            self._emitted(chunk, first_audio)

    def _emitted(self, chunk: Chunk, first_audio: Callable[[float], None]) -> None:
        self.audio_samples += len(chunk.pcm) // 2
        if self.waiting_since is None:  # the reader has audio to take from now on
            self.waiting_since = time.monotonic()
        if self.first_audio_at is None:
            self.first_audio_at = time.monotonic()
            first_audio(self.first_audio_at - self.submitted_at)
        self.deliver(chunk)

    def took_one(self, chunk: Chunk) -> None:
        """The reader took a chunk: the stall clock restarts if more audio is waiting."""
        if not chunk.last:  # a piece: the sentence is not taken yet, but it is moving
            self.waiting_since = time.monotonic()
            return
        self.consumed += 1
        self.waiting_since = time.monotonic() if self.next_emit > self.consumed else None

    def end(self, state: JobState, error: ServiceError | None) -> float:
        """It is over, in `state`: drop what it holds; its latency from submission."""
        self.state = state
        self.error = error
        self.finished_at = time.monotonic()
        self.produced.clear()
        if self._deadline_handle is not None:
            self._deadline_handle.cancel()
        self.waiting_since = None
        return self.finished_at - self.submitted_at

    def deliver(self, item: object) -> None:
        """Put a chunk, an error or END on the reader's queue, from any thread."""
        assert self._loop is not None and self._queue is not None
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    def call_done(self) -> None:
        """Under the scheduler's lock, once the job is finished: its `on_done`, when
        nothing of it is still being synthesized (a cancelled job's sentence in flight
        runs to its end)."""
        if self.on_done is None or self.in_flight > 0:
            return
        on_done, self.on_done = self.on_done, None
        try:
            on_done()
        except Exception:  # a hook must never take the scheduler down
            log.exception("on_done hook of request %s failed", self.id)


def audio_limit_message(limit: float) -> str:
    return f"the request would produce more than {limit:g} s of audio, the most one request may"


Claim = tuple[Job, int]
"""A sentence a worker has taken: its job and its index there."""
