"""The event loop's side of a job: its chunks in sentence order, as the reader takes them.

Taking a chunk frees a place in the job's look-ahead (a job held back by a slow reader may
go on), so it happens under the scheduler's lock; leaving early cancels the job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable

from tts_service.errors import ServiceError
from tts_service.scheduling.jobs import END, Chunk, Job


async def chunks(
    job: Job,
    lock: threading.Condition,
    cancel: Callable[[Job], None],
    took: Callable[[Job], None] = lambda job: None,
) -> AsyncIterator[Chunk]:
    """Yield the job's chunks in sentence order; raise its error if it fails. `took` is
    told, under the lock, each time the reader has taken one."""
    assert job._queue is not None
    try:
        while True:
            item = await job._queue.get()
            if item is END:
                return
            if isinstance(item, ServiceError):
                raise item
            with lock:
                job.took_one(item)
                took(job)
                lock.notify_all()
            yield item
    finally:
        if not job.finished:
            cancel(job)


def touch(job: Job, lock: threading.Condition) -> None:
    """The reader made progress inside a chunk (sent part of a long sentence): a reader
    that is slow but moving is not stalled."""
    with lock:
        if job.waiting_since is not None:
            job.waiting_since = time.monotonic()
