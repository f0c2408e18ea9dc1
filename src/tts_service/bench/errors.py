"""The bench's one error."""

from __future__ import annotations


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to (server failed, bad answer)."""
