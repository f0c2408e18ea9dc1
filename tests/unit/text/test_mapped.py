"""MappedText: rewrites that keep every character's place in the request."""

from __future__ import annotations

import re

from tts_service.text.mapped import MappedText


def test_verbatim_and_replacement_spans() -> None:
    text = MappedText.verbatim("pay $5 now", 10)
    rewritten = text.sub(re.compile(r"\$5"), lambda m: "five dollars")
    assert rewritten.text == "pay five dollars now"
    assert rewritten.span(0, 3) == (10, 13)
    assert rewritten.span(4, 8) == (14, 16) == rewritten.span(9, 16)
    assert rewritten.span(17, 20) == (17, 20)


def test_a_kept_group_keeps_its_own_places_and_none_keeps_the_match() -> None:
    text = MappedText.verbatim("**bold** x")
    kept = text.sub_groups(re.compile(r"\*\*(.+?)\*\*"), 1)
    assert kept.text == "bold x" and kept.span(0, 4) == (2, 6)
    assert text.sub(re.compile("x"), lambda m: None) is text
