"""A connection's answers: strictly in request order, until one ends the connection."""

from __future__ import annotations

import asyncio

from tts_service.wyoming.replies import Reply, ReplyQueue
from tts_service.wyoming.text_stream import TextStream


def answer(log: list[str], name: str, keep_open: bool = True) -> Reply:
    async def write() -> bool:
        await asyncio.sleep(0)
        log.append(name)
        return keep_open

    return write


async def test_answers_are_written_in_order_until_one_ends_the_connection() -> None:
    replies, written = ReplyQueue(), list[str]()
    for name in ("describe", "synthesize"):
        replies.put(answer(written, name))
    replies.put(answer(written, "error", keep_open=False))
    replies.put(answer(written, "never"))
    assert len(replies) == 4
    await asyncio.wait_for(replies.write_all(), 5)
    assert written == ["describe", "synthesize", "error"]
    assert len(replies) == 1 and not replies.answering


async def test_waiting_answers_are_busy_and_an_empty_queue_is_not() -> None:
    replies = ReplyQueue()
    assert not replies.busy()
    replies.put(answer([], "ping"))
    assert replies.busy()


async def test_a_stream_that_waits_for_text_is_not_busy() -> None:
    """Its answer is under way, but only the client can move it (its voice still unknown
    reads as busy: the service is working)."""
    replies, stream, release = ReplyQueue(), TextStream(last_text=0.0), asyncio.Event()

    async def stream_answer() -> bool:
        await release.wait()
        return True

    replies.put(stream_answer, stream)
    writer = asyncio.create_task(replies.write_all())
    await asyncio.sleep(0)
    assert replies.answering and replies.answering_stream is stream
    assert not stream.waiting_for_text and replies.busy()  # not opened yet
    release.set()
    await asyncio.sleep(0)
    assert not replies.answering and replies.answering_stream is None
    writer.cancel()
