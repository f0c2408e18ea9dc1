"""How many cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 mounts the cpu controller under either name (often one links to the other).
_CGROUP_V1_CPU = ("cpu", "cpu,cpuacct")


def available_cores(cgroup_root: Path | None = None) -> int:
    """Cores this process may use: the CPUs it may run on (taskset, cpusets), capped by a
    cgroup CPU quota (`docker run --cpus 2` on a 16-core host is 2), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit(CGROUP_ROOT if cgroup_root is None else cgroup_root)
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def cgroup_cpu_limit(root: Path) -> int | None:
    """Whole CPUs the cgroup quota allows (1.5 CPUs -> 2), or None: no quota, or none found.

    cgroup v2 first (`cpu.max`: "QUOTA PERIOD", "max PERIOD" = no limit), then v1
    (`cpu.cfs_quota_us` and `cpu.cfs_period_us`, quota -1 = no limit). Unreadable or
    malformed files count as no limit."""
    v2 = _read_words(root / "cpu.max")
    if v2 is not None:
        return _whole_cpus(*v2) if len(v2) == 2 else None
    for folder in _CGROUP_V1_CPU:
        quota = _read_words(root / folder / "cpu.cfs_quota_us")
        period = _read_words(root / folder / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _whole_cpus(*quota, *period) if len(quota) == len(period) == 1 else None
    return None


def _read_words(path: Path) -> list[str] | None:
    try:
        return path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None


def _whole_cpus(quota: str, period: str) -> int | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max" (v2) and garbage alike: no limit we can use
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 says "no limit" with -1
        return None
    return max(1, math.ceil(quota_us / period_us))
