"""The bench is imported only by `tts-service bench`: starting a server never loads it."""

from __future__ import annotations

import subprocess
import sys

_PROBE = """
import contextlib, sys
import tts_service.cli, tts_service.server
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(None):
    tts_service.cli.main(["serve", "--help"])
print(",".join(sorted(m for m in sys.modules if m.startswith("tts_service.bench"))))
"""


def test_the_server_and_the_cli_do_not_import_the_bench() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == ""
