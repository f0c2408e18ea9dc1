"""Whatever the text, the front-end's map stays inside the request and in order, and it
never raises on plain text (only SSML can be refused)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tts_service.errors import InvalidRequest
from tts_service.text.frontend import read
from tts_service.text.options import TextOptions

PIECES = st.sampled_from(
    ["Hello", " ", "\n", "\n\n", "**", "*", "_", "#", "- ", "1. ", "[a](b)", "`", "```", "|",
     "$3.50", "8:00", "2026-07-04", "555-0100", "5 km", "Dr.", ",", ".", "😀", "[pause 1s]",
     "[[ həlˈoʊ ]]", "[[", "]]", "<", ">", "&", "é", "20 EUR", "https://a.b/c"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=30).map("".join), st.booleans(), st.booleans())
def test_every_character_maps_inside_the_request_in_order(
    text: str, clean: bool, normalize: bool
) -> None:
    options = TextOptions(ssml=False, clean=clean, normalize=normalize, comma_pause=0.1)
    last = 0
    for segment in read(text, options, "en_US"):
        mapped = segment.text
        assert len(mapped.starts) == len(mapped.ends) == len(mapped.text)
        for start, end in zip(mapped.starts, mapped.ends, strict=True):
            assert 0 <= start < end <= len(text)
            assert start >= last  # never behind what came before
            last = start
        assert segment.pause is None or 0 <= segment.pause <= 10


SSML_PIECES = st.sampled_from(
    ["Hi", " ", "<s>", "</s>", "<p>", "</p>", '<break time="1s"/>', "<break/>", "&amp;",
     '<mark name="m"/>', '<prosody rate="slow">', "</prosody>", '<sub alias="x">', "</sub>",
     '<say-as interpret-as="cardinal">', "</say-as>", "12", "<b>", "</b>", "<", "&", "é",
     '<phoneme ph="a">', "</phoneme>"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(SSML_PIECES, max_size=30).map(lambda p: "<speak>" + "".join(p) + "</speak>"))
def test_any_ssml_is_read_or_refused_with_a_400(text: str) -> None:
    try:
        segments = read(text, TextOptions(), "en_US")
    except InvalidRequest as error:
        assert error.status == 400 and "SSML" in error.message
        return
    for segment in segments:
        assert all(
            0 <= a < b <= len(text)
            for a, b in zip(segment.text.starts, segment.text.ends, strict=True)
        )
        assert all(0 <= mark.at <= len(text) for mark in segment.marks)
