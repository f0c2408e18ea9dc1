"""The one framing rule of streamed answers: a failure before the first piece is raised,
after it the stream ends with an error record."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import pytest

from tts_service.api.framing import error_line, error_message, framed, json_line, sse_event
from tts_service.errors import ServiceError, SynthesisFailed


def record(error: ServiceError) -> bytes:
    return b"error:" + error.code.encode()


async def pieces(*parts: bytes, fail: bool = True) -> AsyncGenerator[bytes, None]:
    for part in parts:
        yield part
    if fail:
        raise SynthesisFailed("boom")


async def test_a_failure_before_the_first_piece_is_raised() -> None:
    with pytest.raises(SynthesisFailed):
        [piece async for piece in framed(pieces(), record)]


async def test_a_failure_after_it_is_the_last_record() -> None:
    got = [piece async for piece in framed(pieces(b"a", b"b"), record)]
    assert got == [b"a", b"b", b"error:synthesis_failed"]


async def test_a_body_that_ends_well_passes_unchanged() -> None:
    assert [piece async for piece in framed(pieces(b"a", fail=False), record)] == [b"a"]


async def test_other_exceptions_pass_through() -> None:
    async def broken() -> AsyncGenerator[bytes, None]:
        yield b"a"
        raise RuntimeError("not a service error")

    with pytest.raises(RuntimeError):
        [piece async for piece in framed(broken(), record)]


async def test_closing_early_closes_the_body() -> None:
    closed = False

    async def endless() -> AsyncGenerator[bytes, None]:
        nonlocal closed
        try:
            while True:
                yield b"more"
        finally:
            closed = True

    stream = framed(endless(), record)
    assert await anext(stream) == b"more"
    await stream.aclose()
    assert closed


def test_records_keep_their_wire_format() -> None:
    error = SynthesisFailed("boom")
    assert error_message(error) == {"type": "error", "status": 500, "error": error.to_dict()}
    assert error_line(error) == json_line(error_message(error))
    assert json_line({"a": "é"}) == '{"a":"é"}\n'.encode()
    assert sse_event({"a": "é"}) == b'data: {"a":"\\u00e9"}\n\n'
    assert json.loads(error_line(error)) == error_message(error)
