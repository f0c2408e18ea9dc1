"""Reading Wyoming events from a stream, bounded: the library's reader buffers whatever
length a header claims."""

from __future__ import annotations

import asyncio
import json
import logging

from wyoming.event import Event

log = logging.getLogger(__name__)


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """The next event; None at the end of the connection or for anything malformed.

    Unlike the library's reader, it refuses an event whose declared data and payload
    exceed `max_bytes`, instead of buffering whatever length a header claims."""
    try:
        line = await reader.readline()  # at most the reader's limit (64 KiB) long
        if not line:
            return None
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            return None
        data, data_length = header.get("data") or {}, header.get("data_length") or 0
        payload_length = header.get("payload_length") or 0
        lengths = (data_length, payload_length)
        if not isinstance(data, dict) or not all(isinstance(n, int) and n >= 0 for n in lengths):
            return None
        if data_length + payload_length > max_bytes:
            log.info("wyoming event of %d bytes refused", data_length + payload_length)
            return None
        if data_length:
            more = json.loads(await reader.readexactly(data_length))
            if not isinstance(more, dict):
                return None
            data = {**data, **more}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (ValueError, asyncio.IncompleteReadError, ConnectionError):
        return None  # ValueError: bad JSON or UTF-8, or a line past the reader's limit
    return Event(type=header["type"], data=data, payload=payload)
