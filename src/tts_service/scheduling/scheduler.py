"""The heart of the service: sentence-level dispatch of synthesis to a fixed pool of worker
threads, under one lock that owns every job's state.

The unit of work is one sentence. Each worker (workers.py) repeatedly asks the policy
(policies.py) which admitted request should get the CPU next, synthesizes one sentence of
it outside the lock (runs.py), and the scheduler hands the audio back to the request's
asyncio queue in sentence order. A newcomer's first sentence goes first, and waits for a
worker at most as long as the express lane takes to start it (workers.py). Who may enter
is admission.py; the queue deadline and the stall reaper are watchdog.py; the figures are
stats.py.

With batching on (`BatchRule.size` > 1, for GPUs), a worker takes the policy's pick and
then, in the policy's own order, the next ready sentences that may share its model run
(same voice, same scales, similar length: batching.py), and runs them together.

Threads: workers are OS threads (onnxruntime releases the GIL); everything a worker does
to shared state happens under one `threading.Condition`. Results cross to the event
loop with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from tts_service.engine.voice import SentenceAudio, SynthesisOptions
from tts_service.errors import (
    Cancelled,
    Overloaded,
    ServiceError,
    ShuttingDown,
    SynthesisFailed,
    TextTooLong,
)
from tts_service.scheduling import admission, cached, reader
from tts_service.scheduling.batching import BatchRule
from tts_service.scheduling.dispatch import Dispatch
from tts_service.scheduling.jobs import END, Chunk, Job, JobState, Priority
from tts_service.scheduling.observer import SafeObserver, SchedulerObserver
from tts_service.scheduling.policies import SchedulingPolicy, create_policy
from tts_service.scheduling.stats import Figures
from tts_service.scheduling.synthesizer import SentenceStore, Synthesizer
from tts_service.scheduling.watchdog import Watchdog
from tts_service.scheduling.workers import WORKER_NICE, ExpressRule, WorkerPool

log = logging.getLogger(__name__)


class Scheduler:
    """Admission control plus a fair sentence-level dispatcher over N worker threads."""

    def __init__(
        self,
        workers: int,
        policy: str | SchedulingPolicy = "fair",
        max_queued_requests: int = 64,
        max_queued_sentences: int = 4096,
        max_sentences_ahead: int = 8,
        observer: SchedulerObserver | None = None,
        solo_first: bool = False,
        max_client_requests: int | None = None,
        stall_timeout: float | None = None,
        batch: BatchRule | None = None,
        express: ExpressRule | None = None,
        worker_nice: int = WORKER_NICE,
    ) -> None:
        self.policy = create_policy(policy) if isinstance(policy, str) else policy
        self.batch = batch if batch is not None and self.policy.batches else BatchRule()
        self.workers = workers
        self.solo_first = solo_first and self.policy.solo_first
        self._dispatch = Dispatch(self.policy, max_sentences_ahead, self.solo_first, self._started)
        self._jobs = self._dispatch.jobs  # admitted, unfinished, in arrival order
        self._safe = SafeObserver(observer or SchedulerObserver())
        self._cond = threading.Condition()
        self._stopping = False
        self.draining = False
        self._ids = itertools.count(1)
        self.pool = WorkerPool(
            self, self._dispatch, workers, self.batch, express or ExpressRule(), worker_nice
        )
        limits = admission.Limits(
            workers, max_queued_requests, max_queued_sentences, max_client_requests
        )
        self.gate = admission.Gate(limits, self.policy)
        self.figures = Figures()
        self.watchdog = Watchdog(self._cond, lambda: list(self._jobs), self._end, stall_timeout)
        self._idle = threading.Event()
        self._idle.set()

    @property
    def observer(self) -> SchedulerObserver:
        return self._safe.inner

    @observer.setter
    def observer(self, observer: SchedulerObserver) -> None:
        self._safe = SafeObserver(observer)

    # ---------------------------------------------------------------- lifecycle

    @property
    def stopped(self) -> bool:
        return self._stopping

    def start(self) -> None:
        self.pool.start()
        self.watchdog.start()

    @property
    def idle(self) -> threading.Event:
        """Set while no admitted request is unfinished."""
        return self._idle

    @property
    def working(self) -> bool:
        """A request is admitted or a sentence still runs (a cancelled one's may)."""
        return not self._idle.is_set() or self.pool.working

    @property
    def live_workers(self) -> int:
        """Worker threads alive (a worker survives any error; tests check this)."""
        return self.pool.live_workers

    def stop(self) -> None:
        """Stop the workers; unfinished jobs fail with ShuttingDown."""
        self.watchdog.stop()
        with self._cond:
            self._stopping = True
            for job in list(self._jobs):
                self.fail(job, ShuttingDown("the server stopped before this request finished"))
            self._cond.notify_all()
        self.pool.join(timeout=10)

    async def drain(self, grace: float) -> int:
        """Refuse new work, let admitted work finish for up to `grace` seconds; how many
        requests had to be cut off (they get a clear ShuttingDown error)."""
        self.draining = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._idle.wait, grace)
        with self._cond:
            left = list(self._jobs)
            for job in left:
                self.fail(job, ShuttingDown("the server shut down before this request finished"))
        return len(left)

    # ---------------------------------------------------------------- admission

    def submit(
        self,
        voice: Synthesizer,
        sentences: Sequence[list[int]],
        options: SynthesisOptions,
        *,
        priority: Priority = Priority.NORMAL,
        timeout: float = 60.0,
        closed: bool = True,
        label: str = "",
        client: str = "",
        max_seconds: float | None = None,
        on_done: Callable[[], None] | None = None,
        pieces: bool = False,
        cache: SentenceStore | None = None,
        sentence_options: Mapping[int, SynthesisOptions] | None = None,
    ) -> Job:
        """Admit a request or raise Overloaded / TooManyClientRequests / ShuttingDown /
        TextTooLong. `max_seconds` caps its audio; `on_done` is called once it is over
        (never if this raises); `pieces`, `cache`: see Job. Loop thread only."""
        loop = asyncio.get_running_loop()
        if len(sentences) > (most := self.gate.limits.max_queued_sentences):
            raise TextTooLong(f"text has {len(sentences)} sentences; at most {most} per request")
        max_samples = None if max_seconds is None else int(max_seconds * voice.sample_rate)
        job = Job(
            voice=voice,
            sentences=list(sentences),
            options=options,
            priority=priority,
            timeout=timeout,
            closed=closed,
            label=label,
            client=client,
            max_samples=max_samples,
            on_done=on_done,
            pieces=pieces,
            cache=cache,
            sentence_options=dict(sentence_options or {}),
        )
        with self._cond:
            self._admit(job)
            job.id = job.seq = next(self._ids)
            job.submitted_at = time.monotonic()
            job._loop, job._queue = loop, asyncio.Queue()
            self._dispatch.add(job)
            self._idle.clear()
            self.figures.totals["submitted"] += 1
            self._deliver(job)
            self._cond.notify_all()
        if job.sentences and not job.finished:
            self.watchdog.arm(job)
        elif job.closed:  # nothing to say: done at once
            with self._cond:
                self._maybe_complete(job)
        return job

    def _admit(self, job: Job) -> None:
        """Under the lock: raise the reason `job` may not enter, if there is one."""
        refused = self.gate.refusal(
            self._jobs,
            job,
            closing=self.draining or self._stopping,
            queued=self._dispatch.queued_sentences(),
            held=self._dispatch.clients.requests(job.client),
        )
        if refused is not None:
            self.figures.totals["rejected"] += 1
            self._safe.rejected(refused.reason)
            raise refused.error

    def learn_speed(self, voice: Synthesizer, ids: int, seconds: float) -> None:
        """One sentence of `voice` took `seconds`: update its speed and the overall one."""
        with self._cond:
            self.gate.speeds.learn(voice, ids, seconds)

    def add_sentences(self, job: Job, sentences: Sequence[list[int]], close: bool = False) -> None:
        """Append sentences to an open job (streaming text input; their options, if they
        differ, are given first with `Job.add_options`). Loop thread only."""
        with self._cond:
            if job.finished:
                return
            if job.closed:
                raise RuntimeError("job is closed")
            queued = self._dispatch.queued_sentences()
            if queued + len(sentences) > self.gate.limits.max_queued_sentences:
                message = "the server is busy (too many sentences queued); retry later"
                self.fail(job, Overloaded(message, retry_after=self.gate.retry_after(self._jobs)))
                return
            had_none = not job.sentences
            job.sentences.extend(sentences)
            job.closed = close
            self._deliver(job)
            self._maybe_complete(job)
            self._cond.notify_all()
        if had_none and sentences:
            self.watchdog.arm(job)

    def cancel(self, job: Job) -> None:
        """The client went away: drop its remaining sentences. Safe to call twice."""
        with self._cond:
            if not job.finished:
                error = Cancelled("the request was cancelled")
                self._end(job, JobState.CANCELLED, error, "cancelled")

    def stream(self, job: Job) -> AsyncIterator[Chunk]:
        """The job's chunks in sentence order (reader.py); leaving early cancels it."""
        return reader.chunks(job, self._cond, self.cancel, self._deliver)

    def touch(self, job: Job) -> None:
        reader.touch(job, self._cond)

    async def collect(self, job: Job) -> bytes:
        return b"".join([chunk.pcm async for chunk in self.stream(job)])

    # ---------------------------------------------------------------- results

    @property
    def lock(self) -> threading.Condition:
        """The one lock that owns every job's state (the workers take it too)."""
        return self._cond

    def batched(self, size: int) -> None:
        self._safe.batched(size)

    def settle(
        self, job: Job, index: int, result: SentenceAudio | Exception, elapsed: float, learn: bool
    ) -> None:
        """Under the lock: a claimed sentence is done; hand it to its request in order."""
        self._dispatch.release(job)
        self._cond.notify_all()
        if job.finished:
            job.call_done()
            return
        if isinstance(result, Exception):
            self.fail(job, SynthesisFailed(f"synthesis failed: {result}"))
            return
        if learn:
            self.learn_speed(job.voice, len(job.sentences[index]), elapsed)
        self.figures.totals["sentences"] += 1
        samples = len(result.pcm) // 2 + result.streamed
        self._safe.sentence_done(elapsed, samples / job.voice.sample_rate)
        self._deliver(job, (index, result, elapsed))

    def _deliver(self, job: Job, made: cached.Made | None = None) -> None:
        """Under the lock: a sentence just `made`, then the cached next ones (cached.py)."""
        for index, audio, elapsed in cached.in_order(job, self._dispatch, made):
            if not job.keep(index, audio, elapsed):
                self.fail(job, job.past_cap())
                return
            job.emit_ready(self.first_audio)
            self._maybe_complete(job)

    def _started(self, job: Job) -> None:
        """Under the lock: the job's first sentence was claimed."""
        job.start()
        self.figures.queue_wait.add(job.queue_wait)
        self._safe.started(job.queue_wait)

    def first_audio(self, wait: float) -> None:
        """Under the lock: a request's first audio went out, `wait` after it came."""
        self.figures.first_audio.add(wait)
        self._safe.first_audio(wait)

    def _maybe_complete(self, job: Job) -> None:
        if job.closed and not job.finished and job.next_emit >= len(job.sentences):
            self._end(job, JobState.DONE, None, "completed")

    def fail(self, job: Job, error: ServiceError) -> None:
        if not job.finished:
            self._end(job, JobState.FAILED, error, "failed")

    def _end(self, job: Job, state: JobState, error: ServiceError | None, total: str) -> None:
        """Under the lock: count the job in `total`, then finish it."""
        self.figures.totals[total] += 1
        self._finish(job, state, error)

    def _finish(self, job: Job, state: JobState, error: ServiceError | None) -> None:
        """Under the lock: take the job out of the dispatcher and tell its reader."""
        latency = job.end(state, error)
        self._dispatch.remove(job)
        if not self._jobs:
            self._idle.set()
        if state is JobState.DONE:
            self.figures.latency.add(latency)
        self._safe.finished(state, latency)
        job.deliver(error if error is not None else END)
        job.call_done()
        self._cond.notify_all()

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "policy": self.policy.name,
                **self.pool.report(),
                **self._dispatch.report(),
                **self.gate.report(self._jobs),
                "draining": self.draining,
                **self.batch.report(),
                **self.figures.report(),
            }
