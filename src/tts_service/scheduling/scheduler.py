"""The heart of the service: admission, priority, deadlines and fair, sentence-level
dispatch of synthesis to a fixed pool of worker threads.

The unit of work is one sentence. Each worker repeatedly asks the policy which admitted
request should get the CPU next, synthesizes one sentence of it outside the lock, and
hands the PCM back to the request's asyncio queue in sentence order. A short request
therefore waits for at most one sentence of each longer one, never for their whole text.

With batching on (`BatchRule.size` > 1, for GPUs), a worker takes the policy's pick and
then, in the policy's own order, the next ready sentences that may share its model run
(same voice, same scales, similar length: batching.py), and runs them together.

Threads: workers are OS threads (onnxruntime releases the GIL); everything a worker does
to shared state happens under one `threading.Condition`. Results cross to the event
loop with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tts_service.engine.voice import SynthesisOptions
from tts_service.errors import (
    AudioTooLong,
    Cancelled,
    DeadlineExceeded,
    Overloaded,
    ReaderStalled,
    ServiceError,
    ShuttingDown,
    SynthesisFailed,
    TextTooLong,
    TooManyClientRequests,
)
from tts_service.scheduling import admission, batching
from tts_service.scheduling.batching import BatchRule
from tts_service.scheduling.clients import ClientShares

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    HIGH = 0
    NORMAL = 1
    LOW = 2

    @classmethod
    def parse(cls, name: str) -> Priority:
        return cls[name.upper()]


class Synthesizer(Protocol):
    """What the scheduler needs of a voice (the engine's `Voice`, or a fake in tests)."""

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, phoneme_ids: list[int], options: SynthesisOptions) -> bytes: ...


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
    """One synthesized sentence, 16-bit mono PCM at the voice's sample rate."""

    index: int
    pcm: bytes
    synth_seconds: float
    samples_per_id: tuple[int, ...] | None = None
    """Samples each phoneme id took, when the voice reports it (for word timestamps)."""


class SchedulerObserver:
    """Hooks for metrics. Called from worker threads and the event loop; keep them cheap."""

    def rejected(self, reason: str) -> None: ...
    def started(self, queue_wait: float) -> None: ...
    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None: ...
    def first_audio(self, seconds: float) -> None: ...
    def finished(self, state: JobState, latency: float) -> None: ...
    def batched(self, size: int) -> None:
        """One model run of `size` sentences, while batching is on (1: ran alone)."""


class _SafeObserver(SchedulerObserver):
    """An observer whose failures are logged, never raised: a broken metrics hook must
    not kill a worker thread and strand the job it was running."""

    def __init__(self, inner: SchedulerObserver) -> None:
        self.inner = inner

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.inner, name)(*args)
        except Exception:
            log.exception("scheduler observer %s failed", name)

    def rejected(self, reason: str) -> None:
        self._call("rejected", reason)

    def started(self, queue_wait: float) -> None:
        self._call("started", queue_wait)

    def sentence_done(self, synth_seconds: float, audio_seconds: float) -> None:
        self._call("sentence_done", synth_seconds, audio_seconds)

    def first_audio(self, seconds: float) -> None:
        self._call("first_audio", seconds)

    def finished(self, state: JobState, latency: float) -> None:
        self._call("finished", state, latency)

    def batched(self, size: int) -> None:
        self._call("batched", size)


_END = object()

Claim = tuple["Job", int]
"""A sentence a worker has taken: its job and its index there."""


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
    on_done: Callable[[], None] | None = None
    """Called once when the job has finished and none of its sentences runs any more
    (the voice cache may then evict its voice)."""

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

    def pending_sentences(self) -> int:
        return len(self.sentences) - self.next_dispatch


@dataclass
class _Window:
    """Recent samples of one duration, for percentiles."""

    values: deque[float] = field(default_factory=lambda: deque(maxlen=2000))

    def add(self, value: float) -> None:
        self.values.append(value)

    def summary(self) -> dict[str, float | None]:
        if not self.values:
            return {"p50": None, "p95": None, "p99": None}
        ordered = sorted(self.values)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

        return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99)}


class Scheduler:
    """Admission control plus a fair sentence-level dispatcher over N worker threads."""

    def __init__(
        self,
        workers: int,
        policy: str = "fair",
        max_queued_requests: int = 64,
        max_queued_sentences: int = 4096,
        max_sentences_ahead: int = 8,
        observer: SchedulerObserver | None = None,
        solo_first: bool = False,
        max_client_requests: int | None = None,
        stall_timeout: float | None = None,
        batch: BatchRule | None = None,
    ) -> None:
        if policy not in ("fair", "round_robin", "fifo"):
            raise ValueError(f"unknown scheduling policy {policy!r}")
        # fifo is the one-sentence-at-a-time design kept for comparison: it never batches.
        self.batch = batch if batch is not None and policy != "fifo" else BatchRule()
        self.batches = 0
        """Model runs of more than one sentence."""
        self.batched_sentences = 0
        self.workers = workers
        self.policy = policy
        # A request's first sentence on an otherwise idle machine runs alone on the voice's
        # all-cores session (`synthesize(..., solo=True)`); the other workers wait for it.
        self.solo_first = solo_first and policy != "fifo"
        self._solo_running = False
        self.solo_sentences = 0
        self.max_queued_requests = max_queued_requests
        self.max_queued_sentences = max_queued_sentences
        self.max_sentences_ahead = max_sentences_ahead
        self.max_client_requests = max_client_requests
        self.stall_timeout = stall_timeout
        self._safe = _SafeObserver(observer or SchedulerObserver())
        self._cond = threading.Condition()
        self._jobs: list[Job] = []  # admitted, unfinished, in arrival order
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self.draining = False
        self._ids = itertools.count(1)
        self._rr_cursor: dict[Priority, int] = {}
        self._busy = 0
        self._in_flight = 0
        self.speed = admission.SpeedEstimate()  # all voices: for a voice not yet measured
        self._voice_speeds: weakref.WeakKeyDictionary[Synthesizer, admission.SpeedEstimate] = (
            weakref.WeakKeyDictionary()
        )
        self._clients = ClientShares()
        self.totals = dict.fromkeys(
            (
                "submitted",
                "completed",
                "failed",
                "rejected",
                "timed_out",
                "cancelled",
                "stalled",
                "sentences",
            ),
            0,
        )
        self._latency = _Window()
        self._queue_wait = _Window()
        self._first_audio = _Window()
        self._idle = threading.Event()
        self._idle.set()
        self._stop_reaper = threading.Event()

    @property
    def observer(self) -> SchedulerObserver:
        return self._safe.inner

    @observer.setter
    def observer(self, observer: SchedulerObserver) -> None:
        self._safe = _SafeObserver(observer)

    # ---------------------------------------------------------------- lifecycle

    @property
    def stopped(self) -> bool:
        return self._stopping

    def start(self) -> None:
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"tts-worker-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.stall_timeout is not None:
            reaper = threading.Thread(target=self._reap_stalled, name="tts-reaper", daemon=True)
            reaper.start()
            self._threads.append(reaper)

    @property
    def idle(self) -> threading.Event:
        """Set while no admitted request is unfinished."""
        return self._idle

    @property
    def working(self) -> bool:
        """A request is admitted or a sentence still runs (a cancelled one's may)."""
        return not self._idle.is_set() or self._busy > 0

    @property
    def live_workers(self) -> int:
        """Worker threads alive (a worker survives any error; tests check this)."""
        return sum(t.is_alive() for t in self._threads if t.name.startswith("tts-worker"))

    def stop(self) -> None:
        """Stop the workers; unfinished jobs fail with ShuttingDown."""
        self._stop_reaper.set()
        with self._cond:
            self._stopping = True
            for job in list(self._jobs):
                self._fail(job, ShuttingDown("the server stopped before this request finished"))
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    async def drain(self, grace: float) -> int:
        """Refuse new work, let admitted work finish for up to `grace` seconds.

        Returns how many requests had to be cut off (they get a clear ShuttingDown error).
        """
        self.draining = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._idle.wait, grace)
        with self._cond:
            left = list(self._jobs)
            for job in left:
                self._fail(job, ShuttingDown("the server shut down before this request finished"))
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
    ) -> Job:
        """Admit a request or raise Overloaded / TooManyClientRequests / ShuttingDown /
        TextTooLong. `max_seconds` caps the audio it may produce; `on_done` is called once
        the admitted job is over (never if this raises). Loop thread only."""
        loop = asyncio.get_running_loop()
        if len(sentences) > self.max_queued_sentences:
            raise TextTooLong(
                f"text has {len(sentences)} sentences; at most {self.max_queued_sentences} "
                "fit in one request"
            )
        job = Job(
            voice=voice,
            sentences=list(sentences),
            options=options,
            priority=priority,
            timeout=timeout,
            closed=closed,
            label=label,
            client=client,
            max_samples=None if max_seconds is None else int(max_seconds * voice.sample_rate),
            on_done=on_done,
        )
        with self._cond:
            self._admit(job)
            job.id = next(self._ids)
            job.seq = job.id
            job.submitted_at = time.monotonic()
            job._loop = loop
            job._queue = asyncio.Queue()
            self._jobs.append(job)
            self._clients.joined(job.client)
            self._idle.clear()
            self.totals["submitted"] += 1
            self._cond.notify_all()
        if job.sentences:
            self._arm_deadline(job)
        elif job.closed:  # nothing to say: done at once
            with self._cond:
                self._maybe_complete(job)
        return job

    def _admit(self, job: Job) -> None:
        """Under the lock: raise the reason `job` may not enter, if there is one."""
        if self.draining or self._stopping:
            self._count_rejection("draining")
            raise ShuttingDown("the server is shutting down and takes no new requests")
        capacity = self.workers + self.max_queued_requests
        queued_sentences = self._queued_sentences()
        if len(self._jobs) >= capacity:
            self._reject("requests", f"{len(self._jobs)} requests are already admitted")
        if queued_sentences + len(job.sentences) > self.max_queued_sentences:
            self._reject("sentences", f"{queued_sentences} sentences are already queued")
        held = self._clients.requests(job.client)
        if self.max_client_requests is not None and held >= self.max_client_requests:
            self._count_rejection("client")
            raise TooManyClientRequests(
                f"this client already holds {held} requests, the most one client may; "
                "retry when one of them has finished",
                retry_after=self._retry_after(),
            )
        if job.sentences:  # an open stream with no text yet is told at its first sentence
            wait = self._predicted_wait(job.priority)
            if not admission.fits_deadline(wait, job.timeout):
                self._count_rejection("wait")
                raise Overloaded(
                    f"the server is busy: this request would wait about {wait:.1f} s to "
                    f"start, past its {job.timeout:g} s deadline; retry later",
                    retry_after=admission.retry_after(
                        wait - admission.DEADLINE_SHARE * job.timeout
                    ),
                )

    def _predicted_wait(self, priority: Priority) -> float:
        return admission.predicted_wait(
            self._jobs, priority, self.policy, self.workers, lambda job: self.speed_of(job.voice)
        )

    def speed_of(self, voice: Synthesizer) -> admission.SpeedEstimate:
        """The voice's own measured speed, or the all-voices figure until it has one."""
        speed = self._voice_speeds.get(voice)
        return speed if speed is not None and speed.measured else self.speed

    def learn_speed(self, voice: Synthesizer, ids: int, seconds: float) -> None:
        """One sentence of `voice` took `seconds`: update its speed and the overall one."""
        with self._cond:
            self.speed.learn(ids, seconds)
            self._voice_speeds.setdefault(voice, admission.SpeedEstimate()).learn(ids, seconds)

    def _count_rejection(self, reason: str) -> None:
        self.totals["rejected"] += 1
        self._safe.rejected(reason)

    def _reject(self, reason: str, detail: str) -> None:
        self._count_rejection(reason)
        raise Overloaded(
            f"the server is busy ({detail}); retry later", retry_after=self._retry_after()
        )

    def _retry_after(self) -> int:
        backlog = sum(len(ids) for job in self._jobs for ids in job.sentences[job.next_dispatch :])
        return admission.retry_after(self.speed.seconds(backlog) / max(1, self.workers))

    def add_sentences(self, job: Job, sentences: Sequence[list[int]], close: bool = False) -> None:
        """Append sentences to an open job (streaming text input). Loop thread only."""
        with self._cond:
            if job.finished:
                return
            if job.closed:
                raise RuntimeError("job is closed")
            if self._queued_sentences() + len(sentences) > self.max_queued_sentences:
                self._fail(
                    job,
                    Overloaded(
                        "the server is busy (too many sentences queued); retry later",
                        retry_after=self._retry_after(),
                    ),
                )
                return

            had_none = not job.sentences
            job.sentences.extend(sentences)
            job.closed = close
            self._maybe_complete(job)
            self._cond.notify_all()
        if had_none and sentences:
            self._arm_deadline(job)

    def _arm_deadline(self, job: Job) -> None:
        assert job._loop is not None
        job._deadline_handle = job._loop.call_later(job.timeout, self._expire_if_waiting, job)

    def _expire_if_waiting(self, job: Job) -> None:
        with self._cond:
            if job.state is JobState.QUEUED and not job.finished:
                self.totals["timed_out"] += 1
                self._finish(
                    job,
                    JobState.EXPIRED,
                    DeadlineExceeded(
                        f"request waited {job.timeout:g} s in the queue without being started"
                    ),
                )

    def cancel(self, job: Job) -> None:
        """The client went away: drop its remaining sentences. Safe to call twice."""
        with self._cond:
            if not job.finished:
                self.totals["cancelled"] += 1
                self._finish(job, JobState.CANCELLED, Cancelled("the request was cancelled"))

    # ---------------------------------------------------------------- output

    async def stream(self, job: Job) -> AsyncIterator[Chunk]:
        """Yield the job's chunks in sentence order; raise its error if it fails.

        Leaving early (client gone, consumer cancelled) cancels the job.
        """
        assert job._queue is not None
        try:
            while True:
                item = await job._queue.get()
                if item is _END:
                    return
                if isinstance(item, ServiceError):
                    raise item
                with self._cond:
                    job.consumed += 1
                    # The reader took audio: the stall clock restarts if more is waiting.
                    job.waiting_since = time.monotonic() if job.next_emit > job.consumed else None
                    self._cond.notify_all()  # a job held back by a slow reader may go on
                yield item
        finally:
            if not job.finished:
                self.cancel(job)

    def touch(self, job: Job) -> None:
        """The reader made progress inside a chunk (sent part of a long sentence): a
        reader that is slow but moving is not stalled."""
        with self._cond:
            if job.waiting_since is not None:
                job.waiting_since = time.monotonic()

    def _reap_stalled(self) -> None:
        """Cancel jobs whose reader took nothing for `stall_timeout` while audio waited,
        so a client that stops reading releases its slot (its transport closes too)."""
        assert self.stall_timeout is not None
        interval = min(1.0, self.stall_timeout / 4)
        while not self._stop_reaper.wait(interval):
            now = time.monotonic()
            with self._cond:
                for job in list(self._jobs):
                    since = job.waiting_since
                    if since is not None and now - since > self.stall_timeout:
                        self.totals["stalled"] += 1
                        error = ReaderStalled(
                            f"the client took no audio for {self.stall_timeout:g} s; "
                            "the request was stopped"
                        )
                        self._finish(job, JobState.CANCELLED, error)

    async def collect(self, job: Job) -> bytes:
        return b"".join([chunk.pcm async for chunk in self.stream(job)])

    # ---------------------------------------------------------------- dispatch

    def _queued_sentences(self) -> int:
        return sum(job.pending_sentences() for job in self._jobs)

    def _eligible(self, job: Job) -> bool:
        if job.first_audio_at is None and job.in_flight:
            # Until its first audio is out, a job runs one sentence at a time: a second
            # sentence in parallel would only slow the first one down on a shared CPU.
            return False
        return (
            job.next_dispatch < len(job.sentences)
            and job.next_dispatch - job.consumed < self.max_sentences_ahead
        )

    def _pick(self, accept: Callable[[Job], bool] | None = None) -> Job | None:
        """The policy: which job's next sentence runs now. Called under the lock.

        With `accept`, the policy's pick among the jobs it accepts: a batch's companions
        are the sentences the policy would run next that may share the batch."""
        if self.policy == "fifo":
            # The one-lock design: the oldest request alone, one sentence at a time.
            if self._in_flight or not self._jobs:
                return None
            oldest = self._jobs[0]
            return oldest if self._eligible(oldest) else None
        if self._solo_running:
            return None
        candidates = [
            job for job in self._jobs if self._eligible(job) and (accept is None or accept(job))
        ]
        if not candidates:
            return None
        top = min(job.priority for job in candidates)
        candidates = [job for job in candidates if job.priority == top]
        if self.policy == "fair":
            # Between clients first: the least served client's requests only (see
            # clients.py). Then least served request first; among equals the one closest to
            # done (a short request arriving just after several long ones need not wait
            # for all their first sentences), then arrival. An open job's length is unknown.
            if len(self._clients) > 1:
                client = self._clients.least_served(dict.fromkeys(j.client for j in candidates))
                candidates = [job for job in candidates if job.client == client]
            return min(
                candidates,
                key=lambda job: (
                    job.next_dispatch,
                    job.pending_sentences() if job.closed else math.inf,
                    job.seq,
                ),
            )
        cursor = self._rr_cursor.get(top, 0)  # round robin: next arrival after the last served
        later = [job for job in candidates if job.seq > cursor]
        chosen = min(later or candidates, key=lambda job: job.seq)
        self._rr_cursor[top] = chosen.seq
        return chosen

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._pick()
                while job is None and not self._stopping:
                    self._cond.wait()
                    job = self._pick()
                if self._stopping or job is None:
                    return
                index, solo = self._dispatch(job)
                claims = [(job, index)] if solo else self._fill_batch(job, index)
            try:
                if len(claims) > 1:
                    self._run_batch(claims)
                elif claims:
                    self._run(*claims[0], solo)
            except Exception as exc:  # never lose a worker: fail only the jobs at hand
                log.exception("worker error on request %s sentence %d", job.id, index)
                with self._cond:
                    for claimed, _ in claims:
                        self._fail(claimed, SynthesisFailed(f"internal error: {exc}"))

    def _claim(self, job: Job) -> int:
        """Under the lock: take the job's next sentence."""
        index = job.next_dispatch
        job.next_dispatch += 1
        job.in_flight += 1
        self._in_flight += 1
        self._clients.charge(job.client)
        if job.state is JobState.QUEUED:
            self._mark_started(job)
        return index

    def _dispatch(self, job: Job) -> tuple[int, bool]:
        """Under the lock: claim the job's next sentence for this worker."""
        self._busy += 1
        index = self._claim(job)
        solo = self._can_run_solo(job, index)
        self._solo_running = solo
        return index, solo

    def _fill_batch(self, job: Job, index: int) -> list[Claim]:
        """Under the lock: the policy's pick, then the next sentences in the policy's order
        that may share its model run, up to the batch size.

        It waits for company (at most `batch.wait`) only while other sentences are in
        flight: then the server is busy, requests are arriving and running sentences will
        release more (a request's second sentence waits for its first's audio). An idle
        server has nothing that could join, so a lone request never pays the wait. Claimed
        sentences whose request ends meanwhile (cancelled, stalled, deadline) are dropped
        before the run. May return nothing, when every claimed request ended."""
        claims = [(job, index)]
        key = batching.batch_key(job.voice, job.options) if self.batch.enabled else None
        if key is None:
            return claims
        lengths = [len(job.sentences[index])]

        def fits(other: Job) -> bool:
            return (
                other.voice is job.voice
                and batching.batch_key(other.voice, other.options) == key
                and self.batch.fits(lengths, len(other.sentences[other.next_dispatch]))
            )

        deadline = time.monotonic() + self.batch.wait
        while True:
            while len(claims) < self.batch.size and (companion := self._pick(fits)) is not None:
                claims.append((companion, self._claim(companion)))
                lengths.append(len(companion.sentences[claims[-1][1]]))
            left = deadline - time.monotonic()
            full = len(claims) >= self.batch.size
            if full or left <= 0 or self._stopping or self._in_flight <= len(claims):
                break
            self._cond.wait(left)
            claims = self._drop_ended(claims)
            if not claims:
                self._busy -= 1
                return claims
            lengths = [len(claimed.sentences[i]) for claimed, i in claims]
        return claims

    def _drop_ended(self, claims: list[Claim]) -> list[Claim]:
        """Under the lock: release the claims of requests that ended while they waited."""
        for job, _ in claims:
            if job.finished:
                job.in_flight -= 1
                self._in_flight -= 1
                self._call_done(job)
        return [(job, index) for job, index in claims if not job.finished]

    def _synthesize(
        self, job: Job, index: int, solo: bool
    ) -> tuple[bytes, Exception | None, float]:
        """One sentence outside the lock: its PCM, or the error it raised; and the time."""
        started = time.perf_counter()
        try:
            if solo:
                pcm = job.voice.synthesize(job.sentences[index], job.options, solo=True)  # type: ignore[call-arg]
            else:
                pcm = job.voice.synthesize(job.sentences[index], job.options)
        except Exception as exc:  # a failing sentence fails its job only
            log.exception("synthesis failed for request %s sentence %d", job.id, index)
            return b"", exc, time.perf_counter() - started
        return pcm, None, time.perf_counter() - started

    def _run(self, job: Job, index: int, solo: bool) -> None:
        """Synthesize one sentence outside the lock, then hand it over under it."""
        pcm, error, elapsed = self._synthesize(job, index, solo)
        with self._cond:
            self._busy -= 1
            if solo:
                self._solo_running = False
                self.solo_sentences += 1
            if self.batch.enabled:
                self._safe.batched(1)
            # The all-cores session is faster than what admission plans for.
            self._settle(job, index, pcm, error, elapsed, learn=not solo)

    def _run_batch(self, claims: list[Claim]) -> None:
        """Several sentences in one model run outside the lock, then each handed over as if
        it had run alone. If the batch fails, each sentence runs again alone, so a sentence
        fails only its own request, and only if it fails by itself too."""
        voice = claims[0][0].voice
        items = [(job.sentences[index], job.options) for job, index in claims]
        started = time.perf_counter()
        try:
            assert isinstance(voice, batching.BatchSynthesizer)
            pcms = list(voice.synthesize_batch(items))
            if len(pcms) != len(claims):
                raise RuntimeError(f"{len(pcms)} results for {len(claims)} sentences")
        except Exception:
            log.exception("a batch of %d sentences failed; each runs again alone", len(claims))
            self._run_singly(claims)
            return
        elapsed = time.perf_counter() - started
        ids = [len(phoneme_ids) for phoneme_ids, _ in items]
        with self._cond:
            self._busy -= 1
            self.batches += 1
            self.batched_sentences += len(claims)
            self._safe.batched(len(claims))
            # Admission plans in worker-seconds per phoneme id: the batch's, as a whole.
            self.learn_speed(voice, sum(ids), elapsed)
            for (job, index), pcm, count in zip(claims, pcms, ids, strict=True):
                share = elapsed * count / sum(ids)
                self._settle(job, index, pcm, None, share, learn=False)

    def _run_singly(self, claims: list[Claim]) -> None:
        for job, index in claims:
            with self._cond:
                if job.finished:
                    self._settle(job, index, b"", None, 0.0, learn=False)
                    continue
            pcm, error, elapsed = self._synthesize(job, index, solo=False)
            with self._cond:
                self._safe.batched(1)
                self._settle(job, index, pcm, error, elapsed, learn=True)
        with self._cond:
            self._busy -= 1

    def _settle(
        self,
        job: Job,
        index: int,
        pcm: bytes,
        error: Exception | None,
        elapsed: float,
        learn: bool,
    ) -> None:
        """Under the lock: a claimed sentence is done; hand it to its request in order."""
        self._in_flight -= 1
        job.in_flight -= 1
        self._cond.notify_all()
        if job.finished:
            self._call_done(job)
            return
        if error is not None:
            self._fail(job, SynthesisFailed(f"synthesis failed: {error}"))
            return
        if learn:
            self.learn_speed(job.voice, len(job.sentences[index]), elapsed)
        self.totals["sentences"] += 1
        job.synth_seconds += elapsed
        job.produced_samples += len(pcm) // 2
        if job.max_samples is not None and job.produced_samples > job.max_samples:
            limit = job.max_samples / job.voice.sample_rate
            self._fail(job, AudioTooLong(audio_limit_message(limit), param="text"))
            return
        durations = getattr(pcm, "samples_per_id", None)  # engine.SentencePcm's
        job.produced[index] = Chunk(index, pcm, elapsed, durations)
        self._safe.sentence_done(elapsed, len(pcm) / 2 / job.voice.sample_rate)
        self._emit_ready(job)
        self._maybe_complete(job)

    def _can_run_solo(self, job: Job, index: int) -> bool:
        """Under the lock: the first sentence of a request, with nothing else to do."""
        return (
            self.solo_first
            and index == 0
            and self._in_flight == 1
            and getattr(job.voice, "has_solo_session", False)
            and not any(self._eligible(other) for other in self._jobs if other is not job)
        )

    def _mark_started(self, job: Job) -> None:
        job.state = JobState.RUNNING
        job.started_at = time.monotonic()
        if job._deadline_handle is not None:
            job._deadline_handle.cancel()
        self._queue_wait.add(job.queue_wait)
        self._safe.started(job.queue_wait)

    def _emit_ready(self, job: Job) -> None:
        """Hand finished sentences to the reader strictly in order."""
        while job.next_emit in job.produced:
            chunk = job.produced.pop(job.next_emit)
            job.next_emit += 1
            job.audio_samples += len(chunk.pcm) // 2
            if job.waiting_since is None:  # the reader has audio to take from now on
                job.waiting_since = time.monotonic()
            if job.first_audio_at is None:
                job.first_audio_at = time.monotonic()
                wait = job.first_audio_at - job.submitted_at
                self._first_audio.add(wait)
                self._safe.first_audio(wait)
            self._deliver(job, chunk)

    def _maybe_complete(self, job: Job) -> None:
        if job.closed and not job.finished and job.next_emit >= len(job.sentences):
            self.totals["completed"] += 1
            self._finish(job, JobState.DONE, None)

    def _fail(self, job: Job, error: ServiceError) -> None:
        if not job.finished:
            self.totals["failed"] += 1
            self._finish(job, JobState.FAILED, error)

    def _finish(self, job: Job, state: JobState, error: ServiceError | None) -> None:
        """Under the lock: take the job out of the dispatcher and tell its reader."""
        job.state = state
        job.error = error
        job.finished_at = time.monotonic()
        job.produced.clear()
        if job._deadline_handle is not None:
            job._deadline_handle.cancel()
        if job in self._jobs:
            self._jobs.remove(job)
            self._clients.left(job.client)
        job.waiting_since = None
        if not self._jobs:
            self._idle.set()
        latency = job.finished_at - job.submitted_at
        if state is JobState.DONE:
            self._latency.add(latency)
        self._safe.finished(state, latency)
        self._deliver(job, error if error is not None else _END)
        self._call_done(job)
        self._cond.notify_all()

    @staticmethod
    def _call_done(job: Job) -> None:
        """Under the lock, once the job is finished: its `on_done`, when nothing of it is
        still being synthesized (a cancelled job's sentence in flight runs to its end)."""
        if job.on_done is None or job.in_flight > 0:
            return
        on_done, job.on_done = job.on_done, None
        try:
            on_done()
        except Exception:  # a hook must never take the scheduler down
            log.exception("on_done hook of request %s failed", job.id)

    @staticmethod
    def _deliver(job: Job, item: object) -> None:
        assert job._loop is not None and job._queue is not None
        try:
            job._loop.call_soon_threadsafe(job._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # ---------------------------------------------------------------- figures

    def stats(self) -> dict[str, Any]:
        with self._cond:
            queued = sum(1 for job in self._jobs if job.state is JobState.QUEUED)
            return {
                "policy": self.policy,
                "workers": self.workers,
                "busy_workers": self._busy,
                "queued_requests": queued,
                "active_requests": len(self._jobs) - queued,
                "queued_sentences": self._queued_sentences(),
                "capacity_requests": self.workers + self.max_queued_requests,
                "capacity_sentences": self.max_queued_sentences,
                "capacity_client_requests": self.max_client_requests,
                "clients": len(self._clients),
                "predicted_wait_seconds": round(self._predicted_wait(Priority.NORMAL), 3),
                "seconds_per_phoneme_id": round(self.speed.seconds_per_id, 6),
                "draining": self.draining,
                "solo_first_sentence": self.solo_first,
                "solo_sentences": self.solo_sentences,
                "batch_size": self.batch.size,
                "batch_wait_ms": round(self.batch.wait * 1000, 3),
                "batches": self.batches,
                "batched_sentences": self.batched_sentences,
                "totals": dict(self.totals),
                "latency_seconds": self._latency.summary(),
                "queue_wait_seconds": self._queue_wait.summary(),
                "first_audio_seconds": self._first_audio.summary(),
            }


def audio_limit_message(limit: float) -> str:
    return f"the request would produce more than {limit:g} s of audio, the most one request may"
