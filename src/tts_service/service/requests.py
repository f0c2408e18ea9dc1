"""What a transport hands the service (SpeechRequest) and what it holds after: the handle
of an admitted request (Admitted) and a streamed request still taking text (OpenStream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.engine.words import PhonemeSource, PlannedMark, PlannedWord, WordClock
from tts_service.scheduling.jobs import Chunk, Job
from tts_service.scheduling.scheduler import Scheduler
from tts_service.text.options import TextOptions


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
    normalization: str | None = None
    """"loudness" or "peak" (engine.voice.SynthesisOptions); None: the server's setting."""
    priority: str = "normal"
    timeout: float | None = None
    client: str = ""
    """Who asked (HTTP: remote address; WebSocket and Wyoming: one connection), for the
    per-client limit and fairness between clients."""
    timestamps: bool = False
    """Time every word (see words.py); a voice that cannot is refused."""
    streamed: bool = False
    """The transport sends the audio as it is made: the first sentence may then come in
    pieces, as it is decoded (chunks share a sentence's `index`: see `Chunk.first`)."""
    cache: bool = True
    """Sentences may come from the audio cache and are kept in it (when the server's
    cache is on); False synthesizes each one afresh and keeps nothing."""
    reading: TextOptions = field(default_factory=TextOptions)
    """How the text is read: SSML, clean-up, normalisation, pauses (text/frontend.py)."""


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
    marks: list[list[PlannedMark]] = field(default_factory=list)
    """With timestamps: each sentence's SSML marks."""

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

    def word_clock(self, phonemes: bool = False) -> WordClock | None:
        """A clock that times each sentence's words (and `phonemes`) as its audio arrives;
        None without timestamps."""
        if self.words is None:
            return None
        silence = int(self.voice.sample_rate * self.job.options.sentence_silence)
        phonemizer = self.voice.phonemizer
        source = PhonemeSource(self.job.sentences, phonemizer.symbols, phonemizer.pad)
        return WordClock(
            self.text,
            self.words,
            self.voice.sample_rate,
            silence,
            self.marks,
            source if phonemes else None,
        )


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
