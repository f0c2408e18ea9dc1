"""What the scheduler needs of a voice: the engine's `Voice`, or a fake in tests."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # config imports scheduling: the engine stays unloaded until a voice is
    from tts_service.engine.pieces import SentencePieces
    from tts_service.engine.voice import SentenceAudio, SynthesisOptions


class Synthesizer(Protocol):
    """A voice the workers synthesize one sentence of at a time."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def has_solo_session(self) -> bool:
        """It has an all-cores session, for a sentence that has the machine to itself."""
        ...

    def synthesize(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentenceAudio:
        """One sentence; `solo=True` runs it on the all-cores session."""
        ...


@runtime_checkable
class BatchSynthesizer(Protocol):
    """A voice that can run several sentences in one model run (the engine's `Voice`)."""

    def batch_key(self, options: SynthesisOptions) -> Hashable | None:
        """What a batch's sentences must share (None: this voice never batches)."""
        ...

    def synthesize_batch(
        self, items: Sequence[tuple[list[int], SynthesisOptions]]
    ) -> Sequence[SentenceAudio]:
        """Several sentences in one run, each as `synthesize` makes it alone."""
        ...


@runtime_checkable
class PieceSynthesizer(Protocol):
    """A voice that can hand out a sentence's audio in pieces as it decodes it (the
    engine's `Voice` when its graph splits: chunked decoding)."""

    def decodes_in_pieces(self, phoneme_ids: list[int], options: SynthesisOptions) -> bool:
        """`in_pieces` would hand this sentence out in pieces (decided before it runs)."""
        ...

    def in_pieces(
        self, phoneme_ids: list[int], options: SynthesisOptions, solo: bool = False
    ) -> SentencePieces | None:
        """The sentence in pieces, or None when it is better decoded whole (too short,
        a graph that does not split)."""
        ...


class SentenceStore(Protocol):
    """One request's view of the audio cache (its voice and options are in every key)."""

    def get(self, phoneme_ids: Sequence[int], options: SynthesisOptions) -> SentenceAudio | None:
        """The sentence's audio, spoken with `options`, if it is cached."""
        ...

    def put(
        self, phoneme_ids: Sequence[int], options: SynthesisOptions, audio: SentenceAudio
    ) -> None:
        """Keep a sentence just made."""
        ...
