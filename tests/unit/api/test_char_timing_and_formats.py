"""Character timings from word timings, and ElevenLabs' output_format names onto ours."""

from __future__ import annotations

import pytest

from tts_service.api.char_timing import char_times, spoken_span
from tts_service.api.contexts import Output
from tts_service.api.elevenlabs_formats import (
    ELEVENLABS_FORMATS,
    UnsupportedOutputFormat,
    parse_output_format,
)
from tts_service.engine.words import Word

TEXT = "Hi, you there."
WORDS = [Word("Hi", 0.1, 0.3, 0, 2), Word("you", 0.4, 0.7, 4, 7), Word("there", 0.7, 1.2, 8, 13)]


def test_every_character_gets_a_time_in_order_within_its_word() -> None:
    times = char_times(TEXT, WORDS, 0.0, 1.5)
    assert times.chars == list(TEXT)
    assert len(times.starts) == len(times.durations) == len(TEXT)
    assert times.starts == sorted(times.starts)
    # "Hi" shares 0.1..0.3; ", " the pause 0.3..0.4; the final "." the rest to 1.5
    assert times.starts[0] == pytest.approx(0.1) and times.durations[0] == pytest.approx(0.1)
    assert times.starts[2] == pytest.approx(0.3) and times.durations[2] == pytest.approx(0.05)
    assert times.starts[-1] == pytest.approx(1.2) and times.durations[-1] == pytest.approx(0.3)
    assert sum(times.durations) == pytest.approx(1.5 - 0.1)


def test_overlapping_words_never_leave_the_lists_unequal() -> None:
    overlapping = [Word("Hi", 0.1, 0.3, 0, 5), Word("you", 0.2, 0.4, 3, 7)]
    times = char_times(TEXT, overlapping)
    assert len(times.starts) == len(times.durations) == len(TEXT)


def test_a_sentence_span_takes_its_closing_punctuation() -> None:
    assert spoken_span("One two. Three", [Word("One", 0, 1, 0, 3), Word("two", 1, 2, 4, 7)]) == (
        0,
        8,
    )
    assert spoken_span("x", []) == (0, 0)


@pytest.mark.parametrize(
    ("name", "output"),
    [
        ("pcm_16000", Output("pcm", 16000)),
        ("pcm_44100", Output("pcm", 44100)),
        ("ulaw_8000", Output("ulaw", None)),
        ("alaw_8000", Output("alaw", None)),
        ("mp3_44100_128", Output("mp3", 44100)),
        ("mp3_22050_32", Output("mp3", 22050)),
        ("opus_48000_64", Output("opus", 48000)),
        (None, Output("mp3", 44100)),  # ElevenLabs' default
    ],
)
def test_elevenlabs_names_map_onto_our_formats(name: str | None, output: Output) -> None:
    assert parse_output_format(name) == output


@pytest.mark.parametrize(
    "name", ["pcm_11025", "ulaw_16000", "opus_24000", "wav", "mp3_44100", "pcm_x", "flac_44100"]
)
def test_names_we_cannot_make_are_refused_with_the_field(name: str) -> None:
    with pytest.raises(UnsupportedOutputFormat) as refused:
        parse_output_format(name)
    assert refused.value.details["param"] == "output_format"


def test_every_documented_name_is_one_we_make() -> None:
    for name in ELEVENLABS_FORMATS:
        parse_output_format(name)
