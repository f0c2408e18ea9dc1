"""What a worker does outside the scheduler's lock: call the voice for one claimed
sentence, or for a batch of them, and time it. A failure is returned (one sentence) or
logged for the scheduler to retry each alone (a batch), never raised."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from tts_service.engine.pieces import SentencePieces
from tts_service.engine.voice import SentenceAudio
from tts_service.scheduling.jobs import Claim, Job
from tts_service.scheduling.synthesizer import BatchSynthesizer, PieceSynthesizer

log = logging.getLogger(__name__)


def synthesize_one(job: Job, index: int, solo: bool) -> tuple[SentenceAudio | Exception, float]:
    """The sentence's audio, or the error it raised; and the seconds it took."""
    started = time.perf_counter()
    try:
        audio = job.voice.synthesize(job.sentences[index], job.options_at(index), solo=solo)
    except Exception as exc:  # a failing sentence fails its job only
        log.exception("synthesis failed for request %s sentence %d", job.id, index)
        return exc, time.perf_counter() - started
    return audio, time.perf_counter() - started


Handover = Callable[[bytes, SentencePieces, bool], bool]
"""Give the reader one piece (`True`: the first); False: stop, the request is over."""


def synthesize_in_pieces(
    job: Job, index: int, solo: bool, hand_over: Handover
) -> tuple[SentenceAudio | Exception, float] | None:
    """The sentence decoded in pieces, each but the last handed over as it comes; the
    last is the result (`streamed` says how much went before it). None: the voice decodes
    it whole (call `synthesize_one`)."""
    voice = job.voice
    if not isinstance(voice, PieceSynthesizer):
        return None
    started = time.perf_counter()
    try:
        plan = voice.in_pieces(job.sentences[index], job.options_at(index), solo=solo)
        if plan is None:
            return None
        handed: list[bytes] = []
        held = b""
        for pcm in plan.pieces:
            if held:
                if not hand_over(held, plan, not handed):
                    _stop(plan)  # the request is over: nobody takes the rest
                    return SentenceAudio(b""), time.perf_counter() - started
                handed.append(held)
            held = pcm
        audio = SentenceAudio(held, plan.samples_per_id, earlier=b"".join(handed))
    except Exception as exc:  # a failing sentence fails its job only
        log.exception("synthesis failed for request %s sentence %d", job.id, index)
        return exc, time.perf_counter() - started
    return audio, time.perf_counter() - started


def _stop(plan: SentencePieces) -> None:
    close = getattr(plan.pieces, "close", None)
    if close is not None:
        close()


def synthesize_together(claims: Sequence[Claim]) -> tuple[Sequence[SentenceAudio], float] | None:
    """The claimed sentences (one voice, one `batch_key`) in one model run: each one's
    audio, in order, and the run's seconds; None when the run failed."""
    voice = claims[0][0].voice
    items = [(job.sentences[index], job.options_at(index)) for job, index in claims]
    started = time.perf_counter()
    try:
        assert isinstance(voice, BatchSynthesizer)
        audios = list(voice.synthesize_batch(items))
        if len(audios) != len(claims):
            raise RuntimeError(f"{len(audios)} results for {len(claims)} sentences")
    except Exception:
        log.exception("a batch of %d sentences failed; each runs again alone", len(claims))
        return None
    return audios, time.perf_counter() - started
