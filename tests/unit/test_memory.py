"""Process memory figures and the idle trimmer: freed heap goes back only after the server
has been idle a moment, and only if it worked since the last time."""

from __future__ import annotations

import mmap
import threading
import time

import numpy as np

from audiocheck import wait_for
from tts_service import memory


def test_resident_memory_follows_what_the_process_touches() -> None:
    # A fresh anonymous mapping, not the heap: malloc may hand back freed pages that are
    # still resident (the server's allocator settings keep them), which would not grow.
    with mmap.mmap(-1, 64 * 2**20) as block:
        before = memory.resident_bytes()
        for offset in range(0, len(block), mmap.PAGESIZE):
            block[offset] = 1  # touch every page
        grown = memory.resident_bytes()
        assert grown - before > 48 * 2**20
        assert memory.peak_resident_bytes() >= grown


def test_the_start_time_is_this_process_s() -> None:
    seconds = memory.seconds_since_process_start()
    assert 0 < seconds < time.monotonic()  # started after boot, some time ago


class Trims:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> bool:
        self.count += 1
        return True


def test_idle_trims_once_per_burst_of_work() -> None:
    idle, work, trims = threading.Event(), [0], Trims()
    # Every burst leaves one more byte resident than the last trim did: past `keep=0`.
    trimmer = memory.IdleTrimmer(
        idle, lambda: work[0], delay=0.05, trimmer=trims, keep=0, resident=lambda: work[0]
    )
    trimmer.start()
    try:
        idle.set()
        wait_for(lambda: trims.count == 1, 10, "the first trim (loading leaves garbage)")
        work[0] += 1  # a burst: busy, then idle again
        idle.clear()
        idle.set()
        wait_for(lambda: trims.count == 2, 10, "a trim after the burst")
        assert trimmer.trims == 2
        # Idle with nothing done since: no more trims, however long it stays idle.
        deadline = time.monotonic() + 0.5
        wait_for(lambda: time.monotonic() > deadline, 10, "half a second")
        assert trims.count == 2
    finally:
        trimmer.stop()


def test_an_idle_server_keeps_a_warm_heap_and_trims_only_beyond_it() -> None:
    idle, work, trims = threading.Event(), [0], Trims()
    resident = [500]
    trimmer = memory.IdleTrimmer(
        idle, lambda: work[0], delay=0.05, trimmer=trims, keep=100, resident=lambda: resident[0]
    )
    trimmer.start()
    try:
        idle.set()
        wait_for(lambda: trims.count == 1, 10, "the first trim sets the floor")
        settles = trimmer.settles
        resident[0] = 590  # a lone request: within the warm allowance above the floor
        work[0] += 1
        idle.clear()
        idle.set()
        wait_for(lambda: trimmer.settles > settles, 10, "settled without a trim")
        assert trims.count == 1 and trimmer.trims == 1
        resident[0] = 700  # a burst: past the allowance
        work[0] += 1
        idle.clear()
        idle.set()
        wait_for(lambda: trims.count == 2, 10, "a trim after the burst")
        assert trimmer.trims == 2
    finally:
        trimmer.stop()


def test_no_trim_while_busy() -> None:
    idle, work, trims = threading.Event(), [0], Trims()
    trimmer = memory.IdleTrimmer(idle, lambda: work[0], delay=0.05, trimmer=trims)
    trimmer.start()
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # busy the whole time, work going on
            work[0] += 1
            time.sleep(0.01)
        assert trims.count == 0
        idle.set()
        wait_for(lambda: trims.count == 1, 10, "a trim once idle")
    finally:
        trimmer.stop()


def test_trimming_gives_freed_heap_back() -> None:
    memory.tune_allocator(2)  # as the server does: freed heap is kept until trimmed
    blocks = [np.ones(2**20 // 8) for _ in range(96)]  # 96 MB in 1 MB pieces, from the heap
    held = memory.resident_bytes()
    del blocks
    assert memory.trim()
    assert held - memory.resident_bytes() > 64 * 2**20
