"""Progress lines on stderr, timed from the bench's start (the tables go to stdout)."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)
