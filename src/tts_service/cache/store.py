"""A bounded, least-recently-used store of synthesized sentences, with its figures.

Thread-safe: the scheduler reads and fills it under its own lock, `/health` and `/metrics`
read its figures from the event loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from tts_service.engine.voice import SentenceAudio

ENTRY_OVERHEAD = 200
"""Bytes an entry costs beside its audio and ids: the key tuple, the dict slot, the
dataclass (measured with tracemalloc: ~180 for a short sentence)."""


def entry_bytes(phoneme_ids: int, audio: SentenceAudio) -> int:
    """What one entry holds: its PCM, its key's ids and its samples per id (8 bytes each
    in a tuple of small ints), and the fixed overhead."""
    timings = len(audio.samples_per_id or ())
    return len(audio.pcm) + 8 * (phoneme_ids + timings) + ENTRY_OVERHEAD


@dataclass
class CacheFigures:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    stored: int = 0


class AudioCache:
    """Sentences by key, at most `budget` bytes together; the least recently used go
    first. An entry larger than the whole budget is not kept."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[Hashable, tuple[SentenceAudio, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.figures = CacheFigures()

    def get(self, key: Hashable) -> SentenceAudio | None:
        """The sentence under `key` (now the most recently used), or None; counted."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.figures.misses += 1
                return None
            self._entries.move_to_end(key)
            self.figures.hits += 1
            return found[0]

    def put(self, key: Hashable, audio: SentenceAudio, size: int) -> None:
        """Keep `audio` under `key` (taking `size` bytes), evicting what it needs."""
        if size > self.budget:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (audio, size)
            self._bytes += size
            self.figures.stored += 1
            while self._bytes > self.budget:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed
                self.figures.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def report(self) -> dict[str, int]:
        with self._lock:
            return {
                "bytes": self._bytes,
                "budget_bytes": self.budget,
                "entries": len(self._entries),
                "hits": self.figures.hits,
                "misses": self.figures.misses,
                "evictions": self.figures.evictions,
                "stored": self.figures.stored,
            }
