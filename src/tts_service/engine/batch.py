"""Several sentences in one run of a voice's model: the inputs, and each one's audio out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime


class BatchError(RuntimeError):
    """The model's batch output does not add up (lengths past the padded audio)."""


def has_batch_axis(session: onnxruntime.InferenceSession) -> bool:
    """The model's `input` has a free first dimension (Piper's exports call it
    `batch_size`); a model exported for one sentence at a time fixes it to 1."""
    for model_input in session.get_inputs():
        if model_input.name == "input":
            first = model_input.shape[0] if model_input.shape else 1
            return not isinstance(first, int)
    return False


def batch_inputs(
    ids: Sequence[list[int]], scales: tuple[float, float, float], speakers: Sequence[int | None]
) -> dict[str, np.ndarray]:
    """The model's inputs for several sentences: ids padded to the longest (the model masks
    past each `input_lengths`), one `scales`, one speaker each when the voice has several."""
    longest = max(len(one) for one in ids)
    padded = np.zeros((len(ids), longest), dtype=np.int64)
    for row, one in enumerate(ids):
        padded[row, : len(one)] = one
    inputs: dict[str, np.ndarray] = {
        "input": padded,
        "input_lengths": np.array([len(one) for one in ids], dtype=np.int64),
        "scales": np.array(scales, dtype=np.float32),
    }
    if any(speaker is not None for speaker in speakers):
        inputs["sid"] = np.array([speaker or 0 for speaker in speakers], dtype=np.int64)
    return inputs


def split_batch(
    outputs: Sequence[np.ndarray], lengths: Sequence[int], hop: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each sentence's audio and samples per phoneme id out of a batch run's padded output.

    A sentence's true length is the sum of its ids' durations (frames) times the hop
    length, as Piper's `phoneme_ids_to_audio(..., include_alignments=True)` counts them.
    What follows it is padding. The vocoder is not masked, so the last few hundred
    samples of a shorter sentence see the padding's zeros through its convolutions where
    alone they would see the end of the signal: they may differ from a solo run by a few
    units of the int16 scale (tests measure it)."""
    if len(outputs) < 2:
        raise BatchError("the model reports no durations: a batch cannot be split")
    audio = np.asarray(outputs[0]).reshape(len(lengths), -1)
    durations = np.asarray(outputs[1]).reshape(len(lengths), -1)
    parts = []
    for row, length in enumerate(lengths):
        samples_per_id = (durations[row, :length] * hop).astype(np.int64)
        total = int(samples_per_id.sum())
        if total > audio.shape[1]:
            raise BatchError(f"sentence {row} claims {total} samples of {audio.shape[1]}")
        parts.append((audio[row, :total], samples_per_id))
    return parts
