"""`tts-service bench --streams 1,8,32,128`: throughput and first audio against concurrency.

Each target is a policy on a device, batching or not (`fair:cpu`, `fair:cuda`,
`fair:cuda+b8`; the syntax of `--policies`), run as a real `tts-service serve`. For each
stream count N, N clients at once each stream a fixed multi-sentence text of their own
(`/synthesize/binary`, `"stream": true`, WAV) to its end. Per target and N: throughput
(audio seconds per wall second), first audio p50/p95 (a stream's first byte), and the
streams the server refused (503 or 429: its admission said no; counted, not retried).

Ratios come from the same run, as in the main bench: a batching target against the same
target unbatched, and a GPU target against the CPU service (the first `cpu` target of the
same policy that does not batch). Targets take turns round by round in rotating order,
each measurement starting with every server idle; absolute figures are context.

The servers keep their own admission limits (request timeout, queue bound), unlike the
main bench's, which admit everything: refusing streams it cannot serve in time is part of
what a sweep to 128 shows. A target whose server does not start (`--device cuda` without
a usable CUDA provider stops the server with the reason) is reported as not measured,
with that reason, and the others are measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tts_service.bench.client import REFUSED, SYNTH_PATH, server_clients, wait_all_idle
from tts_service.bench.cpu import CpuMeter
from tts_service.bench.errors import BenchError
from tts_service.bench.progress import progress
from tts_service.bench.rounds import Sample, rotation, round_ratios, throughput
from tts_service.bench.servers import Server, ServerConfig, running_servers
from tts_service.bench.stats import percentile_of, ratio
from tts_service.bench.table import format_percent, format_ratio, format_seconds, format_table
from tts_service.bench.targets import Target, parse_targets
from tts_service.bench.texts import make_text
from tts_service.config import Settings, available_cores

STREAM_TARGETS = "fair:cpu,fair:cuda,fair:cuda+b8"
MAX_STREAMS = 1024
WAV_HEADER = 44


def parse_counts(spec: str) -> list[int]:
    """`1,8,32,128` -> [1, 8, 32, 128], in the order given, each once."""
    counts: list[int] = []
    for raw in spec.split(","):
        text = raw.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_STREAMS:
            raise BenchError(
                f"{text!r} is not a stream count (1 to {MAX_STREAMS}); e.g. --streams 1,8,32,128"
            )
        if int(text) not in counts:
            counts.append(int(text))
    return counts


@dataclass(frozen=True)
class SweepWorkload:
    sentences: int
    """Sentences in each stream's text."""
    rounds: int
    """Measurements per target and stream count."""

    def texts(self, streams: int) -> list[str]:
        """Client i's text, the same at every N and in every run."""
        return [make_text(self.sentences, seed=900_000 + client) for client in range(streams)]


def sweep_workload(quick: bool) -> SweepWorkload:
    return SweepWorkload(sentences=3, rounds=1) if quick else SweepWorkload(5, rounds=3)


# ------------------------------------------------------------------ figures


@dataclass(frozen=True)
class Stream:
    """One client's stream; `first_audio_s` None when the server refused it."""

    first_audio_s: float | None
    audio_s: float = 0.0


@dataclass
class Cell:
    """One target at one stream count, over every round."""

    rounds: list[Sample] = field(default_factory=list)
    first_audio_s: list[float] = field(default_factory=list)
    streams: int = 0
    refused: int = 0
    noise: list[float] = field(default_factory=list)

    def add(self, sample: Sample, streams: Sequence[Stream]) -> None:
        self.rounds.append(sample)
        self.streams += len(streams)
        self.refused += sum(1 for s in streams if s.first_audio_s is None)
        self.first_audio_s += [s.first_audio_s for s in streams if s.first_audio_s is not None]

    @property
    def throughput(self) -> float | None:
        return throughput(self.rounds)

    @property
    def p50(self) -> float | None:
        return percentile_of(self.first_audio_s, 0.5)

    @property
    def p95(self) -> float | None:
        return percentile_of(self.first_audio_s, 0.95)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": [vars(sample) for sample in self.rounds],
            "throughput": self.throughput,
            "first_audio_s": self.first_audio_s,
            "first_audio_p50_s": self.p50,
            "first_audio_p95_s": self.p95,
            "streams": self.streams,
            "refused": self.refused,
        }


@dataclass
class SweepReport:
    targets: list[Target]
    """The targets measured (their servers started)."""
    counts: list[int]
    cells: dict[tuple[str, int], Cell]
    not_started: dict[str, str] = field(default_factory=dict)
    """Target name -> why its server did not start."""
    devices: dict[str, str] = field(default_factory=dict)
    """Target name -> the device its server says it runs on (/health)."""
    meta: dict[str, Any] = field(default_factory=dict)

    def batching_twin(self, target: Target) -> Target | None:
        """The same server without batching, for a batching target."""
        if target.batch_size == 1:
            return None
        same = (target.policy, target.device, target.workers, target.threads_per_worker)
        return next(
            (
                t
                for t in self.targets
                if t.batch_size == 1
                and (t.policy, t.device, t.workers, t.threads_per_worker) == same
            ),
            None,
        )

    def cpu_twin(self, target: Target) -> Target | None:
        """The CPU service as it runs by default (no batching), for a target that is not."""
        if target.device == "cpu":
            return None
        return next(
            (
                t
                for t in self.targets
                if t.device == "cpu" and t.policy == target.policy and t.batch_size == 1
            ),
            None,
        )

    def throughput_ratio(self, target: Target, other: Target | None, streams: int) -> float | None:
        """Median of the per-round ratios (rounds taken in turns), as the main bench."""
        if other is None:
            return None
        mine, theirs = self.cells[(target.name, streams)], self.cells[(other.name, streams)]
        rounds = round_ratios(mine.rounds, theirs.rounds)
        return statistics.median(rounds) if rounds else None

    def p95_ratio(self, target: Target, other: Target | None, streams: int) -> float | None:
        if other is None:
            return None
        mine, theirs = self.cells[(target.name, streams)], self.cells[(other.name, streams)]
        return ratio(mine.p95, theirs.p95)

    def noise(self, target: Target) -> float | None:
        shares = [s for n in self.counts for s in self.cells[(target.name, n)].noise]
        return statistics.fmean(shares) if shares else None

    def to_dict(self) -> dict[str, Any]:
        def figures(target: Target, n: int) -> dict[str, Any]:
            batch, cpu = self.batching_twin(target), self.cpu_twin(target)
            return {
                **self.cells[(target.name, n)].to_dict(),
                "throughput_ratio_to_unbatched": self.throughput_ratio(target, batch, n),
                "p95_ratio_to_unbatched": self.p95_ratio(target, batch, n),
                "throughput_ratio_to_cpu": self.throughput_ratio(target, cpu, n),
                "p95_ratio_to_cpu": self.p95_ratio(target, cpu, n),
            }

        return {
            **self.meta,
            "stream_counts": self.counts,
            "targets": {
                t.name: {
                    **vars(t),
                    "device_in_use": self.devices.get(t.name),
                    "by_streams": {str(n): figures(t, n) for n in self.counts},
                    "foreign_cpu_mean": self.noise(t),
                }
                for t in self.targets
            },
            "not_started": self.not_started,
        }


# ------------------------------------------------------------------ table


def sweep_rows(report: SweepReport) -> list[list[str]]:
    targets = report.targets
    batching = any(report.batching_twin(t) for t in targets)
    gpu = any(report.cpu_twin(t) for t in targets)
    rows = [
        ["device in use", *(report.devices.get(t.name, "?") for t in targets)],
        ["workers x threads", *(f"{t.workers} x {t.threads_per_worker}" for t in targets)],
    ]
    for n in report.counts:
        cells = [report.cells[(t.name, n)] for t in targets]
        rows += [
            [f"{n} stream(s): audio s / wall s", *(f"{c.throughput or 0:.2f}" for c in cells)],
            ["  first audio p50", *(format_seconds(c.p50) for c in cells)],
            ["  first audio p95", *(format_seconds(c.p95) for c in cells)],
            ["  refused (503/429) / streams", *(f"{c.refused} / {c.streams}" for c in cells)],
        ]
        ratios = [("batching on / off", report.batching_twin)] if batching else []
        ratios += [("/ cpu", report.cpu_twin)] if gpu else []
        for label, twin in ratios:
            twins = [twin(t) for t in targets]
            rows += [
                [
                    f"  throughput {label}",
                    *(
                        format_ratio(report.throughput_ratio(t, o, n)) if o else ""
                        for t, o in zip(targets, twins, strict=True)
                    ),
                ],
                [
                    f"  first audio p95 {label}",
                    *(
                        format_ratio(report.p95_ratio(t, o, n)) if o else ""
                        for t, o in zip(targets, twins, strict=True)
                    ),
                ],
            ]
    rows.append(
        ["other processes' CPU (noise)", *(format_percent(report.noise(t)) for t in targets)]
    )
    return rows


def render_sweep(report: SweepReport) -> str:
    parts = [format_table(["", *(t.name for t in report.targets)], sweep_rows(report))]
    if report.not_started:
        parts.append(
            "\n".join(
                f"not measured: {name}: {reason}" for name, reason in report.not_started.items()
            )
        )
    return "\n\n".join(parts)


# ------------------------------------------------------------------ measuring


async def stream_text(client: httpx.AsyncClient, text: str) -> Stream:
    """Stream `text` as WAV to its end; the first body byte is the first sentence's audio."""
    body = {"text": text, "stream": True, "format": "wav"}
    started = time.perf_counter()
    first: float | None = None
    size = 0
    try:
        async with client.stream("POST", SYNTH_PATH, json=body) as response:
            if response.status_code in REFUSED:
                await response.aread()
                return Stream(None)
            if response.status_code != 200:
                await response.aread()
                raise BenchError(f"server answered {response.status_code}: {response.text[:300]}")
            rate = int(response.headers["X-Sample-Rate"])
            async for part in response.aiter_raw():
                if part and first is None:
                    first = time.perf_counter() - started
                size += len(part)
    except httpx.HTTPError as error:
        raise BenchError(f"a stream broke off: {error!r}") from error
    if first is None or size <= WAV_HEADER:
        raise BenchError("a streamed WAV response held no audio")
    return Stream(first, (size - WAV_HEADER) / 2 / rate)


async def stream_round(
    client: httpx.AsyncClient, texts: Sequence[str]
) -> tuple[Sample, list[Stream]]:
    """Every client at once, each streaming its text; the wall clock ends with the last."""
    started = time.perf_counter()
    streams = await asyncio.gather(*(stream_text(client, text) for text in texts))
    wall = time.perf_counter() - started
    return Sample(wall, sum(s.audio_s for s in streams), None), list(streams)


async def run_sweep(
    workload: SweepWorkload, counts: Sequence[int], servers: Sequence[Server], meter: CpuMeter
) -> tuple[dict[tuple[str, int], Cell], dict[str, str]]:
    """Every stream count, every round, every target in turn; and each server's device."""
    cells = {(s.name, n): Cell() for s in servers for n in counts}
    async with server_clients(servers, connections=max(counts)) as clients:
        devices = {}
        for name, client in clients.items():
            devices[name] = (await client.get("/health")).json()["device"]["active"]
            # First runs allocate (and on CUDA pick kernels per shape): not measured.
            await stream_text(client, workload.texts(1)[0])
        turn = 0
        for n in counts:
            texts = workload.texts(n)
            for round_no in range(workload.rounds):
                progress(f"{n} stream(s), round {round_no + 1}/{workload.rounds}")
                for name in rotation(list(clients), turn):
                    await wait_all_idle(clients)
                    cell = cells[(name, n)]
                    work = stream_round(clients[name], texts)
                    (sample, streams), share = await meter.measure(work, cell.noise)
                    cell.add(Sample(sample.wall_s, sample.audio_s, share), streams)
                turn += 1
        await wait_all_idle(clients)
    return cells, devices


def _start_failure(config: ServerConfig, target: Target, error: BenchError) -> str:
    """The server's last words (e.g. why CUDA cannot be used), else the bench's error."""
    path = config.log_path(target)
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    last = next((line for line in reversed(lines) if line), "")
    return f"the server did not start: {last} (log: {path})" if last else str(error)


@contextmanager
def servers_that_start(
    config: ServerConfig, targets: Sequence[Target]
) -> Iterator[tuple[list[Server], dict[str, str]]]:
    """Each target's server, one at a time; those that fail to start are noted, not fatal."""
    with ExitStack() as stack:
        servers: list[Server] = []
        failed: dict[str, str] = {}
        for target in targets:
            progress(f"starting {target.name} (--device {target.device})")
            try:
                servers += stack.enter_context(running_servers(config, [target]))
            except BenchError as error:
                failed[target.name] = _start_failure(config, target, error)
                progress(f"{target.name}: not measured; {failed[target.name]}")
        yield servers, failed


def _meta(args: argparse.Namespace, workload: SweepWorkload) -> dict[str, Any]:
    return {
        "command": " ".join(["tts-service", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "machine": {
            "cores": available_cores(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "workload": {"sentences_per_stream": workload.sentences, "rounds": workload.rounds},
    }


def measure_sweep(
    settings: Settings, args: argparse.Namespace, counts: list[int], targets: Sequence[Target]
) -> SweepReport:
    workload = sweep_workload(args.quick)
    meta = _meta(args, workload)
    log_dir = Path(args.output).parent
    config = ServerConfig(settings.default_voice, settings.voices_dir, log_dir, admission=())
    meter = CpuMeter(available_cores())
    with servers_that_start(config, targets) as (servers, failed):
        if not servers:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in failed.items())
            raise BenchError(f"no target's server started ({reasons})")
        meter.pids = [server.proc.pid for server in servers]
        cells, devices = asyncio.run(run_sweep(workload, counts, servers, meter))
        measured = [server.target for server in servers]
    meta["machine"]["loadavg_end"] = list(os.getloadavg())
    return SweepReport(measured, counts, cells, failed, devices, meta)


def run_streams(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        counts = parse_counts(args.streams)
        spec = getattr(args, "policies", None) or STREAM_TARGETS
        targets = parse_targets(
            spec, args.quick, settings.worker_count, settings.threads_per_worker
        )
        report = measure_sweep(settings, args, counts, targets)
    except BenchError as error:
        print(f"tts-service bench --streams: {error}", file=sys.stderr)
        return 1
    report.meta["bench_seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output).with_name("bench-streams.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(render_sweep(report))
    load = report.meta["machine"]
    print(
        f"\n{len(report.targets)} target(s); {report.meta['workload']['sentences_per_stream']} "
        f"sentences per stream, {report.meta['workload']['rounds']} round(s); "
        f"{load['cores']} cores; load average {load['loadavg_start'][0]:.2f} -> "
        f"{load['loadavg_end'][0]:.2f}; {report.meta['bench_seconds']} s; wrote {output}"
    )
    return 0
