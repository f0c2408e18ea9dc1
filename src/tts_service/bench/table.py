"""Plain-text tables and the cells in them."""

from __future__ import annotations

from collections.abc import Sequence


def format_percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def format_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table: first column left-aligned, the rest right-aligned."""
    width = len(header)
    if any(len(row) != width for row in rows):
        raise ValueError("every row needs as many cells as the header")
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(width)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
