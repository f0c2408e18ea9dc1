"""Bounded event reading, from a stream fed by hand."""

from __future__ import annotations

import asyncio
import json

import pytest
from wyoming.event import Event

from tts_service.wyoming.reading import read_event

# --------------------------------------------------------------------- reading events


def reader_of(*parts: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for part in parts:
        reader.feed_data(part)
    reader.feed_eof()
    return reader


def header(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


async def test_an_event_with_data_and_payload_is_read_whole() -> None:
    data = json.dumps({"text": "Hi."}).encode()
    reader = reader_of(
        header(type="synthesize", data={"a": 1}, data_length=len(data), payload_length=3),
        data,
        b"pcm",
        header(type="ping"),
    )
    event = await read_event(reader, max_bytes=1024)
    assert event == Event("synthesize", {"a": 1, "text": "Hi."}, b"pcm")
    assert await read_event(reader, max_bytes=1024) == Event("ping", {}, None)
    assert await read_event(reader, max_bytes=1024) is None  # the end of the connection


@pytest.mark.parametrize(
    "raw",
    [
        header(type="synthesize", data_length=2048),  # declares more than the limit
        header(type="audio-chunk", data_length=600, payload_length=600),
        header(type="synthesize", data_length=-1),
        header(type="synthesize", payload_length="10"),
        header(type="synthesize", data_length=10) + b'{"text":',  # cut short
        header(type="synthesize", data_length=2) + b"[]",  # data that is no object
        header(type="synthesize", data=[1]),
        header(data={}),  # no type
        b"[1, 2]\n",
        b"not json\n",
        b"\xff\xfe\n",
        b"x" * 70_000 + b"\n",  # a line past the reader's limit
    ],
)
async def test_malformed_or_oversized_events_end_the_connection(raw: bytes) -> None:
    assert await read_event(reader_of(raw, header(type="ping")), max_bytes=1024) is None
