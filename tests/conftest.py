"""Shared fixtures: real uvicorn servers in subprocesses, the tiny generated voice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from voicegen import write_tiny_voice

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`python -m tts_service serve` on a free port; waits until /health says ready. With
    `wyoming`, it also speaks Wyoming on `wyoming_port`."""

    wyoming_port: int | None = None

    def __init__(
        self,
        log_dir: Path,
        *flags: str,
        env: dict[str, str] | None = None,
        wyoming: bool = False,
    ) -> None:
        if wyoming:
            self.wyoming_port = free_port()
            flags = (*flags, "--wyoming-uri", f"tcp://127.0.0.1:{self.wyoming_port}")
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.flags = flags
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
        # Solo first sentences run on a 2-thread session, whose output differs from the
        # 1-thread workers' in the last bit; tests compare bytes, so they opt in explicitly.
        full_env["TTS_SOLO_FIRST_SENTENCE"] = "false"
        # Tests compare PCM with in-process Piper's: Piper's own peak normalisation, unless
        # a test asks for the default loudness (TTS_NORMALIZATION=loudness in `env`).
        full_env["TTS_NORMALIZATION"] = "peak"
        # A repeated text would be answered from the audio cache, at once: tests that load
        # the workers with one text (overload, stalls, fairness) need it synthesized each
        # time, so the cache's own tests opt in.
        full_env["TTS_CACHE"] = "false"
        # Downloaded voices stay inside the test run, never in the user's data folder.
        full_env["TTS_DOWNLOAD_DIR"] = str(log_dir / "downloads")
        # Voices' split graphs (chunked decoding) too: never in the user's cache folder.
        full_env["TTS_SPLIT_CACHE_DIR"] = str(log_dir / "split-cache")
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tts_service", "serve", "--port", str(self.port), *flags],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=ROOT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wyoming_info(self) -> Info:
        """The answer to a Wyoming `describe`."""
        assert self.wyoming_port is not None, "started without wyoming=True"
        async with AsyncTcpClient("127.0.0.1", self.wyoming_port) as client:
            await client.write_event(Describe().event())
            while True:
                event = await asyncio.wait_for(client.read_event(), 30)
                assert event is not None, "the server closed the connection"
                if Info.is_type(event.type):
                    return Info.from_event(event)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


# Deterministic audio (noise 0) so responses can be compared byte for byte.
DETERMINISTIC = ("--noise-scale", "0", "--noise-w-scale", "0")


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def tiny_voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A voice folder with a 3-speaker and a 1-speaker generated voice."""
    folder = tmp_path_factory.mktemp("voices")
    write_tiny_voice(folder, "tiny-multi", num_speakers=3)
    write_tiny_voice(folder, "tiny-single", num_speakers=1)
    return folder


def default_normalization_server(log_dir: Path) -> ServerProcess:
    """A server at the service's default normalisation (loudness), the bundled voice,
    2 workers x 1 thread, deterministic noise, Wyoming on."""
    return ServerProcess(
        log_dir,
        *("--workers", "2", "--threads-per-worker", "1"),
        *DETERMINISTIC,
        env={"TTS_NORMALIZATION": "loudness"},
        wyoming=True,
    )


def standard_server(logs_dir: Path, tiny_voices: Path, *flags: str) -> ServerProcess:
    """The shared server's set-up (below) with more flags, for tests that need their own."""
    return ServerProcess(
        logs_dir,
        *("--workers", "2", "--threads-per-worker", "1", "--voices-dir", str(tiny_voices)),
        *DETERMINISTIC,
        *flags,
        wyoming=True,
    )


@pytest.fixture(scope="session")
def server(logs_dir: Path, tiny_voices: Path) -> Iterator[ServerProcess]:
    """One shared server: real voice, 2 workers x 1 thread, deterministic noise, tiny voices,
    and Wyoming on `proc.wyoming_port`."""
    proc = standard_server(logs_dir, tiny_voices)
    yield proc
    proc.stop()


@pytest.fixture
def start_server(logs_dir: Path) -> Iterator[type[ServerProcess]]:
    """Start servers with custom flags inside one test; all are stopped afterwards."""
    started: list[ServerProcess] = []

    class _Tracked(ServerProcess):
        def __init__(self, *flags: str, env: dict[str, str] | None = None) -> None:
            super().__init__(logs_dir, *flags, env=env)
            started.append(self)

    yield _Tracked  # type: ignore[misc]
    for proc in started:
        proc.stop()
