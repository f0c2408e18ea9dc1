"""`tts-service bench --ray`: the Serve path against the direct server, on the same box.

Two phases, each one run of rounds in rotating order (as the main bench does), both
against the same direct server (`tts-service serve`, 2 workers x 1 thread):

1. Serve with one replica of 2 CPUs (2 workers): what the proxy costs on one request (a
   `/ping` round trip, and a 2-sentence request) and on throughput (goal: at most 10%
   slower), and a short request's p95 under long load (fairness must survive the router:
   goal at most 2x the direct server's).
2. Serve with two replicas of 1 CPU each: the same figures, and its throughput against
   phase 1's single replica (through the direct server both phases share).

Idle checks and the long load watch the clients' own answers, not `/health`: behind the
proxy, `/health` describes whichever replica answered it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tts_service.bench.client import bench_client, synthesize
from tts_service.bench.cpu import CpuSample, foreign_share, machine_busy_seconds
from tts_service.bench.errors import BenchError
from tts_service.bench.goals import Goal
from tts_service.bench.loads import throughput_round
from tts_service.bench.progress import progress
from tts_service.bench.rounds import Sample, rotation, throughput
from tts_service.bench.servers import ServerConfig, free_port, running_servers, stop_process
from tts_service.bench.stats import percentile, ratio
from tts_service.bench.table import format_percent, format_ratio, format_seconds, format_table
from tts_service.bench.targets import Target
from tts_service.bench.workload import Workload, build_workload
from tts_service.config import Settings, available_cores

DIRECT = "direct"
GOAL_OVERHEAD = Goal("<=", 1.10)  # Serve at most 10% slower than the direct server
GOAL_THROUGHPUT = Goal(">=", 1 / 1.10)
GOAL_FAIRNESS = Goal("<=", 2.0)  # short p95 through Serve vs the direct server's


@dataclass(frozen=True)
class Fleet:
    """One Serve layout: replicas x CPUs each (workers follow the CPUs)."""

    name: str
    replicas: int
    cpus_per_replica: int


PHASES = (Fleet("serve 1x2", 1, 2), Fleet("serve 2x1", 2, 1))


@dataclass
class Figures:
    ping_s: list[float] = field(default_factory=list)
    """`/ping` round trips: what the path costs a request, without synthesis."""
    single_s: list[float] = field(default_factory=list)
    rounds: list[Sample] = field(default_factory=list)
    short_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "ping_median_s": statistics.median(self.ping_s) if self.ping_s else None,
            "single_median_s": statistics.median(self.single_s) if self.single_s else None,
            "throughput": throughput(self.rounds),
            "short_p95_s": percentile(self.short_s, 0.95) if self.short_s else None,
            "short_samples": len(self.short_s),
        }


def _cpu_seconds(stat: str) -> tuple[int, float]:
    """(parent pid, utime + stime) from a /proc/PID/stat line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and every live descendant (Ray's processes included); Linux."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent, seconds = _cpu_seconds((entry / "stat").read_text(encoding="ascii"))
            except (OSError, IndexError, ValueError):
                continue
            parents[int(entry.name)], used[int(entry.name)] = parent, seconds
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += used.get(pid, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def cpu_sample() -> CpuSample:
    """The machine's busy CPU and this process tree's (the servers it started included)."""
    return CpuSample(time.monotonic(), machine_busy_seconds(), tree_cpu_seconds(os.getpid()))


@contextmanager
def serve_fleet(fleet: Fleet, log_dir: Path) -> Iterator[str]:
    """`tts-service serve --ray` with a local 2-CPU Ray; yields its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TTS_", "RAY_"))}
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        TTS_REQUEST_TIMEOUT="3600",  # as the direct server: nothing refused, only measured
        TTS_RAY_MAX_QUEUED_REQUESTS="1000",
        TTS_LOG_LEVEL="warning",
        TTS_UI="false",
    )
    command = [sys.executable, "-m", "tts_service", "serve", "--ray", "--port", str(port)]
    command += ["--ray-num-cpus", "2", "--ray-cpus-per-replica", str(fleet.cpus_per_replica)]
    command += ["--ray-min-replicas", str(fleet.replicas)]
    command += ["--ray-max-replicas", str(fleet.replicas)]
    log_path = log_dir / f"server-{fleet.name.replace(' ', '-')}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_serving(proc, log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(proc, signal.SIGTERM, timeout=90)  # Serve drains, then Ray stops


def _wait_serving(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the Serve fleet exited early; see {log_path}")
        if re.search("through Ray Serve", log_path.read_text(errors="replace")):
            return
        time.sleep(0.5)  # a subprocess's readiness: nothing to wait on but its log
    raise BenchError(f"the Serve fleet was not ready after 300 s; see {log_path}")


async def settle(client: httpx.AsyncClient) -> None:
    """Until several `/health` answers in a row (from whichever replicas) show no work."""
    quiet = 0
    deadline = time.monotonic() + 120
    while quiet < 8:
        if time.monotonic() > deadline:
            raise BenchError("the server never became idle")
        health = (await client.get("/health")).json()
        busy = health["busy_workers"] or health["active_requests"] or health["queued_requests"]
        quiet = 0 if busy else quiet + 1
        await asyncio.sleep(0.02)


async def pings(client: httpx.AsyncClient, count: int) -> list[float]:
    await settle(client)
    times = []
    for _ in range(count):
        sent = time.perf_counter()
        (await client.get("/ping")).raise_for_status()
        times.append(time.perf_counter() - sent)
    return times


async def single(client: httpx.AsyncClient, text: str) -> float:
    await settle(client)
    sent = time.perf_counter()
    await synthesize(client, text)
    return time.perf_counter() - sent


async def mixed_load(client: httpx.AsyncClient, workload: Workload) -> list[float]:
    """Long clients stream their long text in a loop; once each has audio coming, one
    client sends short requests in turn for `mixed_seconds`."""
    started_events = [asyncio.Event() for _ in range(workload.long_clients)]

    async def long_client(started: asyncio.Event) -> None:
        body = {"text": workload.long_text, "stream": True}
        while True:
            async with client.stream("POST", "/synthesize/binary", json=body) as response:
                async for _ in response.aiter_raw():
                    started.set()

    await settle(client)
    tasks = [asyncio.create_task(long_client(event)) for event in started_events]
    latencies: list[float] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started_events)), 120)
        began = time.perf_counter()
        while time.perf_counter() - began < workload.mixed_seconds or len(latencies) < 2:
            text = workload.short_texts[len(latencies) % len(workload.short_texts)]
            sent = time.perf_counter()
            await synthesize(client, text)
            latencies.append(time.perf_counter() - sent)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def run_phase(urls: dict[str, str], workload: Workload, repeats: int) -> dict[str, Figures]:
    """Every measurement on every target, the targets taking turns in rotating order."""
    figures = {name: Figures() for name in urls}
    clients = {name: bench_client(url) for name, url in urls.items()}
    single_text = workload.short_texts[0] + " " + workload.short_texts[1]
    try:
        for client in clients.values():  # first requests pay for connections: not measured
            await synthesize(client, single_text)
        names = list(urls)
        for turn in range(repeats):
            for name in rotation(names, turn):
                figures[name].ping_s += await pings(clients[name], 5)
        for turn in range(repeats):
            for name in rotation(names, turn):
                figures[name].single_s.append(await single(clients[name], single_text))
        for turn, requests in enumerate(workload.throughput_rounds):
            for name in rotation(names, turn):
                round_ = await throughput_round(clients[name], requests, settle)
                figures[name].rounds.append(round_)
        for name in rotation(names, 1):
            figures[name].short_s = await mixed_load(clients[name], workload)
    finally:
        for client in clients.values():
            await client.aclose()
    return figures


@dataclass
class RayBenchReport:
    phases: dict[str, dict[str, Figures]]
    meta: dict[str, Any]
    noise: dict[str, float | None] = field(default_factory=dict)
    """Share of the machine other processes used during each phase."""

    def _ratio(self, phase: str, key: str) -> float | None:
        figures = self.phases[phase]
        ours, direct = figures[phase].summary()[key], figures[DIRECT].summary()[key]
        return ratio(ours, direct)

    def ratios(self) -> dict[str, dict[str, float | None]]:
        table: dict[str, dict[str, float | None]] = {}
        for phase in self.phases:
            table[phase] = {
                "single": self._ratio(phase, "single_median_s"),
                "throughput": self._ratio(phase, "throughput"),
                "short_p95": self._ratio(phase, "short_p95_s"),
            }
        one, two = (fleet.name for fleet in PHASES)
        if one in table and two in table:
            # Both phases measured the same direct server: compare the fleets through it.
            table[two]["vs_one_replica"] = ratio(table[two]["throughput"], table[one]["throughput"])
        return table

    def to_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "phases": {
                phase: {name: f.summary() for name, f in figures.items()}
                for phase, figures in self.phases.items()
            },
            "ratios": self.ratios(),
            "noise": self.noise,
        }


def render(report: RayBenchReport) -> str:
    """One column pair per phase: the direct server and the fleet, measured turn by turn."""
    ratios = report.ratios()
    header = [""]
    for phase in report.phases:
        header += [DIRECT, phase]
    rows: list[list[str]] = []
    for key, label, show in (
        ("ping_median_s", "/ping round trip, median", _milliseconds),
        ("single_median_s", "one request, median (2 sentences)", format_seconds),
        ("throughput", "throughput (audio s / wall s)", _audio_rate),
        ("short_p95_s", "short p95 under long load", format_seconds),
    ):
        cells = [label]
        for phase, figures in report.phases.items():
            cells += [show(figures[DIRECT].summary()[key]), show(figures[phase].summary()[key])]
        rows.append([*cells, ""])
    for key, label, goal in (
        ("single", "  one request vs direct", GOAL_OVERHEAD),
        ("throughput", "  throughput vs direct", GOAL_THROUGHPUT),
        ("short_p95", "  short p95 vs direct", GOAL_FAIRNESS),
    ):
        cells = [label]
        for phase in report.phases:
            cells += [
                "1.00x",
                f"{format_ratio(ratios[phase][key])} {goal.verdict(ratios[phase][key])}",
            ]
        rows.append([*cells, goal.describe()])
    versus = [ratios[p].get("vs_one_replica") for p in report.phases]
    cells = ["  throughput vs serve 1x2 (via direct)"]
    for value in versus:
        cells += ["", "" if value is None else format_ratio(value)]
    rows.append([*cells, ""])
    cells = ["other processes' CPU (noise)"]
    for phase in report.phases:
        cells += ["", format_percent(report.noise.get(phase))]
    rows.append([*cells, ""])
    return format_table([*header, "goal"], rows)


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:.1f} ms"


def _audio_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def measure(settings: Settings, args: argparse.Namespace) -> RayBenchReport:
    workload = build_workload(args.quick)
    log_dir = Path(args.output).parent
    log_dir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(settings.default_voice, settings.voices_dir, log_dir)
    phases: dict[str, dict[str, Figures]] = {}
    noise: dict[str, float | None] = {}
    repeats = 3 if args.quick else 8
    with running_servers(config, [Target(DIRECT, "fair", 2, 1)]) as (server,):
        for fleet in PHASES:
            size = f"{fleet.replicas} replica(s) of {fleet.cpus_per_replica} CPU(s)"
            progress(f"starting {fleet.name}: {size}")
            with serve_fleet(fleet, log_dir) as url:
                progress(f"measuring {DIRECT} and {fleet.name}")
                urls = {DIRECT: server.url, fleet.name: url}
                before = cpu_sample()
                phases[fleet.name] = asyncio.run(run_phase(urls, workload, repeats))
                noise[fleet.name] = foreign_share(before, cpu_sample(), available_cores())
    meta = {
        "command": " ".join(["tts-service", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "loadavg_end": list(os.getloadavg()),
    }
    return RayBenchReport(phases, meta, noise)


def run_ray_bench(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        report = measure(settings, args)
    except BenchError as error:
        print(f"tts-service bench --ray: {error}", file=sys.stderr)
        return 1
    report.meta["bench_seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output).with_name("bench-ray.json")
    output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(render(report))
    print(f"\n{report.meta['bench_seconds']} s; wrote {output}")
    return 0
