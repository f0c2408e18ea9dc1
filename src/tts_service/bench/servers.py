"""`tts-service serve` subprocesses for the bench: started on free loopback ports, ready,
stopped."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tts_service.bench.errors import BenchError
from tts_service.bench.targets import Target

# The fifo queue holds every client at once: nothing may time out or be refused.
ADMIT_ALL = ("--request-timeout", "3600", "--max-queued-requests", "1000")


@dataclass(frozen=True)
class ServerConfig:
    default_voice: str
    voices_dir: list[Path]
    log_dir: Path
    admission: tuple[str, ...] = ADMIT_ALL
    """Admission flags for every server; () leaves the server's own limits."""
    wyoming: bool = False
    """Every server also speaks Wyoming, on a free port of its own."""
    cache: bool = False
    """The audio cache on: off elsewhere, where the workloads repeat their texts."""

    def log_path(self, target: Target) -> Path:
        return self.log_dir / f"server-{re.sub(r'[^A-Za-z0-9_@+.-]', '-', target.name)}.log"


@dataclass
class Server:
    target: Target
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    wyoming_port: int | None = None

    @property
    def name(self) -> str:
        return self.target.name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(
    config: ServerConfig, target: Target, port: int, wyoming_port: int | None = None
) -> list[str]:
    wyoming = () if wyoming_port is None else ("--wyoming-uri", f"tcp://127.0.0.1:{wyoming_port}")
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
        *wyoming,
        "--cache" if config.cache else "--no-cache",
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
            wyoming_port = free_port() if config.wyoming else None
            command = serve_command(config, target, port, wyoming_port)
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            stack.callback(stop_process, proc)
            url = f"http://127.0.0.1:{port}"
            servers.append(Server(target, url, proc, log_path, wyoming_port))
        for server in servers:
            _wait_ready(server)
        yield servers


def _wait_ready(server: Server) -> None:
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
