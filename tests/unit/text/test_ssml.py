"""The SSML subset parsed to segments: what each element does, where each character
points in the source, and what is refused (safely, with its line and column)."""

from __future__ import annotations

import pytest

from tts_service.errors import InvalidRequest
from tts_service.text import ssml
from tts_service.text.segments import Segment


def parse(source: str) -> list[Segment]:
    return ssml.parse(source, "en_US")


def points_at(source: str, segment: Segment, spoken: str) -> str:
    """The source characters the spoken text `spoken` (in the segment) stands for."""
    start = segment.text.text.index(spoken)
    a, b = segment.text.span(start, start + len(spoken))
    return source[a:b]


def test_breaks_end_segments_with_their_pause() -> None:
    segments = parse('<speak>One <break time="1.5s"/>two<break strength="weak"/> three</speak>')
    assert [(s.text.text.strip(), s.pause) for s in segments] == [
        ("One", 1.5),
        ("two", 0.25),
        ("three", None),
    ]


def test_breaks_in_a_row_add_up_and_are_capped() -> None:
    segments = parse('<speak>A <break time="6s"/><break time="6000ms"/> b</speak>')
    assert segments[0].pause == 10.0


def test_p_and_s_are_their_own_segments_and_prosody_sets_the_pace() -> None:
    segments = parse(
        '<speak><p><s>One.</s><s>Two.</s></p><prosody rate="x-slow">slow</prosody>'
        '<prosody rate="+50%">fast</prosody><prosody rate="80%">less</prosody></speak>'
    )
    assert [(s.text.text, s.rate) for s in segments] == [
        ("One.", 1.0),
        ("Two.", 1.0),
        ("slow", 0.5),
        ("fast", 1.5),
        ("less", 0.8),
    ]


def test_say_as_sub_and_phoneme_stand_for_their_content() -> None:
    source = (
        '<speak><say-as interpret-as="characters">NASA</say-as> '
        '<say-as interpret-as="ordinal">3</say-as> '
        '<say-as interpret-as="cardinal">1,234</say-as> '
        '<say-as interpret-as="digits">42</say-as> '
        '<say-as interpret-as="date" format="dmy">04/07/2026</say-as> '
        '<say-as interpret-as="time">8:05</say-as> '
        '<say-as interpret-as="telephone">555-0100</say-as> '
        '<sub alias="World Wide Web">WWW</sub> '
        '<phoneme alphabet="ipa" ph="təmˈeɪtoʊ">tomato</phoneme></speak>'
    )
    (segment,) = parse(source)
    said = " ".join(segment.text.text.split())
    assert said == (
        "N A S A third one thousand, two hundred and thirty-four four two July fourth, "
        "twenty twenty-six eight oh five five five five, zero one zero zero World Wide Web "
        "[[ təmˈeɪtoʊ ]]"
    )
    assert points_at(source, segment, "N A S A") == "NASA"
    assert points_at(source, segment, "World Wide Web") == "WWW"
    assert points_at(source, segment, "təmˈeɪtoʊ") == "tomato"


def test_text_points_at_its_place_in_the_source_entities_included() -> None:
    source = "<speak>\n  Fish &amp; chips, caf\u00e9 ok</speak>"
    (segment,) = parse(source)
    assert points_at(source, segment, "Fish") == "Fish"
    assert points_at(source, segment, "&") == "&amp;"
    assert points_at(source, segment, "ok") == "ok"  # after a non-ASCII character


def test_ignored_and_unknown_elements_speak_their_text() -> None:
    source = (
        '<speak><emphasis level="strong">Big</emphasis> <voice name="x">news</voice> '
        '<lang xml:lang="fr">ici</lang> <shout>now</shout></speak>'
    )
    assert " ".join(parse(source)[0].text.text.split()) == "Big news ici now"


def test_marks_are_kept_at_their_place_in_the_source() -> None:
    source = '<speak>Hello <mark name="a"/>world<mark name="end"/></speak>'
    (segment,) = parse(source)
    assert [(m.name, source[m.at :].split(">")[0]) for m in segment.marks] == [
        ("a", '<mark name="a"/'),
        ("end", '<mark name="end"/'),
    ]


def test_a_text_asked_to_be_ssml_may_leave_out_its_root() -> None:
    source = "Hi <break/> there"
    segments = parse(source)
    assert [(s.text.text, s.pause) for s in segments] == [("Hi ", 0.5), (" there", None)]
    assert points_at(source, segments[1], "there") == "there"


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("<speak>Hello <b>world</speak>", "line 1, column 24"),
        ("<speak>\n\n  <s>open</speak>", "line 3, column"),
        ("<?xml version='1.0'?><!DOCTYPE x SYSTEM 'file:///etc/passwd'><speak/>", "DTD"),
        ("<speak>" + "<s>" * 100 + "deep" + "</s>" * 100 + "</speak>", "deeper than 64"),
        ('<speak>a <break time="soon"/></speak>', "break time 'soon'"),
        ('<speak><prosody rate="9000%">x</prosody></speak>', "prosody rate"),
        ('<?xml version="1.0"?><talk>Hi</talk>', "root must be <speak>"),
    ],
)
def test_refused_ssml_says_why(source: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse(source)
    assert raised.value.status == 400 and says in raised.value.message


def test_speak_is_recognised_with_or_without_a_declaration() -> None:
    assert ssml.is_ssml("  <speak>Hi</speak>")
    assert ssml.is_ssml('<?xml version="1.0"?><speak>Hi</speak>')
    assert not ssml.is_ssml("I <speak> freely")
    assert not ssml.is_ssml("<speaker>")
