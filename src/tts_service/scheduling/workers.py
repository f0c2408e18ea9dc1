"""The threads that synthesize: N regular workers and one express lane.

A regular worker repeatedly takes the policy's pick (and, with batching, its companions),
synthesizes it outside the lock and hands the result back to the scheduler.

The express lane bounds how long a newcomer waits for a worker (issue 18). When every
regular worker is busy with a sentence (or a solo sentence has the machine), a request's
first sentence that the policy would run next anyway (and that is short: at most
`ExpressRule.max_ids` phoneme ids) runs at once on one more thread, on the voice's
one-thread session, instead of waiting for a running sentence to end. That oversubscribes
the CPU by one thread for at most one short sentence. The regular workers run at a lower
CPU priority (`nice`), so the express sentence, the event loop and the phonemizer get the
cores first while the long sentences they interrupt carry on in the gaps: the CPU stays
full, and a running long sentence is slowed by at most the express one.

Threads are OS threads (onnxruntime releases the GIL); the scheduler's lock guards every
shared change.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tts_service.engine.pieces import SentencePieces
from tts_service.engine.voice import SentenceAudio
from tts_service.errors import ServiceError, SynthesisFailed
from tts_service.scheduling import runs
from tts_service.scheduling.batching import Batch, BatchRule
from tts_service.scheduling.dispatch import Dispatch
from tts_service.scheduling.jobs import Claim, Job
from tts_service.scheduling.stats import Figures
from tts_service.scheduling.synthesizer import Synthesizer

log = logging.getLogger(__name__)

EXPRESS_MAX_IDS = 240
"""Phoneme ids of the longest sentence the express lane takes: a 12-15 word sentence of
the bundled voice, ~0.15 s on one thread. Longer first sentences wait for a worker."""
WORKER_NICE = 5
"""How much lower the regular workers' CPU priority is than the rest of the process. At 5
(CPU weight 335 against 1024) the express sentence still gets most of a core beside the
workers, and another program on the machine does not starve synthesis the way it does
at 10 (weight 110): there admission's predicted waits no longer held under foreign load."""

Result = SentenceAudio | Exception


@dataclass(frozen=True)
class ExpressRule:
    """Whether the express lane runs, and the longest sentence it takes."""

    enabled: bool = False
    max_ids: int = EXPRESS_MAX_IDS


class Host(Protocol):
    """What the workers need of the scheduler."""

    @property
    def lock(self) -> threading.Condition: ...
    @property
    def stopped(self) -> bool: ...
    @property
    def figures(self) -> Figures: ...

    def first_audio(self, wait: float) -> None: ...

    def settle(self, job: Job, index: int, result: Result, elapsed: float, learn: bool) -> None:
        """Under the lock: a claimed sentence is done."""

    def fail(self, job: Job, error: ServiceError) -> None:
        """Under the lock."""

    def batched(self, size: int) -> None:
        """Under the lock: one model run of `size` sentences (batching on)."""

    def learn_speed(self, voice: Synthesizer, ids: int, seconds: float) -> None: ...


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (Linux: per thread; no privilege
    is needed to lower it). Where it cannot be done, the thread runs as it is."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError) as error:  # not Linux, or a sandbox that forbids it
        log.debug("worker priority unchanged: %s", error)


class WorkerPool:
    def __init__(
        self,
        host: Host,
        dispatch: Dispatch,
        count: int,
        batch: BatchRule,
        express: ExpressRule,
        nice: int = WORKER_NICE,
    ) -> None:
        self._host = host
        self._dispatch = dispatch
        self.count = count
        self.batch = batch
        self.express = express
        self.nice = nice
        self.busy = 0
        """Regular workers holding a sentence (or a batch)."""
        self.express_busy = False
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.count):
            self._spawn(self._work, f"tts-worker-{n}")
        if self.express_lane:
            self._spawn(self._express, "tts-express")

    @property
    def express_lane(self) -> bool:
        """Asked for, and the policy puts newcomers first; never beside batching, whose
        device (a GPU) runs one model at a time anyway."""
        return self.express.enabled and self._dispatch.policy.express and not self.batch.enabled

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def report(self) -> dict[str, int | bool]:
        return {"workers": self.count, "busy_workers": self.busy, "express_lane": self.express_lane}

    @property
    def working(self) -> bool:
        return self.busy > 0 or self.express_busy

    @property
    def live_workers(self) -> int:
        """Regular worker threads alive (a worker survives any error; tests check this)."""
        return sum(t.is_alive() for t in self.threads if t.name.startswith("tts-worker"))

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout=timeout)
        self.threads.clear()

    # ------------------------------------------------------------- regular workers

    def _work(self) -> None:
        lower_priority(self.nice)
        lock, dispatch = self._host.lock, self._dispatch
        while True:
            with lock:
                job = dispatch.pick()
                while job is None and not self._host.stopped:
                    lock.wait()
                    job = dispatch.pick()
                if self._host.stopped or job is None:
                    return
                self.busy += 1
                index = dispatch.claim(job)
                # In pieces, the sentence runs on one core and its reader has audio soon:
                # the other cores may take the request's next sentences meanwhile.
                pieces = dispatch.may_stream(job, index)
                solo = dispatch.solo_running = not pieces and dispatch.can_run_solo(job, index)
                claims = [(job, index)] if solo or pieces else self._fill_batch(job, index)
                if not claims:
                    self.busy -= 1
            try:
                if len(claims) > 1:
                    self._run_batch(claims)
                elif claims:
                    self._run(*claims[0], solo, pieces)
            except Exception as exc:  # never lose a worker: fail only the jobs at hand
                self._failed(claims, exc)

    def _fill_batch(self, job: Job, index: int) -> list[Claim]:
        """Under the lock: the claimed sentence and the companions that share its run (see
        `Dispatch.fill`); nothing when every claimed request ended while it waited."""
        batch = Batch.open(self.batch, job, index)
        if batch is None:
            return [(job, index)]
        lock = self._host.lock
        return self._dispatch.fill(batch, lock.wait, lambda: self._host.stopped)

    def _run(self, job: Job, index: int, solo: bool, pieces: bool = False) -> None:
        """Synthesize one sentence outside the lock (in pieces, each handed over as it is
        decoded, when `pieces` and the voice can), then hand it over under it."""
        result, elapsed = self._synthesized(job, index, solo, pieces)
        with self._host.lock:
            self.busy -= 1
            if solo:
                self._dispatch.solo_running = False
                self._host.figures.solo_sentences += 1
            if self.batch.enabled:
                self._host.batched(1)
            # The all-cores session is faster than what admission plans for; a sentence
            # in pieces slower (the decoder's margins), and it waited for its reader.
            learn = not solo and not (isinstance(result, SentenceAudio) and result.streamed)
            self._host.settle(job, index, result, elapsed, learn=learn)

    def _synthesized(self, job: Job, index: int, solo: bool, pieces: bool) -> tuple[Result, float]:
        if pieces:
            host = self._host

            def hand_over(pcm: bytes, plan: SentencePieces, first: bool) -> bool:
                """A piece to the reader, unless the request ended (then: stop decoding)."""
                with host.lock:
                    if job.finished:
                        return False
                    if job.piece(index, pcm, plan, first, host.first_audio):
                        return True
                    host.fail(job, job.past_cap())
                    return False

            ran = runs.synthesize_in_pieces(job, index, solo, hand_over)
            if ran is not None:
                return ran
        return runs.synthesize_one(job, index, solo)

    def _run_batch(self, claims: list[Claim]) -> None:
        """Several sentences in one model run outside the lock, then each handed over as if
        it had run alone. If the batch fails, each sentence runs again alone, so a sentence
        fails only its own request, and only if it fails by itself too."""
        ran = runs.synthesize_together(claims)
        if ran is None:
            self._run_singly(claims)
            return
        audios, elapsed = ran
        ids = [len(job.sentences[index]) for job, index in claims]
        with self._host.lock:
            self.busy -= 1
            self._host.figures.batches += 1
            self._host.figures.batched_sentences += len(claims)
            self._host.batched(len(claims))
            # Admission plans in worker-seconds per phoneme id: the batch's, as a whole.
            self._host.learn_speed(claims[0][0].voice, sum(ids), elapsed)
            for (job, index), audio, count in zip(claims, audios, ids, strict=True):
                self._host.settle(job, index, audio, elapsed * count / sum(ids), learn=False)

    def _run_singly(self, claims: list[Claim]) -> None:
        for job, index in claims:
            with self._host.lock:
                if job.finished:
                    self._host.settle(job, index, DROPPED, 0.0, learn=False)
                    continue
            result, elapsed = runs.synthesize_one(job, index, solo=False)
            with self._host.lock:
                self._host.batched(1)
                self._host.settle(job, index, result, elapsed, learn=True)
        with self._host.lock:
            self.busy -= 1

    def _failed(self, claims: list[Claim], exc: Exception) -> None:
        log.exception("worker error on %d claimed sentence(s)", len(claims))
        with self._host.lock:
            for claimed, _ in claims:
                self._host.fail(claimed, SynthesisFailed(f"internal error: {exc}"))

    # ------------------------------------------------------------- the express lane

    def _express_pick(self) -> Job | None:
        """Under the lock: a newcomer's short first sentence, if every worker is busy or
        a solo sentence (which the other workers wait for) has the machine."""
        solo = self._dispatch.solo_running
        if self.busy < self.count and not solo:
            return None  # a free worker takes the policy's pick itself
        # Only what the policy would run next anyway (priority classes, attained service),
        # when that is a request's short first sentence. An express policy's pick has no
        # side effects, so asking is free.
        job = self._dispatch.pick(beside_solo=solo)
        if job is None or job.next_dispatch != 0 or len(job.sentences[0]) > self.express.max_ids:
            return None
        return job

    def _express(self) -> None:
        lock = self._host.lock
        while True:
            with lock:
                job = self._express_pick()
                while job is None and not self._host.stopped:
                    lock.wait()
                    job = self._express_pick()
                if self._host.stopped or job is None:
                    return
                self.express_busy = True
                index = self._dispatch.claim(job)
                pieces = self._dispatch.may_stream(job, index)
            claims = [(job, index)]
            # One thread, like a worker: on the all-cores session its second thread would
            # only take a core from the workers (measured: throughput fell ~15%).
            try:
                result, elapsed = self._synthesized(job, index, False, pieces)
                with lock:
                    self.express_busy = False
                    self._host.figures.express_sentences += 1
                    # On a thread that outranks the workers: faster than admission plans.
                    self._host.settle(job, index, result, elapsed, learn=False)
            except Exception as exc:  # the lane survives any error, like a worker
                with lock:
                    self.express_busy = False
                self._failed(claims, exc)


DROPPED: Result = SentenceAudio(b"")
"""What a claimed sentence of a request that ended before it ran is settled with."""
