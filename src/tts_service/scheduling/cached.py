"""Sentences served from the audio cache, without a worker (issue 21).

A job with a store (`synthesizer.SentenceStore`) has each of its sentences looked up once,
the moment it may start (admitted, text added, a sentence settled, the reader took one):
a hit goes to the request at once; every sentence a worker makes is put in the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from tts_service.scheduling.dispatch import Dispatch
from tts_service.scheduling.jobs import Job

if TYPE_CHECKING:  # config imports scheduling: the engine stays unloaded until a voice is
    from tts_service.engine.voice import SentenceAudio

Made = tuple[int, "SentenceAudio", float]
"""A sentence's index, its audio and the seconds it took."""


def in_order(job: Job, dispatch: Dispatch, made: Made | None) -> Iterator[Made]:
    """Under the scheduler's lock: `made` (kept in the job's store), then, while the
    job's next sentence may start and is in its store, that one, taken without a worker.
    Lazy: each is looked up after the one before it was handed over. Each sentence is
    looked up once, so the misses counted are the sentences synthesized."""
    if made is not None:
        if job.cache is not None:
            job.cache.put(job.sentences[made[0]], job.options_at(made[0]), made[1].whole())
        yield made
    while (
        job.cache is not None
        and not job.finished
        and job.cache_checked <= job.next_dispatch
        and dispatch.eligible(job)
    ):
        job.cache_checked = job.next_dispatch + 1
        index = job.next_dispatch
        audio = job.cache.get(job.sentences[index], job.options_at(index))
        if audio is None:
            return
        yield dispatch.take_cached(job), audio, 0.0
