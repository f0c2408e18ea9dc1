"""Clean-up of a language model's Markdown: the marks go, the words stay where they were."""

from __future__ import annotations

import pytest

from tts_service.text.mapped import MappedText
from tts_service.text.markdown import clean


def cleaned(text: str) -> str:
    return " ".join(clean(MappedText.verbatim(text)).text.split())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("**Hello** world", "Hello world"),
        ("*really* and _this_ and __that__ and ~~gone~~", "really and this and that and gone"),
        ("# Title\n## Sub ##\nText", "Title Sub Text"),
        ("- one\n* two\n+ three\n1. four\n2) five", "one two three four five"),
        (
            "See [the docs](https://example.com/docs) or ![a cat](cat.png).",
            "See the docs or a cat.",
        ),
        ("Run `make test` now.", "Run make test now."),
        ("Before\n```python\nprint('x')\n```\nAfter", "Before After"),
        ("| a | b |\n|---|:---:|\n| 1 | 2 |", "a, b 1, 2"),
        ("> quoted\n---\nend", "quoted end"),
        ("Great 😀👍🏽 job ✅ ── done ❤️", "Great job done"),
        ("snake_case and 2*3 and #tag", "snake_case and 2 3 and #tag"),
    ],
)
def test_markdown_and_symbols_are_not_read(text: str, said: str) -> None:
    assert cleaned(text) == said


def test_kept_words_point_at_their_own_characters() -> None:
    text = "**Hello** [world](http://x)"
    result = clean(MappedText.verbatim(text))
    assert result.text == "Hello world"
    assert text[result.starts[0] : result.ends[4]] == "Hello"
    assert text[result.starts[6] : result.ends[10]] == "world"


def test_raw_phoneme_blocks_are_left_alone() -> None:
    assert cleaned("*a* [[ ˈaɪ*_ ]]") == "a [[ ˈaɪ*_ ]]"


def test_plain_text_is_unchanged() -> None:
    text = "Hello, world. It costs $3.50 (about 3 euros) - fine!"
    assert clean(MappedText.verbatim(text)).text == text
