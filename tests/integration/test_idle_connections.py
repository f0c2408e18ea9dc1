"""Connections that go quiet or stop reading, against a real server with short idle and
stall timeouts: silent Wyoming streams and WebSockets hold no admission slot, keep no one
else waiting, and are told and closed; a Wyoming client that takes no audio is cut off."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import async_write_event
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeVoice

from audiocheck import eventually, health, sentences, wait_for
from conftest import ServerProcess, standard_server

IDLE = 2.0  # seconds: --idle-timeout
STALL = 1.0  # seconds: --stall-timeout
PATIENCE = 60.0  # seconds: how long a test waits for what must happen (a shared, slow CPU)
IDLE_CONNECTIONS = 100  # of each kind


@pytest.fixture(scope="module")
def impatient(logs_dir: Path, tiny_voices: Path) -> Iterator[ServerProcess]:
    proc = standard_server(
        logs_dir,
        tiny_voices,
        *("--idle-timeout", str(IDLE), "--stall-timeout", str(STALL)),
        # the tiny voice speaks faster than the cap's estimate allows
        *("--max-audio-seconds", "3600"),
    )
    yield proc
    proc.stop()


def wyoming_client(server: ServerProcess) -> AsyncTcpClient:
    assert server.wyoming_port is not None
    return AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=PATIENCE)


async def wyoming_until_closed(client: AsyncTcpClient, types: list[str] | None = None) -> list[str]:
    """Every event until the server ends the connection ("EOF"); errors as "error:CODE"."""
    types = [] if types is None else types
    while True:
        event = await asyncio.wait_for(client.read_event(), PATIENCE)
        if event is None:
            types.append("EOF")
            return types
        is_error = Error.is_type(event.type)
        types.append(f"error:{Error.from_event(event).code}" if is_error else event.type)


async def socket_until_closed(ws: ClientConnection) -> list[Any]:
    """Every message until the server closes the socket, then its close code."""
    messages: list[Any] = []
    try:
        while True:
            message = await asyncio.wait_for(ws.recv(), PATIENCE)
            messages.append(message if isinstance(message, bytes) else json.loads(message))
    except ConnectionClosed:
        return [*messages, ws.close_code]


def admitted_requests(server: ServerProcess) -> int:
    stats = health(server.base_url)
    return int(stats["queued_requests"]) + int(stats["active_requests"])


async def test_idle_streams_and_sockets_hold_no_slot_and_are_closed(
    impatient: ServerProcess,
) -> None:
    clients = [wyoming_client(impatient) for _ in range(IDLE_CONNECTIONS)]
    await asyncio.gather(*(client.connect() for client in clients))
    sockets: list[ClientConnection] = []
    try:
        await asyncio.gather(*(client.write_event(SynthesizeStart().event()) for client in clients))
        sockets = await asyncio.gather(
            *(
                connect(impatient.ws_url + "/synthesize/stream", proxy=None)
                for _ in range(IDLE_CONNECTIONS)
            )
        )
        # Read from the start, so a connection closed early shows as a finished reader.
        wyoming_readers = [asyncio.create_task(wyoming_until_closed(c)) for c in clients]
        socket_readers = [asyncio.create_task(socket_until_closed(ws)) for ws in sockets]
        readers = [*wyoming_readers, *socket_readers]

        assert admitted_requests(impatient) == 0
        async with httpx.AsyncClient(timeout=PATIENCE) as http:
            response = await http.post(
                f"{impatient.base_url}/synthesize/binary",
                json={"text": "Still served.", "voice": "tiny-single"},
            )
        assert response.status_code == 200, response.text
        assert not any(reader.done() for reader in readers), "closed before the request ended"

        wyoming_ends = await asyncio.gather(*wyoming_readers)
        socket_ends = await asyncio.gather(*socket_readers)
    finally:
        await asyncio.gather(*(client.disconnect() for client in clients))
        await asyncio.gather(*(ws.close() for ws in sockets))

    for types in wyoming_ends:
        assert types == ["error:idle_timeout", "synthesize-stopped", "EOF"], types
    for messages in socket_ends:
        assert len(messages) == 2, messages
        error, close_code = messages
        assert error["type"] == "error" and error["status"] == 408, error
        assert error["error"]["code"] == "idle_timeout" and error["error"]["message"]
        assert close_code == 1000
    assert admitted_requests(impatient) == 0


async def test_a_silent_connection_is_closed_after_its_last_answer(
    impatient: ServerProcess,
) -> None:
    client = wyoming_client(impatient)
    await client.connect()
    try:
        await client.write_event(
            Synthesize(text="Hi.", voice=SynthesizeVoice("tiny-single")).event()
        )
        types = await wyoming_until_closed(client)
    finally:
        await client.disconnect()
    # Answered in full; then, with nothing more asked, closed without a word.
    assert types[0] == "audio-start" and types[-2:] == ["audio-stop", "EOF"], types
    assert "wyoming connection idle" in impatient.log()


async def test_a_stream_whose_text_stops_is_told_and_its_job_cancelled(
    impatient: ServerProcess,
) -> None:
    """Pings do not keep a stream open: only text does."""
    before = health(impatient.base_url)["totals"]
    client = wyoming_client(impatient)
    await client.connect()
    try:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice("tiny-single")).event())
        await client.write_event(SynthesizeChunk(text="Spoken at once. But then").event())
        types: list[str] = []
        reader = asyncio.create_task(wyoming_until_closed(client, types))
        while not any(kind.startswith("error") for kind in types) and not reader.done():
            await client.write_event(Ping().event())
            await asyncio.wait([reader], timeout=0.3 * IDLE)  # not in step with the timeout
        await reader
    finally:
        with contextlib.suppress(ConnectionError):
            await client.disconnect()

    assert types[0] == "audio-start" and "audio-chunk" in types, types
    assert types[-3:] == ["error:idle_timeout", "synthesize-stopped", "EOF"], types
    assert "audio-stop" not in types and "pong" not in types

    async def cancelled() -> bool:
        stats = health(impatient.base_url)
        return bool(stats["totals"]["cancelled"] > before["cancelled"]) and not (
            stats["queued_requests"] or stats["active_requests"]
        )

    await eventually(cancelled, PATIENCE, "the idle stream's job was cancelled")


async def test_an_idle_socket_after_a_request_is_told_and_closed(
    impatient: ServerProcess,
) -> None:
    async with connect(impatient.ws_url + "/synthesize/stream", proxy=None) as ws:
        await ws.send(json.dumps({"text": "Hi.", "voice": "tiny-single"}))
        messages = await socket_until_closed(ws)
    kinds = [m["type"] if isinstance(m, dict) else type(m).__name__ for m in messages[:-1]]
    assert kinds == ["start", "bytes", "end", "error"], kinds
    assert messages[-2]["error"]["code"] == "idle_timeout" and messages[-1] == 1000


async def test_a_wyoming_client_that_stops_reading_is_cut_off(impatient: ServerProcess) -> None:
    """A client with a tiny receive buffer asks for much audio and reads none of it."""
    before = health(impatient.base_url)["totals"]
    count = 600  # ~17 MB of the tiny voice's audio: far more than the socket buffers hold
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", impatient.wyoming_port or 0))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        request = Synthesize(text=sentences(count), voice=SynthesizeVoice("tiny-single"))
        await async_write_event(request.event(), writer)

        def cut_off() -> bool:  # by this connection (cancelled) or by the scheduler (stalled)
            stats = health(impatient.base_url)
            totals = stats["totals"]
            stopped = totals["cancelled"] + totals["stalled"]
            idle = not (stats["queued_requests"] or stats["active_requests"])
            return bool(idle and stopped > before["cancelled"] + before["stalled"])

        await asyncio.to_thread(wait_for, cut_off, PATIENCE, "the stalled client was cut off")
    finally:
        writer.close()
    assert "wyoming client stalled" in impatient.log()
    made = health(impatient.base_url)["totals"]["sentences"] - before["sentences"]
    assert made < count, f"all {count} sentences made for a client that read none"
