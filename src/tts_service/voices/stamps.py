"""One file's change stamp, for the caches that re-read a file when it changes."""

from __future__ import annotations

import os
from pathlib import Path

Stamp = tuple[int, int, int] | None
"""(mtime in ns, size, inode), or None when the file cannot be stat'ed."""


def file_stamp(path: Path) -> Stamp:
    """Changes when the file does: a copy rewrites it (mtime, size); `mv` of another file
    onto it swaps the inode even where size and mtime are the same."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino
