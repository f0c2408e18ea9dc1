"""The chunking measure on a generated voice (figures are not asserted: only that they are
measured, and that the joined chunks are compared with the whole)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tts_service.bench.chunking import max_lsb, measure_chunking
from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.voice import Voice
from voicegen import write_tiny_voice


def test_it_measures_first_audio_and_cpu_against_the_whole(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-vits", 1, vits=True)
    config = model.with_name("tiny-vits.onnx.json")
    voice = Voice.load("tiny-vits", model, config, 1, chunking=ChunkPlan(8, 8, (4, 8)))
    cost = measure_chunking(voice, "Several words, so that there are several chunks.", 2)
    assert cost.samples > 0
    assert cost.whole_s > 0 and cost.first_chunk_s > 0
    assert cost.whole_cpu_s >= 0 and cost.chunked_cpu_s >= 0
    assert cost.max_lsb <= 4
    assert set(cost.to_dict()) >= {"first_audio_ratio", "cpu_ratio", "max_lsb"}


def test_a_voice_that_cannot_chunk_is_refused(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-tone", 1, alignments=True)
    voice = Voice.load("tiny-tone", model, model.with_name("tiny-tone.onnx.json"), 1)
    with pytest.raises(ValueError, match="whole sentences"):
        measure_chunking(voice, "No.")


def test_the_error_is_in_lsb_after_the_whole_sentences_peak_gain() -> None:
    whole = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    chunked = whole + np.array([0.0, 1.0 / 32767, 0.0], dtype=np.float32)
    assert max_lsb(whole, chunked) == pytest.approx(2.0, rel=1e-3)
    with pytest.raises(ValueError):
        max_lsb(whole, chunked[:2])
