"""Caption files from timed words: cues by sentence within length limits, the request's
own text in them, escaping, and both formats read back by a strict parser."""

from __future__ import annotations

import pytest

from captioncheck import check_cues_match_words, parse_srt, parse_vtt
from tts_service.api.captions import MAX_CUE_CHARS, MAX_CUE_SECONDS, cues, render, srt, webvtt
from tts_service.engine.words import Word, text_words


def timed(text: str, sentence_breaks: tuple[int, ...] = (), step: float = 0.4) -> list[list[Word]]:
    """Every word of `text` one after another, `step` seconds each; a new sentence starts
    at each word index in `sentence_breaks`."""
    sentences: list[list[Word]] = [[]]
    for k, found in enumerate(text_words(text)):
        if k in sentence_breaks:
            sentences.append([])
        word = Word(
            text[found.start : found.end], k * step, k * step + step * 0.8, found.start, found.end
        )
        sentences[-1].append(word)
    return sentences


def as_dicts(sentences: list[list[Word]]) -> list[dict[str, object]]:
    return [word.to_dict() for words in sentences for word in words]


def test_a_cue_per_sentence_with_its_punctuation() -> None:
    text = 'Hello there,   "friend". How are\nyou today?'
    sentences = timed(text, sentence_breaks=(3,))
    found = cues(sentences, text)
    assert [cue.text for cue in found] == ['Hello there, "friend".', "How are you today?"]
    assert found[0].start == sentences[0][0].start and found[0].end == sentences[0][-1].end
    assert found[1].start == sentences[1][0].start


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_files_parse_strictly_and_match_the_words(fmt: str) -> None:
    text = "One two three. Four, five: six! Seven eight nine ten."
    sentences = timed(text, sentence_breaks=(3, 6))
    body = render(fmt, sentences, text)
    parsed = parse_vtt(body) if fmt == "vtt" else parse_srt(body)
    assert [cue.text for cue in parsed] == [
        "One two three.",
        "Four, five: six!",
        "Seven eight nine ten.",
    ]
    check_cues_match_words(parsed, as_dicts(sentences))


def test_long_sentences_are_cut_into_cues_within_the_limits() -> None:
    text = " ".join(f"word{n}" for n in range(60)) + "."
    sentences = timed(text, step=0.3)
    found = cues(sentences, text)
    assert len(found) > 1
    assert all(len(cue.text) <= MAX_CUE_CHARS for cue in found)
    assert all(cue.end - cue.start <= MAX_CUE_SECONDS for cue in found)
    assert " ".join(cue.text for cue in found) == text
    check_cues_match_words(parse_vtt(webvtt(found)), as_dicts(sentences))


def test_markup_and_arrows_are_escaped() -> None:
    text = "Use <b> & --> arrows. Then A-->B."
    sentences = timed(text, sentence_breaks=(5,))
    vtt = render("vtt", sentences, text)
    assert "&lt;b&gt; &amp; --&gt; arrows." in vtt
    assert [cue.text for cue in parse_vtt(vtt)] == ["Use <b> & --> arrows.", "Then A-->B."]
    srt_body = render("srt", sentences, text)
    assert "-->" not in "".join(line for line in srt_body.splitlines() if "," not in line)
    assert [cue.text for cue in parse_srt(srt_body)] == ["Use <b> & -> arrows.", "Then A->B."]


def test_unspoken_words_ride_along_and_an_empty_cue_is_dropped() -> None:
    text = "Price * here. *"
    price, star, here, lone = text_words(text)
    sentences = [
        [
            Word("Price", 0.1, 0.5, price.start, price.end),
            Word("*", 0.5, 0.5, star.start, star.end),  # espeak said nothing for it
            Word("here", 0.6, 0.9, here.start, here.end),
        ],
        [Word("*", 1.2, 1.2, lone.start, lone.end)],
    ]
    found = cues(sentences, text)
    assert [(cue.text, cue.start, cue.end) for cue in found] == [("Price * here.", 0.1, 0.9)]


def test_times_are_written_to_the_millisecond() -> None:
    text = "Late word."
    word = text_words(text)[0]
    sentences = [[Word("Late", 3725.0006, 3726.25, word.start, word.end)]]
    assert "01:02:05.001 --> 01:02:06.250" in render("vtt", sentences, text)
    assert "01:02:05,001 --> 01:02:06,250" in srt(cues(sentences, text))
    assert render("vtt", [], text) == "WEBVTT\n"
    assert render("srt", [], text) == ""
