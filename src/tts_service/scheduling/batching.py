"""Which ready sentences may run together as one batch of the model (dynamic batching).

On a GPU one sentence at a time leaves most of the device idle; several sentences from
different requests in one run use it. On a CPU the same run is slower than the sentences
one after another (the padded work is wasted and onnxruntime already uses the cores), so
batching is off unless asked for (`batch_size` 1).

The scheduler's policy stays the one that decides: the first sentence of a batch is the
one it would run without batching, and each companion is the next sentence the policy
would pick among those that fit (`BatchRule.fits`). This module only says what fits.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # config reads the limits below without loading the engine
    from tts_service.engine.voice import SynthesisOptions

LENGTH_RATIO = 1.5
"""Longest sentence in a batch, in phoneme ids, at most this many times the shortest: the
model runs every sentence padded to the longest, so this bounds the wasted work to a third
of the batch."""

MAX_BATCH_SIZE = 64
MAX_BATCH_WAIT = 0.05
"""Seconds: the most the settings let a batch wait for company (50 ms, a fraction of a
sentence's synthesis; a few ms is what it is for)."""


@runtime_checkable
class BatchSynthesizer(Protocol):
    """A voice that can run several sentences in one model run (the engine's `Voice`)."""

    def batch_key(self, options: SynthesisOptions) -> Hashable | None: ...

    def synthesize_batch(
        self, items: Sequence[tuple[list[int], SynthesisOptions]]
    ) -> Sequence[bytes]: ...


@dataclass(frozen=True)
class BatchRule:
    """How big a batch may be and how long its first sentence may wait for company."""

    size: int = 1
    wait: float = 0.0
    """Seconds; see `Scheduler` for when a batch waits at all."""
    length_ratio: float = LENGTH_RATIO

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be 1 to {MAX_BATCH_SIZE}, not {self.size}")
        if self.wait < 0:  # the settings hold it to MAX_BATCH_WAIT
            raise ValueError(f"batch wait must be at least 0 s, not {self.wait}")
        if self.length_ratio < 1:
            raise ValueError("the length ratio is at least 1")

    @property
    def enabled(self) -> bool:
        return self.size > 1

    def fits(self, lengths: Sequence[int], candidate: int) -> bool:
        """Whether a sentence of `candidate` phoneme ids may join sentences of `lengths`."""
        if len(lengths) >= self.size:
            return False
        shortest = min([candidate, *lengths])
        longest = max([candidate, *lengths])
        return longest <= self.length_ratio * shortest


def batch_key(voice: object, options: SynthesisOptions) -> Hashable | None:
    """What `voice` needs a batch's sentences to share, or None when it cannot batch."""
    if isinstance(voice, BatchSynthesizer):
        return voice.batch_key(options)
    return None
