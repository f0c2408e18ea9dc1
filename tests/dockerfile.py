"""Read the repository's Dockerfile: shared by the unit test that checks its facts and the
integration test that runs its HEALTHCHECK against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            name, _, args = line.strip().partition(" ")
            result.append((name.upper(), args.strip()))
    return result


def args_of(name: str) -> list[str]:
    return [args for instruction, args in instructions() if instruction == name]


def healthcheck_code() -> str:
    """The Python source the HEALTHCHECK runs with `python -c`."""
    (healthcheck,) = args_of("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"], "slim images have no curl: use Python"
    return str(command[2])
