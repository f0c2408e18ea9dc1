"""Process figures: resident memory, start-up time, and giving freed heap back to the system.

Where the memory of a busy server goes (measured with `tts-service bench`, see the README's
sizing section): each running sentence needs ~35 MB per second of its audio for the
model's intermediate tensors, for as long as it runs. onnxruntime's own arena keeps the
largest amount it ever held, per session, for good; without it the tensors come from
malloc, and glibc keeps freed heap too (per thread arena), so after a burst the process
stayed at its peak. Here onnxruntime's arena is off (`engine.make_session`), glibc is told
to keep freed heap while the server is busy (so the next sentence reuses it without page
faults) and `IdleTrimmer` returns it to the system once the server has been idle a moment,
if the process holds more than a warm working set above what it settled at last time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import cache

log = logging.getLogger(__name__)
_IMPORTED = time.monotonic()

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# The largest mmap threshold glibc accepts on 64-bit: tensors up to this size are reused
# from the heap instead of being mapped, faulted in and unmapped for every sentence.
MMAP_THRESHOLD = 32 * 1024 * 1024
# Freed heap is never returned while busy; IdleTrimmer returns it when idle.
TRIM_THRESHOLD = 2**31 - 1
# Seconds of idleness before freed memory is returned (a burst's gaps keep it).
IDLE_TRIM_DELAY = 1.0
# Freed heap an idle server keeps: one sentence's working set. A lone one-sentence request
# grows a trimmed server by ~115 MB (bundled voice, all-cores session); trimming that away
# made the next lone request after a pause pay for faulting it back in (0.30 s against
# 0.18 s warm, 1.79x in-process Piper). Bursts hold far more (750 MB) and are still trimmed.
WARM_HEAP_BYTES = 128 * 2**20


@cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None (musl, macOS): its malloc has no mallopt/malloc_trim to call."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def resident_bytes() -> int:
    """Resident set size of this process (0 where /proc is missing)."""
    return _status_kib("VmRSS") * 1024


def peak_resident_bytes() -> int:
    """The most this process has had resident (0 where /proc is missing)."""
    return _status_kib("VmHWM") * 1024


def process_resident_bytes(pid: int) -> int:
    """Resident set size of another process (0 if it is gone)."""
    return _status_kib("VmRSS", pid) * 1024


def _status_kib(key: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def seconds_since_process_start() -> float:
    """Wall seconds since this process started (Linux: its start time in /proc; elsewhere
    since this module was imported)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


def trim() -> bool:
    """Return freed heap pages to the system (glibc's malloc_trim); False if unsupported."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def tune_allocator(arenas: int) -> bool:
    """Keep freed heap for reuse while busy (no automatic trimming, tensors up to 32 MB
    from the heap) and use at most `arenas` malloc arenas instead of 8 per core: worker
    threads then reuse each other's freed tensors. Call before threads start."""
    libc = _libc()
    if libc is None:
        return False
    done = (
        libc.mallopt(_M_ARENA_MAX, max(1, arenas)) == 1,
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1,
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1,
    )
    return all(done)


class IdleTrimmer:
    """Returns freed memory to the system after the server has been idle `delay` seconds
    (and has done work since it last looked): a burst keeps its heap for the next sentence,
    an idle server gives back what it holds beyond `keep` bytes above the resident size it
    settled at after its last trim, so a lone request after a pause finds a warm heap."""

    def __init__(
        self,
        idle: threading.Event,
        activity: Callable[[], int],
        delay: float = IDLE_TRIM_DELAY,
        trimmer: Callable[[], bool] = trim,
        keep: int = WARM_HEAP_BYTES,
        resident: Callable[[], int] = resident_bytes,
    ) -> None:
        self._idle = idle
        self._activity = activity
        self._delay = delay
        self._trim = trimmer
        self._keep = keep
        self._resident = resident
        self._floor: int | None = None  # resident bytes just after the last trim
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0
        """How many times freed memory was returned."""
        self.settles = 0
        """How many times the server went idle after work and its memory was settled:
        trimmed, or found within the warm allowance (tests and /health watch this)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tts-trimmer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        trimmed_at = -1  # trim once at the start too: loading leaves garbage behind
        while not self._stop.is_set():
            if not self._idle.wait(timeout=self._delay):
                continue
            seen = self._activity()
            if self._stop.wait(self._delay):
                return
            if self._idle.is_set() and self._activity() == seen and seen != trimmed_at:
                if self._floor is None or self._resident() > self._floor + self._keep:
                    self._trim()
                    self._floor = self._resident()
                    self.trims += 1
                trimmed_at = seen
                self.settles += 1
