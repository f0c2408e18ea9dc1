"""The image's HEALTHCHECK command, run as Docker would run it, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ServerProcess, free_port
from dockerfile import healthcheck_code


def run_healthcheck(port: int) -> int:
    env = {**os.environ, "TTS_PORT": str(port)}
    done = subprocess.run([sys.executable, "-c", healthcheck_code()], env=env, timeout=30)
    return done.returncode


def test_healthcheck_passes_on_a_live_server_and_fails_without_one(
    server: ServerProcess,
) -> None:
    assert run_healthcheck(server.port) == 0
    assert run_healthcheck(free_port()) != 0
