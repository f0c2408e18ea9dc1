"""A voice's own loudness: how loud its raw output is, measured once per voice file on a
few sentences and kept beside its split graphs in the cache folder.

A sentence decoded in chunks leaves before its end exists, so it cannot be measured
first: it gets the gain that brings this loudness to the target (loudness.py). The
sentences are of the length chunking is used for (a short one is decoded whole and
measured itself), and the median is taken, so one odd sentence does not move it.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from tts_service.engine.loudness import integrated_loudness

log = logging.getLogger(__name__)

SENTENCES = (
    "The weather today will be mostly sunny, with a light wind from the west.",
    "I have added milk, eggs and bread to your shopping list for tomorrow.",
    "Your next meeting starts in ten minutes, in the small room on the second floor.",
    "Sorry, I could not find a song with that name, but here is something similar.",
    "The kitchen lights are on, and the front door has been locked for the night.",
)
LOUDNESS_FOLDER = "loudness"
"""Under the split cache's folder, beside the splits' own folders."""
VERSION = 1
"""Of the sentences and the measure: a stored value of another version is measured anew."""


def measured(raw_audio: Iterable[np.ndarray], rate: int) -> float:
    """The median integrated loudness (LUFS) of the sentences' raw audio."""
    levels = [integrated_loudness(audio, rate) for audio in raw_audio]
    finite = [level for level in levels if np.isfinite(level)]
    if not finite:
        raise ValueError("the voice said nothing measurable")
    return float(statistics.median(finite))


def raw_loudness(folder: Path | None, key: str, measure: Callable[[], float]) -> float:
    """The voice's stored loudness (`key`: its file's identity), else `measure()` now,
    stored for the next load when `folder` can be written."""
    path = folder / LOUDNESS_FOLDER / f"{key}.json" if folder is not None else None
    if path is not None:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("version") == VERSION:
                return float(stored["raw_lufs"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # absent or unreadable: measure
    level = measure()
    if path is not None:
        _store(path, {"version": VERSION, "raw_lufs": level})
    return level


def _store(path: Path, value: dict[str, float]) -> None:
    """Write `value` whole or not at all (a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(value, out)
        os.replace(temporary, path)
    except OSError as error:
        log.warning("cannot keep the voice's loudness in %s: %s", path.parent, error)
