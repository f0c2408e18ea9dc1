"""The servers to measure: POLICY[:DEVICE][@WxT][+bN], parsed into targets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import get_args

from tts_service.bench.errors import BenchError
from tts_service.engine.devices import DeviceName
from tts_service.scheduling.batching import MAX_BATCH_SIZE

POLICIES = ("fifo", "fair", "round_robin")
DEVICES: tuple[str, ...] = get_args(DeviceName)
QUICK_POLICIES = ("fifo", "fair")


@dataclass(frozen=True)
class Target:
    """One server to measure: a policy, the workers x threads it runs with, its device."""

    name: str
    """As given on the command line: `fair`, or `fair@1x2` for 1 worker x 2 threads, or
    `fair+b4` for batches of up to 4 sentences, or `fair:cuda` on the GPU."""
    policy: str
    workers: int
    threads_per_worker: int
    batch_size: int = 1
    device: str = "cpu"
    """The server's `--device`: cpu, cuda or auto."""


_TARGET = re.compile(
    r"^(?P<policy>[a-z_]+)(?::(?P<device>[a-z]+))?"
    r"(?:@(?P<workers>\d+)x(?P<threads>\d+))?(?:\+b(?P<batch>\d+))?$"
)


def parse_targets(spec: str | None, quick: bool, workers: int, threads: int) -> list[Target]:
    """`fifo,fair,fair@2x2,fair+b4,fair:cuda+b8`: POLICY[:DEVICE][@WxT][+bN]; a policy
    alone gets the default `workers` x `threads`, the CPU and no batching."""
    names = spec.split(",") if spec else list(QUICK_POLICIES if quick else POLICIES)
    targets: dict[str, Target] = {}
    for raw in names:
        name = raw.strip()
        match = _TARGET.match(name)
        if match is None or match["policy"] not in POLICIES:
            raise BenchError(
                f"unknown target {name!r}: use a policy ({', '.join(POLICIES)}), optionally "
                ":DEVICE, @WORKERSxTHREADS and +bBATCH, e.g. fair@1x2, fair+b4 or fair:cuda+b8"
            )
        device = match["device"] or "cpu"
        if device not in DEVICES:
            raise BenchError(f"target {name!r}: the device is one of {', '.join(DEVICES)}")
        size = (int(match["workers"]), int(match["threads"])) if match["workers"] else None
        w, t = size or (workers, threads)
        if w < 1 or t < 1:
            raise BenchError(f"target {name!r} needs at least 1 worker and 1 thread")
        batch = int(match["batch"]) if match["batch"] else 1
        if not 1 <= batch <= MAX_BATCH_SIZE:
            raise BenchError(f"target {name!r}: batches of 1 to {MAX_BATCH_SIZE} sentences")
        targets[name] = Target(name, match["policy"], w, t, batch, device)
    return list(targets.values())
