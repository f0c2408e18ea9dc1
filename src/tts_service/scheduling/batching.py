"""Which ready sentences may run together as one batch of the model (dynamic batching).

On a GPU one sentence at a time leaves most of the device idle; several sentences from
different requests in one run use it. On a CPU the same run is slower than the sentences
one after another (the padded work is wasted and onnxruntime already uses the cores), so
batching is off unless asked for (`batch_size` 1).

The scheduler's policy stays the one that decides: the first sentence of a batch is the
one it would run without batching, and each companion is the next sentence the policy
would pick among those that fit (`Batch.accepts`). This module says what fits; the
scheduler claims the companions and decides how long a batch waits for them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tts_service.scheduling.jobs import Claim, Job
from tts_service.scheduling.synthesizer import BatchSynthesizer

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

    def report(self) -> dict[str, float]:
        return {"batch_size": self.size, "batch_wait_ms": round(self.wait * 1000, 3)}

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


class Batch:
    """The sentences claimed for one model run: the policy's pick first, then companions
    of the same voice and `batch_key` whose lengths fit the rule."""

    def __init__(self, rule: BatchRule, first: Claim, key: Hashable) -> None:
        self.rule = rule
        self.key = key
        self.voice = first[0].voice
        self.claims = [first]

    @classmethod
    def open(cls, rule: BatchRule, job: Job, index: int) -> Batch | None:
        """A batch starting with the job's sentence `index`, or None when batching is off
        or its voice cannot batch (the sentence then runs alone)."""
        key = batch_key(job.voice, job.options_at(index)) if rule.enabled else None
        return None if key is None else cls(rule, (job, index), key)

    @property
    def lengths(self) -> list[int]:
        return [len(job.sentences[index]) for job, index in self.claims]

    @property
    def full(self) -> bool:
        return len(self.claims) >= self.rule.size

    def accepts(self, other: Job) -> bool:
        """Whether the job's next sentence may join this batch."""
        return (
            other.voice is self.voice
            and batch_key(other.voice, other.options_at(other.next_dispatch)) == self.key
            and self.rule.fits(self.lengths, len(other.sentences[other.next_dispatch]))
        )
