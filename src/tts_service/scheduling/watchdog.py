"""The two clocks that end a request the scheduler would otherwise hold: the queue
deadline (a request not started within its timeout expires, 504) and the stall reaper (a
reader that takes no audio for `stall_timeout` while audio waits is cut off, releasing its
slot; its transport closes too)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tts_service.errors import DeadlineExceeded, ReaderStalled, ServiceError
from tts_service.scheduling.jobs import Job, JobState

End = Callable[[Job, JobState, ServiceError, str], None]
"""The scheduler's, under its lock: end a job in a state, with an error, counting it in
the named total."""


class Watchdog:
    def __init__(
        self,
        lock: threading.Condition,
        jobs: Callable[[], list[Job]],
        end: End,
        stall_timeout: float | None,
    ) -> None:
        self._lock = lock
        self._jobs = jobs
        """Under the lock: the admitted, unfinished jobs."""
        self._end = end
        self.stall_timeout = stall_timeout
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None

    def arm(self, job: Job) -> None:
        """Start the job's queue deadline (on its loop: the job has sentences now)."""
        assert job._loop is not None
        job._deadline_handle = job._loop.call_later(job.timeout, self._expire_if_waiting, job)

    def _expire_if_waiting(self, job: Job) -> None:
        with self._lock:
            if job.state is JobState.QUEUED and not job.finished:
                error = DeadlineExceeded(
                    f"request waited {job.timeout:g} s in the queue without being started"
                )
                self._end(job, JobState.EXPIRED, error, "timed_out")

    def start(self) -> None:
        """Start the reaper's thread (none without a stall timeout)."""
        if self.stall_timeout is not None:
            self._reaper = threading.Thread(
                target=self._reap_stalled, name="tts-reaper", daemon=True
            )
            self._reaper.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=timeout)
            self._reaper = None

    def _reap_stalled(self) -> None:
        """Cancel jobs whose reader took nothing for `stall_timeout` while audio waited."""
        assert self.stall_timeout is not None
        interval = min(1.0, self.stall_timeout / 4)
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                for job in self._jobs():
                    since = job.waiting_since
                    if since is not None and now - since > self.stall_timeout:
                        error = ReaderStalled(
                            f"the client took no audio for {self.stall_timeout:g} s; "
                            "the request was stopped"
                        )
                        self._end(job, JobState.CANCELLED, error, "stalled")
