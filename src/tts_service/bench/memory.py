"""The memory rows of `tts-service bench`, and `tts-service bench --sizing`.

Memory row: a `tts-service serve` with its defaults (only host, port and voice folders
given) against serial Piper in a process of its own (`PiperVoice.load` with Piper's own
session settings, the same texts one after another): resident memory idle and after the
fixed bursts (3 bursts of 16 concurrent two-sentence requests; 1 with --quick), the peak,
the time from process start to ready, and (full run only) a soak: resident memory after
N requests against after N/5.

Sizing (`--sizing`): the same bursts against servers of 1 and 2 cores (CPU affinity; the
default worker count follows it) and 4 workers, with 1, 2 and 4 medium voices loaded
(the bundled voice, linked under other names: each is read into memory of its own).

Resident memory is read after the server has been idle long enough to return what it
freed (it says so in /health: `memory.idle_settles`), so the figure is what it keeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tts_service.bench.client import bench_client, synthesize
from tts_service.bench.errors import BenchError
from tts_service.bench.goals import Goal
from tts_service.bench.progress import progress
from tts_service.bench.servers import free_port, stop_process
from tts_service.bench.table import format_table
from tts_service.bench.texts import make_text
from tts_service.memory import process_resident_bytes
from tts_service.voices.loaded import VoiceFiles

MB = 2**20
BURST_CLIENTS = 16
SOAK_REQUESTS = 300
SOAK_CLIENTS = 8
GOAL_RSS_AFTER = Goal("<=", 340.0)
"""MB after the fixed bursts, one voice, defaults (the one-lock Wyoming server's figure)."""
GOAL_READY = Goal("<=", 1.5)
GOAL_SOAK = Goal("<=", 1.10)


def burst_texts(bursts: int) -> list[list[str]]:
    """`bursts` rounds of 16 two-sentence texts, the same in every run."""
    return [
        [make_text(2, 700_000 + 100 * burst + client) for client in range(BURST_CLIENTS)]
        for burst in range(bursts)
    ]


@dataclass
class MemoryResult:
    """One process measured: MB figures, seconds, audio seconds per wall second."""

    rss_idle_mb: float | None = None
    rss_after_mb: float | None = None
    peak_mb: float | None = None
    ready_s: float | None = None
    throughput: float | None = None
    voices_mb: dict[str, float] = field(default_factory=dict)
    soak_mb: dict[int, float] = field(default_factory=dict)
    """Requests done -> resident MB, settled."""

    @property
    def soak_ratio(self) -> float | None:
        if len(self.soak_mb) < 2:
            return None
        first, last = min(self.soak_mb), max(self.soak_mb)
        return self.soak_mb[last] / self.soak_mb[first]

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "soak_ratio": self.soak_ratio}


# ------------------------------------------------------------------ serial Piper

_PIPER = """
import json, sys, time
from piper import PiperVoice
def rss(key="VmRSS"):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
voice = PiperVoice.load(sys.argv[1], config_path=sys.argv[2])
list(voice.synthesize("Ready."))  # its first-run cost, as the service warms up
idle = rss()
texts = json.load(sys.stdin)
started = time.perf_counter()
audio = sum(len(c.audio_int16_bytes) for t in texts for c in voice.synthesize(t))
wall = time.perf_counter() - started
audio_s = audio / 2 / voice.config.sample_rate
print(json.dumps({"idle": idle, "after": rss(), "peak": rss("VmHWM"), "tput": audio_s / wall}))
"""


def serial_piper(files: VoiceFiles, bursts: list[list[str]]) -> MemoryResult:
    """Plain Piper, its own defaults, in a process of its own: the texts one by one."""
    texts = [text for burst in bursts for text in burst]
    done = subprocess.run(
        [sys.executable, "-c", _PIPER, str(files.model), str(files.config)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=1800,
        env=_clean_env(),
    )
    if done.returncode != 0:
        raise BenchError(f"serial Piper failed: {done.stderr[-500:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return MemoryResult(
        rss_idle_mb=figures["idle"],
        rss_after_mb=figures["after"],
        peak_mb=figures["peak"],
        throughput=figures["tput"],
    )


# ------------------------------------------------------------------ the service


@dataclass(frozen=True)
class ServerSpec:
    voices_dir: Sequence[Path]
    default_voice: str
    flags: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    cpus: set[int] | None = None
    """CPU affinity (the default worker count follows it)."""


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}


@contextmanager
def running(spec: ServerSpec, log_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A `tts-service serve` with nothing but `spec` set; its URL and process."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "tts_service", "serve", "--host", "127.0.0.1"),
        *("--port", str(port), "--log-level", "warning", "--no-ui"),
        *("--default-voice", spec.default_voice),
        *[arg for folder in spec.voices_dir for arg in ("--voices-dir", str(folder))],
        *spec.flags,
    ]
    cpus = spec.cpus

    def pin() -> None:  # in the child, before it starts: it counts only these cores
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**_clean_env(), **spec.env},
            preexec_fn=pin,
        )  # fmt: skip
        try:
            yield f"http://127.0.0.1:{port}", proc
        finally:
            stop_process(proc, signal.SIGTERM)


async def _health(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/health")
    body: dict[str, Any] = response.json()
    return body


async def _until(client: httpx.AsyncClient, check: Any, what: str, within: float = 300) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            found = await check(client)
        except Exception:  # not answering yet
            found = None
        if found:
            return found
        await asyncio.sleep(0.1)
    raise BenchError(f"the server was never {what}")


async def _ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    health = await _health(client)
    return health if health.get("status") == "ok" else None


async def _voices_settled(client: httpx.AsyncClient) -> bool:
    """Every loaded voice has all its sessions (the all-cores one comes in the background)."""
    solo = (await _health(client))["solo_first_sentence"]
    voices = (await client.get("/voices")).json()["voices"]
    loaded = [voice for voice in voices if voice.get("loaded")]
    return all(voice["sessions"] == (2 if solo else 1) for voice in loaded)


async def settle(client: httpx.AsyncClient, trims_before: int) -> dict[str, Any]:
    """/health's memory figures once the server has returned what it freed after
    `trims_before` was read."""

    async def trimmed(c: httpx.AsyncClient) -> dict[str, Any] | None:
        figures: dict[str, Any] = (await _health(c))["memory"]
        return figures if figures["idle_settles"] > trims_before else None

    found: dict[str, Any] = await _until(client, trimmed, "idle (no trim)")
    return found


async def run_bursts(
    client: httpx.AsyncClient, bursts: list[list[str]], voices: Sequence[str]
) -> float:
    """The bursts one after another, all clients of one at once; voices taken in turn.
    Returns audio seconds per wall second."""
    audio = wall = 0.0
    for texts in bursts:
        started = time.perf_counter()
        seconds = await asyncio.gather(
            *(synthesize(client, text, voices[n % len(voices)]) for n, text in enumerate(texts))
        )
        wall += time.perf_counter() - started
        audio += sum(seconds)
    return audio / wall if wall > 0 else 0.0


async def soak(client: httpx.AsyncClient, requests: int, result: MemoryResult) -> None:
    """`requests` one- and two-sentence requests, SOAK_CLIENTS at a time; resident memory
    settled after a fifth of them and after all."""
    texts = [make_text(1 + n % 2, 800_000 + n) for n in range(requests)]
    done = 0
    for stop in (requests // 5, requests):
        trims = (await _health(client))["memory"]["idle_settles"]
        while done < stop:
            batch = texts[done : min(stop, done + SOAK_CLIENTS)]
            await asyncio.gather(*(synthesize(client, text) for text in batch))
            done += len(batch)
        result.soak_mb[stop] = (await settle(client, trims))["resident_bytes"] / MB


async def measure_service(
    spec: ServerSpec,
    bursts: list[list[str]],
    log_path: Path,
    voices: Sequence[str] = (),
    soak_requests: int = 0,
) -> MemoryResult:
    """Start, settle, bursts, settle; soak if asked. `voices`: those the bursts take turns
    with (the default voice if empty)."""
    result = MemoryResult()
    with running(spec, log_path) as (url, proc):
        async with bench_client(url) as client:
            health = await _until(client, _ready, "ready", within=600)
            result.ready_s = health.get("ready_seconds")
            await _until(client, _voices_settled, "settled (voices' sessions)")
            await settle(client, trims_before=0)
            result.rss_idle_mb = process_resident_bytes(proc.pid) / MB
            trims = (await _health(client))["memory"]["idle_settles"]
            result.throughput = await run_bursts(client, bursts, voices or [spec.default_voice])
            figures = await settle(client, trims)
            result.rss_after_mb = process_resident_bytes(proc.pid) / MB
            result.peak_mb = figures["peak_resident_bytes"] / MB
            listed = (await client.get("/voices")).json()["voices"]
            result.voices_mb = {v["name"]: v["memory_bytes"] / MB for v in listed if v["loaded"]}
            if soak_requests:
                await soak(client, soak_requests, result)
    return result


# ------------------------------------------------------------------ the rows


def memory_rows(serial: MemoryResult, service: MemoryResult, bursts: int) -> list[list[str]]:
    def mb(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} MB"

    after = service.rss_after_mb
    rows = [
        ["RSS idle (voice loaded, warm)", mb(serial.rss_idle_mb), mb(service.rss_idle_mb), ""],
        [
            f"RSS after {bursts} burst(s) of {BURST_CLIENTS}",
            mb(serial.rss_after_mb),
            f"{mb(after)} {GOAL_RSS_AFTER.verdict(after)}",
            f"{GOAL_RSS_AFTER.op} {GOAL_RSS_AFTER.limit:.0f} MB",
        ],
        ["  over serial Piper's", "", mb(_minus(after, serial.rss_after_mb)), ""],
        ["peak RSS", mb(serial.peak_mb), mb(service.peak_mb), ""],
        [
            "throughput in the bursts (audio s / s)",
            f"{serial.throughput or 0:.2f}",
            f"{service.throughput or 0:.2f}",
            "",
        ],
        [
            "ready after process start",
            "",
            f"{service.ready_s or 0:.2f} s {GOAL_READY.verdict(service.ready_s)}",
            f"{GOAL_READY.op} {GOAL_READY.limit:g} s",
        ],
    ]
    if service.soak_ratio is not None:
        first, last = min(service.soak_mb), max(service.soak_mb)
        rows.append(
            [
                f"soak: RSS after {last} / after {first} requests",
                "",
                f"{service.soak_ratio:.3f} {GOAL_SOAK.verdict(service.soak_ratio)}",
                GOAL_SOAK.describe(),
            ]
        )
    return rows


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def render_memory(serial: MemoryResult, service: MemoryResult, bursts: int) -> str:
    header = ["memory", "serial Piper", "service, defaults", "goal"]
    return format_table(header, memory_rows(serial, service, bursts))


def measure_memory(
    files: VoiceFiles, voices_dir: Sequence[Path], log_dir: Path, quick: bool
) -> tuple[MemoryResult, MemoryResult, int]:
    """The memory row: serial Piper, then the service with its defaults."""
    bursts = burst_texts(1 if quick else 3)
    progress("memory: serial Piper in its own process")
    serial = serial_piper(files, bursts)
    progress("memory: the service with its defaults")
    spec = ServerSpec(voices_dir, files.name)
    service = asyncio.run(
        measure_service(
            spec, bursts, log_dir / "server-memory.log", soak_requests=0 if quick else SOAK_REQUESTS
        )
    )
    return serial, service, len(bursts)


# ------------------------------------------------------------------ sizing


@contextmanager
def twin_voices(files: VoiceFiles, count: int) -> Iterator[tuple[Path, list[str]]]:
    """A folder with `count` names for the voice (links to its files)."""
    with tempfile.TemporaryDirectory(prefix="tts-sizing-") as folder:
        names = []
        for n in range(count):
            name = f"{files.name}-twin{n}"
            (Path(folder) / f"{name}.onnx").symlink_to(files.model.resolve())
            (Path(folder) / f"{name}.onnx.json").symlink_to(files.config.resolve())
            names.append(name)
        yield Path(folder), names


def sizing(files: VoiceFiles, voices_dir: Sequence[Path], log_dir: Path) -> str:
    """RSS and throughput for 1/2 cores and 4 workers, with 1, 2 and 4 voices loaded."""
    bursts = burst_texts(1)
    cores = sorted(os.sched_getaffinity(0))
    sizes: list[tuple[str, set[int] | None, list[str]]] = [
        ("1 core", set(cores[:1]), []),
        (f"{min(2, len(cores))} cores", set(cores[:2]), []),
        ("4 workers", set(cores[:2]), ["--workers", "4"]),
    ]
    rows: list[list[str]] = []
    for label, cpus, flags in sizes:
        for count in (1, 2, 4):
            progress(f"sizing: {label}, {count} voice(s)")
            with twin_voices(files, count - 1) as (folder, twins):
                spec = ServerSpec(
                    [*voices_dir, folder],
                    files.name,
                    flags,
                    {"TTS_PRELOAD_VOICES": ",".join(twins)},
                    cpus,
                )
                log_path = log_dir / f"server-sizing-{len(rows)}.log"
                result = asyncio.run(measure_service(spec, bursts, log_path, [files.name, *twins]))
            per_voice = sorted(result.voices_mb.values())
            rows.append(
                [
                    label,
                    str(count),
                    f"{result.rss_idle_mb or 0:.0f} MB",
                    f"{result.rss_after_mb or 0:.0f} MB",
                    f"{result.peak_mb or 0:.0f} MB",
                    " / ".join(f"{mb:.0f}" for mb in per_voice),
                    f"{result.throughput or 0:.2f}",
                    f"{result.ready_s or 0:.2f} s",
                ]
            )
    header = ["size", "voices", "RSS idle", "RSS after", "peak", "per voice (MB)"]
    return format_table([*header, "audio s/s", "ready"], rows)
