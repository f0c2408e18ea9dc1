"""`tts-service bench`: one workload, one run, against serial Piper and the real service.

(a) serial: plain `piper.PiperVoice` in this process, onnxruntime on every core, the
    workload's texts one after another: the machine's limit for one caller.
(b-d) the service under the `fifo` (the old one-lock design), `fair` and `round_robin`
    policies: each a real uvicorn server in a subprocess, driven over loopback HTTP.

The machine is usually shared and noisy, so the results are ratios to (a) measured in the
same run, and the targets take turns (round by round, in rotating order) rather than one
after another, so a burst of outside load hits all of them alike. Absolute times are
printed for context only, next to how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from tts_service.audio.encoders import AUDIO_FORMATS, make_encoder
from tts_service.bench.words import WordCost, measure_word_cost
from tts_service.config import Settings, available_cores
from tts_service.engine.devices import DeviceName
from tts_service.errors import VoiceNotFound
from tts_service.scheduling.batching import MAX_BATCH_SIZE
from tts_service.voices.loaded import VoiceFiles, discover

if TYPE_CHECKING:
    import httpx
    from piper import PiperVoice

POLICIES = ("fifo", "fair", "round_robin")
DEVICES: tuple[str, ...] = get_args(DeviceName)
QUICK_POLICIES = ("fifo", "fair")
COMPRESSED_FORMATS = ("mp3", "opus", "aac")
SYNTH_PATH = "/synthesize/binary"
SERIAL = "serial"

T = TypeVar("T")


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (server failed, bad answer)."""


# ------------------------------------------------------------------ pure helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (as the scheduler's own figures): always a real sample."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def percentile_of(values: Sequence[float], q: float) -> float | None:
    """`percentile`, or None when nothing was measured."""
    return percentile(values, q) if values else None


def ratio(value: float | None, reference: float | None) -> float | None:
    """value / reference, or None when either is missing or the reference is not positive."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


@dataclass(frozen=True)
class Goal:
    """A target for one ratio: `value <= limit` or `value >= limit`."""

    op: str
    limit: float
    aim: float | None = None
    """A softer, better target shown next to the limit (e.g. aim 1.1x for >= 1.0x)."""

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">="):
            raise ValueError(f"goal operator must be <= or >=, got {self.op!r}")

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def verdict(self, value: float | None) -> str:
        met = self.met(value)
        return "n/a" if met is None else "PASS" if met else "MISS"

    def describe(self) -> str:
        text = f"{self.op} {format_ratio(self.limit)}"
        return f"{text} (aim {format_ratio(self.aim)})" if self.aim is not None else text


GOAL_THROUGHPUT = Goal(">=", 1.0, aim=1.1)
GOAL_SHORT_P95 = Goal("<=", 1 / 20)
GOAL_FIRST_AUDIO = Goal("<=", 1.5)
GOAL_ENCODE = Goal("<=", 0.1)
GOAL_WORDS = Goal("<=", 0.05)


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


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def format_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first column left-aligned, the rest right-aligned."""
    width = len(header)
    if any(len(row) != width for row in rows):
        raise ValueError("every row needs as many cells as the header")
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(width)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# ------------------------------------------------------------------ workload

_SUBJECTS = (
    "The committee",
    "Our new neighbour",
    "A young engineer",
    "The old lighthouse keeper",
    "Most of the students",
    "The city council",
    "My grandmother",
    "The delivery driver",
    "A small team of volunteers",
    "The head librarian",
    "Nobody in the village",
    "The visiting professor",
)
_VERBS = (
    "reviewed",
    "painted",
    "described",
    "repaired",
    "announced",
    "carried",
    "discovered",
    "explained",
    "organised",
    "photographed",
    "questioned",
    "delivered",
)
_OBJECTS = (
    "the quarterly budget",
    "a wooden fence behind the school",
    "the results of the survey",
    "an unusual pattern in the weather data",
    "three boxes of fresh vegetables",
    "the schedule for the summer festival",
    "a letter that had been lost for years",
    "the broken bridge near the river",
    "twenty seven pages of handwritten notes",
    "the plan to open a second library",
)
_TAILS = (
    "on Tuesday afternoon",
    "before the storm arrived",
    "with remarkable patience",
    "while everyone else was asleep",
    "after a long and careful discussion",
    "in less than an hour",
    "at the end of a very busy week",
)
_CLAUSES = (
    ", and nobody seemed surprised",
    ", although the instructions were far from clear",
    ", which took most of the morning",
    ", so the meeting ended early",
)
_QUESTIONS = (
    "Do you think it will rain again tomorrow?",
    "Where did you leave the keys to the garden shed?",
    "How many people are coming to dinner on Friday?",
    "Have you ever seen the northern lights?",
)


def make_sentences(count: int, seed: int) -> list[str]:
    """`count` varied, realistic English sentences; the same seed gives the same ones."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        if rng.random() < 0.12:
            sentences.append(rng.choice(_QUESTIONS))
            continue
        parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)]
        if rng.random() < 0.5:
            parts.append(rng.choice(_TAILS))
        clause = rng.choice(_CLAUSES) if rng.random() < 0.15 else ""
        sentences.append(" ".join(parts) + clause + ".")
    return sentences


def make_text(sentences: int, seed: int) -> str:
    return " ".join(make_sentences(sentences, seed))


def rotation(items: Sequence[Any], offset: int) -> list[Any]:
    """`items` starting at `offset` (wrapping): who goes first changes from round to round."""
    if not items:
        return []
    offset %= len(items)
    return [*items[offset:], *items[:offset]]


@dataclass(frozen=True)
class Workload:
    """Everything every target is asked to do, fixed before anything runs."""

    throughput_rounds: list[list[list[str]]]
    """Round -> client -> the texts that client sends one after another."""
    long_text: str
    """Looped by the long clients of the mixed load."""
    stream_text: str
    """20 sentences, streamed to measure time to first audio."""
    encode_sentences: int
    """How many sentences of `stream_text` the encoders are timed on."""
    short_texts: list[str]
    long_clients: int
    mixed_seconds: float
    min_short_samples: int
    first_audio_rounds: int


def _round_requests(round_no: int, clients: int, sizes: Sequence[int]) -> list[list[str]]:
    """Each client: a one-sentence request, then one of `sizes` sentences (varies by client)."""
    requests = []
    for client in range(clients):
        seed = 100_000 * (round_no + 1) + 100 * client
        counts = [1, *sizes[(client + round_no) % len(sizes) :][:1]]
        requests.append([make_text(n, seed + i) for i, n in enumerate(counts)])
    return requests


def build_workload(quick: bool) -> Workload:
    """Full: 3 rounds of 16 clients x 2 requests, 20-sentence long texts. Quick: one round
    of 16 clients x 1 request (1 or 2 sentences), 4-sentence long texts."""
    clients = 16
    if quick:
        rounds = [[texts[1:] for texts in _round_requests(0, clients, (1, 2))]]
    else:
        rounds = [_round_requests(r, clients, (1, 2)) for r in range(3)]
    return Workload(
        throughput_rounds=rounds,
        long_text=make_text(4 if quick else 20, seed=7),
        stream_text=make_text(20, seed=8),
        encode_sentences=5 if quick else 10,
        short_texts=make_sentences(40, seed=9),
        long_clients=4,
        mixed_seconds=4.0 if quick else 10.0,
        min_short_samples=1 if quick else 2,
        first_audio_rounds=2 if quick else 3,
    )


def throughput(samples: Sequence[Sample]) -> float | None:
    """Audio seconds per wall second over all of a target's rounds."""
    wall = sum(s.wall_s for s in samples)
    return sum(s.audio_s for s in samples) / wall if wall > 0 else None


def round_ratios(samples: Sequence[Sample], reference: Sequence[Sample]) -> list[float]:
    """Per-round throughput ratios: their spread shows how noisy the run was."""
    ratios = [
        ratio(throughput([s]), throughput([r])) for s, r in zip(samples, reference, strict=True)
    ]
    return [value for value in ratios if value is not None]


# ------------------------------------------------------------------ measurements


@dataclass(frozen=True)
class Sample:
    """One throughput round of one target."""

    wall_s: float
    audio_s: float
    foreign_cpu: float | None


@dataclass
class TargetResult:
    """Everything measured for serial Piper or one policy."""

    name: str
    rounds: list[Sample] = field(default_factory=list)
    short_latencies_s: list[float] = field(default_factory=list)
    long_requests_done: int = 0
    first_audio_s: list[float] = field(default_factory=list)
    mp3_first_byte_s: list[float] = field(default_factory=list)
    noise: list[float] = field(default_factory=list)
    """Other processes' share of the CPU during this target's measurements."""

    @property
    def throughput(self) -> float | None:
        return throughput(self.rounds)

    @property
    def short_p50(self) -> float | None:
        return percentile_of(self.short_latencies_s, 0.5)

    @property
    def short_p95(self) -> float | None:
        return percentile_of(self.short_latencies_s, 0.95)

    @property
    def first_audio(self) -> float | None:
        return statistics.median(self.first_audio_s) if self.first_audio_s else None

    @property
    def mp3_first_byte(self) -> float | None:
        return statistics.median(self.mp3_first_byte_s) if self.mp3_first_byte_s else None

    @property
    def mean_noise(self) -> float | None:
        return statistics.fmean(self.noise) if self.noise else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": [vars(sample) for sample in self.rounds],
            "throughput": self.throughput,
            "short_latencies_s": self.short_latencies_s,
            "short_p50_s": self.short_p50,
            "short_p95_s": self.short_p95,
            "long_requests_done": self.long_requests_done,
            "first_audio_s": self.first_audio_s,
            "first_audio_median_s": self.first_audio,
            "mp3_first_byte_s": self.mp3_first_byte_s,
            "mp3_first_byte_median_s": self.mp3_first_byte,
            "foreign_cpu_mean": self.mean_noise,
        }


class SerialPiper:
    """(a): plain Piper in this process, onnxruntime on `threads` threads."""

    def __init__(self, files: VoiceFiles, threads: int) -> None:
        from piper import PiperVoice
        from piper.config import PiperConfig

        from tts_service.engine.voice import make_session

        with open(files.config, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        session = make_session(files.model, threads)
        self.voice: PiperVoice = PiperVoice(session=session, config=config)
        self.sample_rate: int = config.sample_rate
        self.threads = threads

    def synthesize_all(self, texts: Sequence[str]) -> float:
        """One text after another, like a single caller; returns audio seconds."""
        chunks = (chunk for text in texts for chunk in self.voice.synthesize(text))
        return sum(len(chunk.audio_int16_bytes) // 2 for chunk in chunks) / self.sample_rate

    def first_audio(self, text: str) -> float:
        """Seconds until Piper yields its first chunk (it phonemizes the whole text first)."""
        started = time.perf_counter()
        next(iter(self.voice.synthesize(text)))
        return time.perf_counter() - started

    def first_sentences(self, text: str, count: int) -> tuple[list[bytes], float]:
        """PCM of the first `count` sentences and the seconds it took to make them."""
        started = time.perf_counter()
        pcm = []
        for chunk in self.voice.synthesize(text):
            pcm.append(chunk.audio_int16_bytes)
            if len(pcm) == count:
                break
        return pcm, time.perf_counter() - started

    def phonemize_seconds(self, text: str) -> float:
        started = time.perf_counter()
        self.voice.phonemize(text)
        return time.perf_counter() - started


def encode_seconds(fmt: str, pcm: Sequence[bytes], rate: int) -> float:
    """Time to encode `pcm` sentence by sentence with a fresh streaming encoder."""
    started = time.perf_counter()
    encoder = make_encoder(fmt, rate)
    size = sum(len(encoder.encode(part)) for part in pcm) + len(encoder.flush())
    if size == 0:
        raise BenchError(f"the {fmt} encoder produced no bytes")
    return time.perf_counter() - started


@dataclass(frozen=True)
class EncodeResult:
    audio_s: float
    synth_s: float
    """Median serial synthesis time of the encoded sentences."""
    encode_s: dict[str, float]
    """Median encoding time per format."""


def measure_encoding(serial: SerialPiper, text: str, sentences: int, repeats: int) -> EncodeResult:
    """Synthesis and each encoder take turns, so outside load hits both alike."""
    synth: list[float] = []
    encode: dict[str, list[float]] = {fmt: [] for fmt in AUDIO_FORMATS}
    pcm: list[bytes] = []
    for _ in range(repeats):
        pcm, seconds = serial.first_sentences(text, sentences)
        synth.append(seconds)
        for fmt in AUDIO_FORMATS:
            encode[fmt].append(encode_seconds(fmt, pcm, serial.sample_rate))
    return EncodeResult(
        audio_s=sum(len(part) for part in pcm) / 2 / serial.sample_rate,
        synth_s=statistics.median(synth),
        encode_s={fmt: statistics.median(times) for fmt, times in encode.items()},
    )


# ------------------------------------------------------------------ CPU noise


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


# ------------------------------------------------------------------ servers


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


# The fifo queue holds every client at once: nothing may time out or be refused.
ADMIT_ALL = ("--request-timeout", "3600", "--max-queued-requests", "1000")


@dataclass(frozen=True)
class ServerConfig:
    default_voice: str
    voices_dir: list[Path]
    log_dir: Path
    admission: tuple[str, ...] = ADMIT_ALL
    """Admission flags for every server; () leaves the server's own limits."""

    def log_path(self, target: Target) -> Path:
        return self.log_dir / f"server-{re.sub(r'[^A-Za-z0-9_@+.-]', '-', target.name)}.log"


@dataclass
class Server:
    target: Target
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def name(self) -> str:
        return self.target.name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(config: ServerConfig, target: Target, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tts_service",
        "serve",
        *("--host", "127.0.0.1", "--port", str(port), "--policy", target.policy),
        *("--workers", str(target.workers)),
        *("--threads-per-worker", str(target.threads_per_worker)),
        *("--batch-size", str(target.batch_size), "--device", target.device),
        *("--default-voice", config.default_voice),
        *[arg for folder in config.voices_dir for arg in ("--voices-dir", str(folder))],
        *config.admission,
        *("--drain-seconds", "2", "--no-ui", "--log-level", "warning"),
    ]


@contextmanager
def running_servers(config: ServerConfig, targets: Sequence[Target]) -> Iterator[list[Server]]:
    """One `tts-service serve` per target on free loopback ports, started together."""
    # Only the flags configure them: a stray TTS_API_KEY must not change the bench.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    config.log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        servers = []
        for target in targets:
            port = free_port()
            log_path = config.log_path(target)
            log = stack.enter_context(open(log_path, "wb"))
            command = serve_command(config, target, port)
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            stack.callback(stop_process, proc)
            servers.append(Server(target, f"http://127.0.0.1:{port}", proc, log_path))
        for server in servers:
            _wait_ready(server)
        yield servers


def _wait_ready(server: Server) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"the {server.name} server exited early; see {server.log_path}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # a subprocess's readiness: nothing to wait on but its answer
    raise BenchError(f"the {server.name} server was not ready after 120 s")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 20.0
) -> None:
    """Ask a server to stop (it drains), then kill it if it has not within `timeout`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_client(base_url: str, connections: int = 64) -> httpx.AsyncClient:
    """`connections` at least the clients that run at once: past it they queue in httpx."""
    import httpx

    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(3600.0, connect=10.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        trust_env=False,  # loopback only: never through a proxy
    )


async def synthesize(client: httpx.AsyncClient, text: str, voice: str | None = None) -> float:
    """One non-streamed WAV request; returns its audio seconds."""
    body = {"text": text} if voice is None else {"text": text, "voice": voice}
    response = await client.post(SYNTH_PATH, json=body)
    if response.status_code != 200:
        raise BenchError(f"server answered {response.status_code}: {response.text[:300]}")
    duration = float(response.headers["X-Duration"])
    samples = (len(response.content) - 44) // 2  # mono 16-bit WAV after a 44-byte header
    if abs(samples / int(response.headers["X-Sample-Rate"]) - duration) > 0.01:
        raise BenchError("the WAV body does not hold the audio X-Duration announces")
    return duration


async def _wait_for(
    client: httpx.AsyncClient, check: Callable[[dict[str, Any]], bool], what: str
) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if check((await client.get("/health")).json()):
            return
        await asyncio.sleep(0.05)
    raise BenchError(f"the server never became {what}")


def _idle(health: dict[str, Any]) -> bool:
    return bool(
        health["busy_workers"] == 0
        and health["active_requests"] == 0
        and health["queued_requests"] == 0
    )


async def wait_idle(client: httpx.AsyncClient) -> None:
    await _wait_for(client, _idle, "idle")


async def wait_all_idle(clients: dict[str, httpx.AsyncClient]) -> None:
    await asyncio.gather(*(wait_idle(client) for client in clients.values()))


async def throughput_round(
    client: httpx.AsyncClient,
    requests: list[list[str]],
    settle: Callable[[httpx.AsyncClient], Awaitable[None]] = wait_idle,
) -> Sample:
    """All clients at once, each sending its texts in turn, once `settle` says the server
    is quiet."""

    async def one_client(texts: list[str]) -> float:
        return sum([await synthesize(client, text) for text in texts])

    await settle(client)
    started = time.perf_counter()
    audio = await asyncio.gather(*(one_client(texts) for texts in requests))
    return Sample(time.perf_counter() - started, sum(audio), None)


async def mixed_load(client: httpx.AsyncClient, workload: Workload) -> tuple[list[float], int]:
    """Long clients loop their long text while one client sends short ones in turn."""
    done = 0

    async def long_client() -> None:
        nonlocal done
        while True:
            await synthesize(client, workload.long_text)
            done += 1

    await wait_idle(client)
    done_before = (await client.get("/health")).json()["totals"]["sentences"]

    def steady(health: dict[str, Any]) -> bool:
        # Every long request admitted, and as many sentences done as there are long
        # requests: under fair each has started, so a short one meets them mid-way rather
        # than tying with their first sentences.
        admitted = health["active_requests"] + health["queued_requests"]
        sentences = health["totals"]["sentences"] - done_before
        return bool(admitted >= workload.long_clients and sentences >= workload.long_clients)

    tasks = [asyncio.create_task(long_client()) for _ in range(workload.long_clients)]
    latencies: list[float] = []
    try:
        await _wait_for(client, steady, "busy with the long requests")
        started = time.perf_counter()
        while (
            time.perf_counter() - started < workload.mixed_seconds
            or len(latencies) < workload.min_short_samples
        ):
            text = workload.short_texts[len(latencies) % len(workload.short_texts)]
            sent = time.perf_counter()
            await synthesize(client, text)
            latencies.append(time.perf_counter() - sent)
    finally:
        for task in tasks:
            task.cancel()  # closing their connections cancels their jobs on the server
        results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    if errors:
        raise BenchError(f"a long client failed: {errors[0]!r}")
    await wait_idle(client)
    return latencies, done


async def first_byte(client: httpx.AsyncClient, text: str, fmt: str) -> float:
    """Seconds from sending a streamed request to its first body byte. Hanging up right
    after cancels the rest of the job (its sentences in flight still finish)."""
    body = {"text": text, "stream": True, "format": fmt}
    started = time.perf_counter()
    async with client.stream("POST", SYNTH_PATH, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise BenchError(f"server answered {response.status_code}: {response.text[:300]}")
        async for part in response.aiter_raw():
            if part:
                return time.perf_counter() - started
    raise BenchError(f"the streamed {fmt} response was empty")


# ------------------------------------------------------------------ the run


@dataclass
class BenchReport:
    serial: TargetResult
    policies: dict[str, TargetResult]
    encode_s: dict[str, float]
    encode_synth_s: float
    """Serial synthesis time of the sentences the encoders were timed on."""
    encode_audio_s: float
    phonemize_s: float
    meta: dict[str, Any]
    words: WordCost | None = None
    """What word timestamps add to synthesis."""
    memory: str = ""
    """The memory rows, rendered (bench_memory.py); their figures are in meta["memory"]."""

    def throughput_ratio(self, name: str) -> float | None:
        """Median of the per-round ratios: one round hit by an outside burst can't swing it."""
        rounds = self.throughput_spread(name)
        if rounds:
            return statistics.median(rounds)
        result = self.policies.get(name)
        return ratio(result.throughput if result else None, self.serial.throughput)

    def throughput_spread(self, name: str) -> list[float]:
        result = self.policies.get(name)
        return round_ratios(result.rounds, self.serial.rounds) if result else []

    def batching_ratio(self, name: str) -> float | None:
        """A batching target's throughput against the same target unbatched, as the median
        of per-round ratios (None unless both ran)."""
        base = name.split("+b")[0]
        result, unbatched = self.policies.get(name), self.policies.get(base)
        if base == name or result is None or unbatched is None:
            return None
        rounds = round_ratios(result.rounds, unbatched.rounds)
        return statistics.median(rounds) if rounds else None

    def short_p95_ratio(self, name: str) -> float | None:
        result, fifo = self.policies.get(name), self.policies.get("fifo")
        return ratio(result.short_p95 if result else None, fifo.short_p95 if fifo else None)

    def first_audio_ratio(self, name: str) -> float | None:
        result = self.policies.get(name)
        return ratio(result.first_audio if result else None, self.serial.first_audio)

    def mp3_first_ratio(self, name: str) -> float | None:
        result = self.policies.get(name)
        return ratio(result.mp3_first_byte if result else None, self.serial.first_audio)

    def encode_ratio(self, fmt: str) -> float | None:
        return ratio(self.encode_s.get(fmt), self.encode_synth_s)

    def goals(self) -> list[dict[str, Any]]:
        """The verdicts, judged on the fair policy (the default)."""
        checks: list[tuple[str, float | None, Goal]] = [
            ("throughput fair / serial", self.throughput_ratio("fair"), GOAL_THROUGHPUT),
            ("short p95 fair / fifo", self.short_p95_ratio("fair"), GOAL_SHORT_P95),
            ("first audio fair / serial", self.first_audio_ratio("fair"), GOAL_FIRST_AUDIO),
            ("mp3 first byte fair / serial", self.mp3_first_ratio("fair"), GOAL_FIRST_AUDIO),
        ]
        checks += [
            (f"{fmt} encode / synthesis", self.encode_ratio(fmt), GOAL_ENCODE)
            for fmt in COMPRESSED_FORMATS
        ]
        words = self.words.ratio if self.words is not None else None
        checks.append(("word timestamps / synthesis", words, GOAL_WORDS))
        return [
            {"name": name, "value": value, "goal": goal.describe(), "verdict": goal.verdict(value)}
            for name, value, goal in checks
        ]

    def to_dict(self) -> dict[str, Any]:
        policies = {
            name: {
                **result.to_dict(),
                "throughput_ratio": self.throughput_ratio(name),
                "throughput_round_ratios": self.throughput_spread(name),
                "throughput_ratio_to_unbatched": self.batching_ratio(name),
                "short_p95_ratio_to_fifo": self.short_p95_ratio(name),
                "first_audio_ratio": self.first_audio_ratio(name),
                "mp3_first_byte_ratio": self.mp3_first_ratio(name),
            }
            for name, result in self.policies.items()
        }
        encode = {
            fmt: {"seconds": secs, "ratio_to_synthesis": self.encode_ratio(fmt)}
            for fmt, secs in self.encode_s.items()
        }
        return {
            **self.meta,
            "serial": {**self.serial.to_dict(), "phonemize_stream_text_s": self.phonemize_s},
            "policies": policies,
            "encode": {
                "synthesis_s": self.encode_synth_s,
                "audio_s": self.encode_audio_s,
                "formats": encode,
            },
            "word_timestamps": self.words.to_dict() if self.words is not None else None,
            "goals": self.goals(),
        }


@asynccontextmanager
async def server_clients(
    servers: Sequence[Server], connections: int = 64
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        yield {
            s.name: await stack.enter_async_context(bench_client(s.url, connections))
            for s in servers
        }


async def _throughput_phase(
    workload: Workload,
    serial: SerialPiper,
    clients: dict[str, httpx.AsyncClient],
    results: dict[str, TargetResult],
    meter: CpuMeter,
) -> None:
    """Each round, every target gets the same requests; who goes first rotates."""
    rounds = workload.throughput_rounds
    for round_no, requests in enumerate(rounds):
        progress(f"throughput round {round_no + 1}/{len(rounds)}")
        for name in rotation(list(results), round_no):
            target = results[name]
            await wait_all_idle(clients)
            if name == SERIAL:
                texts = [text for client in requests for text in client]
                work: Awaitable[Sample] = _serial_round(serial, texts)
            else:
                work = throughput_round(clients[name], requests)
            sample, share = await meter.measure(work, target.noise)
            target.rounds.append(Sample(sample.wall_s, sample.audio_s, share))


async def _serial_round(serial: SerialPiper, texts: list[str]) -> Sample:
    started = time.perf_counter()
    audio = await asyncio.to_thread(serial.synthesize_all, texts)
    return Sample(time.perf_counter() - started, audio, None)


async def _first_audio_phase(
    workload: Workload,
    serial: SerialPiper,
    clients: dict[str, httpx.AsyncClient],
    results: dict[str, TargetResult],
) -> None:
    """Each measurement starts with every server idle: a hung-up stream's last sentences
    must not overlap the next target's first one."""
    text = workload.stream_text
    for round_no in range(workload.first_audio_rounds):
        for name in rotation(list(results), round_no):
            target = results[name]
            await wait_all_idle(clients)
            if name == SERIAL:
                target.first_audio_s.append(await asyncio.to_thread(serial.first_audio, text))
                continue
            target.first_audio_s.append(await first_byte(clients[name], text, "wav"))
            await wait_all_idle(clients)
            target.mp3_first_byte_s.append(await first_byte(clients[name], text, "mp3"))
    await wait_all_idle(clients)


async def run_targets(
    workload: Workload, serial: SerialPiper, servers: list[Server], meter: CpuMeter
) -> dict[str, TargetResult]:
    """Every phase for every target; results keyed by "serial" and target names."""
    results = {SERIAL: TargetResult(SERIAL)}
    results.update({server.name: TargetResult(server.name) for server in servers})
    async with server_clients(servers) as clients:
        for client in clients.values():  # a model's first runs allocate: not measured
            await synthesize(client, workload.short_texts[0])
        serial.synthesize_all(workload.short_texts[:1])
        await _throughput_phase(workload, serial, clients, results, meter)
        for name, client in clients.items():
            progress(f"mixed load, {name}")
            target = results[name]
            (latencies, done), _ = await meter.measure(mixed_load(client, workload), target.noise)
            target.short_latencies_s, target.long_requests_done = latencies, done
        progress("time to first audio")
        await _first_audio_phase(workload, serial, clients, results)
    return results


# ------------------------------------------------------------------ table


def _cell(goal: Goal, value: float | None) -> str:
    return "-" if value is None else f"{format_ratio(value)} {goal.verdict(value)}"


def _spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    return f"{format_ratio(min(values))}-{format_ratio(max(values))}"


def main_rows(report: BenchReport) -> list[list[str]]:
    serial, policies = report.serial, report.policies
    names = list(policies)

    def row(label: str, first: str, cell: Callable[[str], str], goal: str = "") -> list[str]:
        return [label, first, *(cell(name) for name in names), goal]

    def sec(value: float | None) -> str:
        return format_seconds(value)

    batching = [
        row(
            "  ratio to unbatched (median round)",
            "",
            lambda n: format_ratio(report.batching_ratio(n)) if "+b" in n else "",
        )
    ]
    return [
        row(
            "throughput (audio s / wall s)",
            f"{serial.throughput or 0:.2f}",
            lambda n: f"{policies[n].throughput or 0:.2f}",
        ),
        row(
            "  ratio to serial (median round)",
            "1.00x",
            lambda n: _cell(GOAL_THROUGHPUT, report.throughput_ratio(n)),
            GOAL_THROUGHPUT.describe(),
        ),
        row("  per-round ratios", "", lambda n: _spread(report.throughput_spread(n))),
        *(batching if any("+b" in name for name in names) else []),
        row("short p50 under long load", "", lambda n: sec(policies[n].short_p50)),
        row("short p95 under long load", "", lambda n: sec(policies[n].short_p95)),
        row(
            "  short samples / long done",
            "",
            lambda n: f"{len(policies[n].short_latencies_s)} / {policies[n].long_requests_done}",
        ),
        row(
            "  p95 ratio to fifo",
            "",
            lambda n: _cell(GOAL_SHORT_P95, report.short_p95_ratio(n)),
            GOAL_SHORT_P95.describe(),
        ),
        row(
            "first audio, 20 sentences",
            sec(serial.first_audio),
            lambda n: sec(policies[n].first_audio),
        ),
        row(
            "  ratio to serial",
            "1.00x",
            lambda n: _cell(GOAL_FIRST_AUDIO, report.first_audio_ratio(n)),
            GOAL_FIRST_AUDIO.describe(),
        ),
        row("mp3 first byte, streamed", "", lambda n: sec(policies[n].mp3_first_byte)),
        row(
            "  ratio to serial first audio",
            "",
            lambda n: _cell(GOAL_FIRST_AUDIO, report.mp3_first_ratio(n)),
            GOAL_FIRST_AUDIO.describe(),
        ),
        row(
            "other processes' CPU (noise)",
            format_percent(serial.mean_noise),
            lambda n: format_percent(policies[n].mean_noise),
        ),
    ]


def encode_rows(report: BenchReport) -> list[list[str]]:
    rows = []
    for fmt, seconds in report.encode_s.items():
        value = report.encode_ratio(fmt)
        judged = fmt in COMPRESSED_FORMATS
        rows.append(
            [
                fmt,
                format_seconds(seconds),
                format_ratio(value),
                GOAL_ENCODE.describe() if judged else "",
                GOAL_ENCODE.verdict(value) if judged else "",
            ]
        )
    return rows


def word_rows(words: WordCost) -> list[list[str]]:
    return [
        ["synthesis", format_seconds(words.synth_s), "", "", ""],
        [
            "with durations",
            format_seconds(words.synth_timed_s),
            f"{words.model_ratio:+.1%}",
            "",
            "",
        ],
        ["word mapping", format_seconds(words.words_s), f"{words.words_ratio:+.1%}", "", ""],
        [
            "timestamps in all",
            "",
            format_ratio(words.ratio),
            GOAL_WORDS.describe(),
            GOAL_WORDS.verdict(words.ratio),
        ],
    ]


def render(report: BenchReport) -> str:
    header = ["", "serial Piper", *report.policies, "goal (fair)"]
    parts = [
        format_table(header, main_rows(report)),
        f"Encoding {report.encode_audio_s:.1f} s of audio (synthesized serially in "
        f"{report.encode_synth_s:.2f} s), sentence by sentence:",
        format_table(["format", "encode time", "/ synthesis", "goal", ""], encode_rows(report)),
    ]
    if report.words is not None:
        parts += [
            f"Word timestamps, CPU time per sentence ({report.words.sentences} sentences, "
            "voice as it is and with durations taking turns):",
            format_table(["", "time", "/ synthesis", "goal", ""], word_rows(report.words)),
        ]
    if report.memory:
        parts.append(report.memory)
    return "\n\n".join(parts)


# ------------------------------------------------------------------ the command


def _voice_files(settings: Settings) -> VoiceFiles:
    found = discover(settings.voices_dir)
    if settings.default_voice not in found:
        raise VoiceNotFound(
            f"voice '{settings.default_voice}' is not installed", available=sorted(found)
        )
    return found[settings.default_voice]


def _meta(settings: Settings, args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    texts = [text for requests in workload.throughput_rounds for c in requests for text in c]
    return {
        "command": " ".join(["tts-service", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "machine": {
            "cores": available_cores(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "service": {
            "workers": settings.worker_count,
            "threads_per_worker": settings.threads_per_worker,
            "voice": settings.default_voice,
        },
        "workload": {
            "clients": len(workload.throughput_rounds[0]),
            "throughput_rounds": len(workload.throughput_rounds),
            "throughput_requests": len(texts),
            "throughput_chars": sum(len(text) for text in texts),
            "long_clients": workload.long_clients,
            "long_text_chars": len(workload.long_text),
            "mixed_seconds": workload.mixed_seconds,
            "stream_text_chars": len(workload.stream_text),
        },
    }


_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def measure(settings: Settings, args: argparse.Namespace, targets: Sequence[Target]) -> BenchReport:
    workload = build_workload(args.quick)
    meta = _meta(settings, args, workload)
    cores = available_cores()
    progress(f"serial Piper with {cores} onnxruntime threads; encoders")
    serial = SerialPiper(_voice_files(settings), threads=cores)
    encode = measure_encoding(
        serial, workload.stream_text, workload.encode_sentences, repeats=1 if args.quick else 3
    )
    progress("word timestamps: the voice with and without durations")
    words = measure_word_cost(
        _voice_files(settings),
        workload.stream_text,
        workload.encode_sentences,
        repeats=1 if args.quick else 3,
        threads=settings.threads_per_worker,  # as the service's workers run it
    )
    config = ServerConfig(settings.default_voice, settings.voices_dir, Path(args.output).parent)
    meter = CpuMeter(cores)
    sizes = ", ".join(f"{t.name} {t.workers}x{t.threads_per_worker}" for t in targets)
    progress(f"servers: {sizes}")
    meta["targets"] = [vars(target) for target in targets]
    with running_servers(config, targets) as servers:
        meter.pids = [server.proc.pid for server in servers]
        results = asyncio.run(run_targets(workload, serial, servers, meter))
    memory = _memory_phase(settings, args) if not getattr(args, "no_memory", False) else None
    meta["machine"]["loadavg_end"] = list(os.getloadavg())
    serial_result = results.pop(SERIAL)
    if memory is not None:
        meta["memory"] = memory[0]
    return BenchReport(
        serial=serial_result,
        policies=results,
        encode_s=encode.encode_s,
        encode_synth_s=encode.synth_s,
        encode_audio_s=encode.audio_s,
        phonemize_s=serial.phonemize_seconds(workload.stream_text),
        meta=meta,
        words=words,
        memory=memory[1] if memory is not None else "",
    )


def _memory_phase(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The memory rows (bench_memory.py), run after the other servers have stopped."""
    from tts_service.bench.memory import measure_memory, render_memory

    files = _voice_files(settings)
    log_dir = Path(args.output).parent
    serial, service, bursts = measure_memory(files, settings.voices_dir, log_dir, args.quick)
    figures = {"bursts": bursts, "serial": serial.to_dict(), "service": service.to_dict()}
    return figures, render_memory(serial, service, bursts)


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    try:
        import httpx  # noqa: F401 - the clients need it; fail early with a clear message
    except ImportError:
        print("tts-service bench: needs httpx (pip install httpx)", file=sys.stderr)
        return 2
    if getattr(args, "streams", None):
        from tts_service.bench.streams import run_streams

        return run_streams(settings, args)
    if getattr(args, "sizing", False):
        from tts_service.bench.memory import sizing

        output = Path(args.output).parent
        output.mkdir(parents=True, exist_ok=True)
        print(sizing(_voice_files(settings), settings.voices_dir, output))
        return 0
    try:
        targets = parse_targets(
            getattr(args, "policies", None),
            args.quick,
            settings.worker_count,
            settings.threads_per_worker,
        )
        report = measure(settings, args, targets)
    except BenchError as error:
        print(f"tts-service bench: {error}", file=sys.stderr)
        return 1
    report.meta["bench_seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(render(report))
    load = report.meta["machine"]
    service = report.meta["service"]
    print(
        f"\nservice: {service['workers']} workers x {service['threads_per_worker']} threads on "
        f"{load['cores']} cores; load average {load['loadavg_start'][0]:.2f} -> "
        f"{load['loadavg_end'][0]:.2f}; {report.meta['bench_seconds']} s; wrote {output}"
    )
    return 0
