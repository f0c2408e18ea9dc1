"""A voice's split graphs on disk, kept from one load (and one run) to the next.

Finding the seam walks a medium voice's ~2,800 nodes (~0.2 s on the development machine);
the split is kept in a cache folder of its own, keyed by the voice file's identity (real
path, size, modification time), never beside the voice: a voice folder may be read-only
or shared. The graphs hold no weights (their tensors refer to the voice file, weights.py),
so an entry is about a megabyte. A graph without a seam is remembered too, with why.
A cache that cannot be written costs only the walk at the next load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tts_service.engine.seam import Crossing, Seam

log = logging.getLogger(__name__)

# Bumped whenever what is stored (or how the seam is found) changes.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """The user's cache folder (XDG): $XDG_CACHE_HOME/tts-service or ~/.cache/tts-service."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "tts-service"


@dataclass(frozen=True)
class StoredSplit:
    """What a load needs of a split: the seam's names and the two graphs (or why not)."""

    seam: Seam | None
    frontend: bytes = b""
    decoder: bytes = b""
    reason: str = ""
    """Why the graph has no seam (when `seam` is None)."""


def voice_key(model_path: Path, variant: str) -> str:
    """The voice file's identity: its real path, size and modification time, and the
    `variant` of graph split (with durations or not)."""
    real = model_path.resolve()
    stat = real.stat()
    identity = f"{CACHE_VERSION}:{real}:{stat.st_size}:{stat.st_mtime_ns}:{variant}"
    return f"{real.stem}-{hashlib.sha256(identity.encode()).hexdigest()[:20]}"


class SplitCache:
    """Split graphs under `folder`, one subfolder per key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self, key: str) -> StoredSplit | None:
        entry = self.folder / key
        try:
            meta = json.loads((entry / "seam.json").read_text(encoding="utf-8"))
            if meta.get("version") != CACHE_VERSION:
                return None
            if meta.get("seam") is None:
                return StoredSplit(None, reason=str(meta.get("reason", "")))
            return StoredSplit(
                _seam(meta["seam"]),
                (entry / "frontend.onnx").read_bytes(),
                (entry / "decoder.onnx").read_bytes(),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or half written by a process that died: split again

    def store(self, key: str, split: StoredSplit) -> None:
        """Keep `split` (written aside, then renamed: a reader never sees half of it)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.folder))
            if split.seam is not None:
                (staging / "frontend.onnx").write_bytes(split.frontend)
                (staging / "decoder.onnx").write_bytes(split.decoder)
            meta = {
                "version": CACHE_VERSION,
                "seam": None if split.seam is None else _seam_dict(split.seam),
                "reason": split.reason,
            }
            (staging / "seam.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            try:
                os.replace(staging, self.folder / key)
            except OSError:  # another process stored it first: theirs is as good
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as error:  # a full or read-only cache: the next load splits again
            log.warning("voice split not cached in %s: %s", self.folder, error)


def _seam_dict(seam: Seam) -> dict[str, object]:
    return {
        "z_p": seam.z_p,
        "crossings": [[c.name, c.framewise] for c in seam.crossings],
        "durations": seam.durations,
    }


def _seam(raw: dict[str, object]) -> Seam:
    crossings = raw["crossings"]
    if not isinstance(crossings, list):
        raise ValueError("a stored seam without its crossings")
    durations = raw["durations"]
    return Seam(
        z_p=str(raw["z_p"]),
        crossings=tuple(Crossing(str(name), bool(framewise)) for name, framewise in crossings),
        durations=None if durations is None else str(durations),
        frontend_nodes=(),
        decoder_nodes=(),
    )
