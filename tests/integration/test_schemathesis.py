"""Property-based: schemathesis, with all its checks, against `/openapi.json` of a real
server finds nothing. Every response must be one the document predicts, with the status,
headers, content type and body schema it documents; every schema-valid request must be
accepted and every schema-invalid one refused.

Bounded and reproducible: a fixed number of examples per operation, derandomized
(`--generation-deterministic`), one worker (about a minute on two cores). The hooks in
tests/schemathesis_state.py say what is excluded and why: positive cases name an installed
voice and no speaker (what is installed is state, not schema), and a documented 503/504
from load or a deadline (a `timeout` too short to start in) is not a server error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import DETERMINISTIC, ServerProcess

TESTS = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = 20
LIMIT_SECONDS = 300  # far above the usual minute: only a hung run hits it


def test_schemathesis_with_all_checks_finds_nothing(
    start_server: type[ServerProcess], tmp_path: Path
) -> None:
    server = start_server("--workers", "2", "--threads-per-worker", "1", *DETERMINISTIC)
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks=all",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--workers=1",
        "--request-timeout=60",
        "--no-color",
        # A health check of its own data generation, not of the server: with downloads off
        # (403), drawing a path name for POST /voices/{name}/download trips it.
        "--suppress-health-check=filter_too_much",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "schemathesis_state",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    }
    run = subprocess.run(
        command,
        cwd=tmp_path,  # its reports and cache stay out of the checkout
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT_SECONDS,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    assert "Tested: " in output, output[-5_000:]  # it ran the operations, not just loaded
