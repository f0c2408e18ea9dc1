"""How much of the machine other processes took while the bench measured (its noise)."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CpuSample:
    """Wall clock, CPU time of the whole machine, and CPU time of this process tree."""

    wall: float
    machine_busy: float | None
    own: float


def foreign_share(start: CpuSample, end: CpuSample, cores: int) -> float | None:
    """Share of the machine's cores that other processes used between two samples: how
    noisy a measurement was (0 = the bench had the machine to itself)."""
    if start.machine_busy is None or end.machine_busy is None or end.wall <= start.wall:
        return None
    foreign = (end.machine_busy - start.machine_busy) - (end.own - start.own)
    return min(1.0, max(0.0, foreign / ((end.wall - start.wall) * cores)))


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (Linux); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (Linux); 0 where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Own CPU = this process plus the servers it started; the rest of the machine is noise."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.pids: list[int] = []

    def sample(self) -> CpuSample:
        times = os.times()
        own = times.user + times.system + sum(_process_cpu_seconds(pid) for pid in self.pids)
        return CpuSample(time.monotonic(), machine_busy_seconds(), own)

    async def measure(self, work: Awaitable[T], noise: list[float]) -> tuple[T, float | None]:
        """Await `work`; also return (and note in `noise`) the foreign CPU share meanwhile."""
        before = self.sample()
        result = await work
        share = foreign_share(before, self.sample(), self.cores)
        if share is not None:
            noise.append(share)
        return result, share
