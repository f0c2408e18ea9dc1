"""Patching a model to report durations by appending to its protobuf bytes: the result is
what Piper's own patch (through the `onnx` package) makes, and a model that cannot be
patched is left as it is, with the reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import helper
from piper.patch_voice_with_alignment import add_alignment_output

from tts_service.engine.alignment import duration_tensor, load_aligned, with_output
from voicegen import aligned_frames, tiny_voice_model


def write(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def outputs(data: bytes) -> list[str]:
    return [output.name for output in onnx.load_from_string(data).graph.output]


def test_the_patch_adds_the_output_pipers_patch_adds(tmp_path: Path) -> None:
    model = tiny_voice_model("tiny", 1, alignments=True)
    path = write(tmp_path / "tiny.onnx", model)
    aligned = load_aligned(path)
    assert aligned.durations and aligned.reason == ""
    reference = onnx.load(str(path))
    add_alignment_output(reference)
    assert (
        outputs(aligned.source) == [o.name for o in reference.graph.output] == ["output", "w_ceil"]
    )
    assert aligned.source.startswith(path.read_bytes())  # appended: nothing else moved
    assert onnx.load_from_string(aligned.source) == reference  # the very same model


def test_the_patched_model_runs_and_reports_each_ids_frames(tmp_path: Path) -> None:
    path = write(tmp_path / "tiny.onnx", tiny_voice_model("tiny", 1, alignments=True))
    plain = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    patched = onnxruntime.InferenceSession(
        load_aligned(path).source, providers=["CPUExecutionProvider"]
    )
    ids = [1, 0, 20, 0, 33, 0, 7, 0, 2]
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.667, 1.25, 0.8], dtype=np.float32),
    }
    (audio,) = plain.run(None, feed)
    audio_again, frames = patched.run(None, feed)
    assert np.array_equal(audio, audio_again)
    assert frames.squeeze().tolist() == aligned_frames(ids, 1.25)
    assert audio.size == 256 * sum(aligned_frames(ids, 1.25))


def test_a_model_without_a_duration_tensor_is_loaded_as_it_is(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.onnx", tiny_voice_model("plain", 1))
    aligned = load_aligned(path)
    assert not aligned.durations and "no Ceil" in aligned.reason
    assert aligned.source == path.read_bytes()


def test_a_model_patched_already_is_not_patched_twice(tmp_path: Path) -> None:
    model = tiny_voice_model("tiny", 1, alignments=True)
    add_alignment_output(model)
    path = write(tmp_path / "patched.onnx", model)
    aligned = load_aligned(path)
    assert aligned.durations and aligned.source == path.read_bytes()
    assert outputs(aligned.source).count("w_ceil") == 1


def test_two_duration_candidates_are_not_guessed_between(tmp_path: Path) -> None:
    model = tiny_voice_model("tiny", 1, alignments=True)
    model.graph.node.append(helper.make_node("Ceil", ["w"], ["w_ceil_again"]))
    aligned = load_aligned(write(tmp_path / "two.onnx", model))
    assert not aligned.durations and "2 Ceil" in aligned.reason


@pytest.mark.parametrize(
    "data", [b"\xff" * 10, b"\x3a\x80", b"not a model at all"], ids=["varint", "short", "text"]
)
def test_bytes_that_are_no_model_are_refused_with_a_reason(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(data)
    aligned = load_aligned(path)
    assert not aligned.durations and aligned.reason and aligned.source == data


def test_long_names_and_sizes_encode_as_protobuf_does() -> None:
    name = "/decoder/" + "x" * 300  # lengths past 127 take two varint bytes
    empty = onnx.ModelProto()
    empty.graph.name = "g"
    patched = with_output(empty.SerializeToString(), name)
    assert outputs(patched) == [name]
    assert duration_tensor(patched) == (
        None,
        False,
        "the model has no Ceil tensors, not the one Piper's have",
    )
