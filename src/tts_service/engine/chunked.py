"""Decode a sentence in chunks of frames: its first audio before the whole is decoded.

The front end (seam.py) runs once per sentence and draws all of its noise; the decoder
(flow + HiFi-GAN) is convolutional over the frames, so a window of frames decoded with
enough context on each side (the margins, decoded and thrown away) gives that window's
samples as the whole decode gives them. A chunk is decoded when its iterator is advanced:
a scheduler may interleave chunks of several sentences, or stop at a cancel.

The defaults were measured on en_US-joe-medium at noise 0 against the whole decode (see
the README's "Chunked decoding"): margins of 48 frames left and 40 right join within
1 LSB of 16-bit; small margins cost accuracy (fewer than ~20 frames are audible). A small
first chunk gives early audio, larger ones after cost fewer margins.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime

from tts_service.engine.seam import Seam

DEFAULT_LEFT_FRAMES = 48
DEFAULT_RIGHT_FRAMES = 40
DEFAULT_CHUNK_FRAMES = (16, 32, 64, 128, 256)


@dataclass(frozen=True)
class ChunkPlan:
    """Margins and chunk sizes, in frames (one frame is `hop_length` samples)."""

    left: int = DEFAULT_LEFT_FRAMES
    """Frames before a chunk decoded for context and thrown away."""
    right: int = DEFAULT_RIGHT_FRAMES
    """Frames after a chunk decoded for context and thrown away."""
    frames: tuple[int, ...] = DEFAULT_CHUNK_FRAMES
    """Frames of each chunk in turn; the last size repeats to the end of the sentence."""

    def __post_init__(self) -> None:
        if self.left < 0 or self.right < 0:
            raise ValueError("chunk margins must be 0 or more frames")
        if not self.frames or min(self.frames) < 1:
            raise ValueError("chunk sizes must be 1 frame or more")

    def windows(self, total: int) -> Iterator[tuple[int, int]]:
        """The chunks [start, end) of a sentence of `total` frames, in order."""
        start = 0
        for turn in range(total):
            if start >= total:
                return
            end = min(total, start + self.frames[min(turn, len(self.frames) - 1)])
            yield start, end
            start = end


@dataclass(frozen=True)
class ChunkedSentence:
    """One sentence after its front end: its timings now, its audio chunk by chunk."""

    samples_per_id: tuple[int, ...] | None
    """Samples each phoneme id takes (as `SentenceAudio.samples_per_id`), when the model
    reports durations."""
    total_samples: int
    """Samples of the sentence's raw audio: the chunks together have exactly this many."""
    chunks: Generator[np.ndarray, None, None]
    """The model's raw float32 audio (before normalisation, gain or volume), one chunk per
    step; each is decoded when the generator is advanced (`close()` it, or drop it, to
    stop: nothing more is decoded)."""


class ChunkedDecoder:
    """A voice's front-end and decoder sessions (on the voice's shared weights)."""

    def __init__(
        self,
        frontend: onnxruntime.InferenceSession,
        decoder: onnxruntime.InferenceSession,
        seam: Seam,
        hop: int,
        plan: ChunkPlan,
    ) -> None:
        self.frontend = frontend
        self.decoder = decoder
        self.seam = seam
        self.hop = hop
        self.plan = plan

    def start(self, inputs: dict[str, np.ndarray], ids: int) -> ChunkedSentence:
        """Run the front end on one sentence's model inputs (`ids` phoneme ids long)."""
        outputs = self.frontend.run(None, inputs)
        crossing = dict(zip(self.seam.frontend_outputs, outputs, strict=True))
        frames = int(crossing[self.seam.z_p].shape[-1])
        samples_per_id = None
        if self.seam.durations is not None:
            counts = (crossing[self.seam.durations].reshape(-1) * self.hop).astype(np.int64)
            if len(counts) == ids:
                samples_per_id = tuple(int(n) for n in counts)
        feeds = {c.name: crossing[c.name] for c in self.seam.crossings}
        chunks = self._chunks(feeds, frames)
        return ChunkedSentence(samples_per_id, frames * self.hop, chunks)

    def decode_whole(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Every frame in one decoder run (the load's check, and the measure of chunks)."""
        return np.asarray(self.decoder.run(None, feeds)[0], dtype=np.float32).reshape(-1)

    def _chunks(
        self, feeds: dict[str, np.ndarray], frames: int
    ) -> Generator[np.ndarray, None, None]:
        for start, end in self.plan.windows(frames):
            yield self.decode_window(feeds, frames, start, end)

    def decode_window(
        self, feeds: dict[str, np.ndarray], frames: int, start: int, end: int
    ) -> np.ndarray:
        """Frames [start, end) as the whole decode gives them, the margins thrown away."""
        low = max(0, start - self.plan.left)
        high = min(frames, end + self.plan.right)
        window = {
            c.name: np.ascontiguousarray(feeds[c.name][..., low:high])
            if c.framewise
            else feeds[c.name]
            for c in self.seam.crossings
        }
        audio = self.decode_whole(window)
        first = (start - low) * self.hop
        return audio[first : first + (end - start) * self.hop]


def joined(chunks: Sequence[np.ndarray]) -> np.ndarray:
    """The chunks as one array (empty float32 when there are none)."""
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class RawSentence:
    """One sentence's raw audio from the whole-sentence session."""

    audio: np.ndarray
    """The model's float32 samples, before normalisation, gain or volume."""
    samples_per_id: tuple[int, ...] | None

    @classmethod
    def of(cls, audio: np.ndarray, samples_per_id: np.ndarray | None, ids: int) -> RawSentence:
        """From Piper's `phoneme_ids_to_audio` result for `ids` phoneme ids."""
        raw = np.asarray(audio, dtype=np.float32).reshape(-1)
        if samples_per_id is None or len(samples_per_id) != ids:
            return cls(raw, None)
        return cls(raw, tuple(int(n) for n in samples_per_id))
