"""`--device` on a machine without a GPU: `cuda` refuses to start and says why, `auto`
serves on the CPU and says so in `/health` and `/voices`."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from conftest import ROOT, ServerProcess, free_port

DEFAULT_VOICE = "en_US-joe-medium"


def serve(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    full_env.update(env or {})
    command = [sys.executable, "-m", "tts_service", "serve", "--port", str(free_port())]
    return subprocess.run(
        [*command, *flags], capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=120
    )


def test_cuda_that_cannot_be_had_stops_the_server_with_the_reason() -> None:
    for result in (serve("--device", "cuda"), serve(env={"TTS_DEVICE": "cuda"})):
        assert result.returncode == 9, result.stderr
        assert "--device cuda" in result.stderr
        assert "no CUDA provider" in result.stderr and "GPU build" in result.stderr
        assert "Uvicorn running" not in result.stderr  # refused before serving anything


def test_auto_serves_on_the_cpu_and_names_the_provider(
    start_server: type[ServerProcess],
) -> None:
    server = start_server("--device", "auto", "--workers", "1")
    health = httpx.get(f"{server.base_url}/health", timeout=10).json()
    assert health["device"]["requested"] == "auto" and health["device"]["active"] == "cpu"
    assert "no CUDA provider" in health["device"]["reason"]
    voices = httpx.get(f"{server.base_url}/voices", timeout=10).json()["voices"]
    (default,) = [voice for voice in voices if voice["name"] == DEFAULT_VOICE]
    assert default["loaded"] and default["provider"] == "CPUExecutionProvider"
    assert "voices run on the cpu" in server.log()
    speech = httpx.post(f"{server.base_url}/synthesize/binary", json={"text": "On the CPU."})
    assert speech.status_code == 200 and len(speech.content) > 10_000


def test_the_default_is_the_cpu(server: ServerProcess) -> None:
    health = httpx.get(f"{server.base_url}/health", timeout=10).json()
    assert health["device"] == {
        "requested": "cpu",
        "active": "cpu",
        "reason": "asked for the CPU",
    }
    voices = httpx.get(f"{server.base_url}/voices", timeout=10).json()["voices"]
    loaded = [voice for voice in voices if voice["loaded"]]
    assert loaded and all(voice["provider"] == "CPUExecutionProvider" for voice in loaded)
