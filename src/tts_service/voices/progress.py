"""Download progress for people: a redrawn bar on a terminal, a few plain lines elsewhere
(logs and pipes keep every line, so a bar's carriage returns would only make noise)."""

from __future__ import annotations

import time
from typing import Protocol, TextIO

BAR_WIDTH = 30
LINE_STEPS = 4
"""Off a terminal: one line at each quarter of the file."""
REDRAW_SECONDS = 0.1


class Progress(Protocol):
    def start(self, label: str, total: int, done: int = 0) -> None: ...
    def advance(self, count: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    """Say nothing (the server, and tests)."""

    def start(self, label: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


class TextProgress:
    """Progress of one file at a time on `stream` (standard error for the CLI)."""

    def __init__(self, stream: TextIO, terminal: bool | None = None) -> None:
        self._stream = stream
        self._terminal = stream.isatty() if terminal is None else terminal
        self._label = ""
        self._total = self._done = 0
        self._next_line = 0
        self._drawn_at = 0.0

    def start(self, label: str, total: int, done: int = 0) -> None:
        self._label, self._total, self._done = label, max(total, 0), done
        self._drawn_at = 0.0
        self._next_line = 1
        if not self._terminal:
            resumed = f", resuming at {_megabytes(done)}" if done else ""
            self._write(f"{label}: {_megabytes(self._total)}{resumed}\n")

    def advance(self, count: int) -> None:
        self._done += count
        if self._terminal:
            now = time.monotonic()
            if now - self._drawn_at >= REDRAW_SECONDS:
                self._drawn_at = now
                self._draw()
            return
        while self._total and self._next_line < LINE_STEPS:
            if self._done * LINE_STEPS < self._next_line * self._total:
                break
            self._write(f"{self._label}: {100 * self._next_line // LINE_STEPS}%\n")
            self._next_line += 1

    def finish(self) -> None:
        if self._terminal:
            self._draw()
            self._write("\n")
        else:
            self._write(f"{self._label}: done ({_megabytes(self._done)})\n")

    def _draw(self) -> None:
        share = min(1.0, self._done / self._total) if self._total else 1.0
        filled = int(BAR_WIDTH * share)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        amount = f"{_megabytes(self._done)} / {_megabytes(self._total)}"
        self._write(f"\r{self._label} [{bar}] {100 * share:5.1f}% {amount}")

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
