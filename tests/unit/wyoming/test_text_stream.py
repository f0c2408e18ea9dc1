"""A streamed request's own state: its text counted and split, its failure told."""

from __future__ import annotations

import asyncio

import pytest

from tts_service.errors import InvalidRequest, TextTooLong
from tts_service.wyoming.text_stream import TextStream


def test_text_comes_out_as_the_sentences_it_completes() -> None:
    stream = TextStream(last_text=0.0)
    assert stream.take("Hello there", 100) == []
    assert stream.take(". How are", 100) == ["Hello there."]
    assert stream.chars == len("Hello there. How are")
    assert stream.splitter.flush() == "How are"


def test_text_past_the_limit_is_refused() -> None:
    stream = TextStream(last_text=0.0)
    stream.take("x" * 10, 10)
    with pytest.raises(TextTooLong):
        stream.take("y", 10)


def test_a_stream_not_yet_opened_is_not_live() -> None:
    stream = TextStream(last_text=0.0)
    assert stream.admitted is None
    assert not stream.live and not stream.waiting_for_text


async def test_a_failure_wakes_its_answer_with_the_first_error() -> None:
    stream = TextStream(last_text=0.0)
    waiting = asyncio.create_task(stream.admission())
    await asyncio.sleep(0)
    assert not waiting.done()
    first = InvalidRequest("first")
    stream.fail(first)
    stream.fail(InvalidRequest("second"))
    with pytest.raises(InvalidRequest) as raised:
        await asyncio.wait_for(waiting, 5)
    assert raised.value is first and stream.error is first
