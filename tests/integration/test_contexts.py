"""`WS /synthesize/contexts` against the real server: several contexts on one socket, text
in pieces, each sentence spoken once its end arrives (or on flush), the very audio a
request for that text gets; cancelling one context drops it at once while the others go
on; every answer names its context; bad messages get the native error message."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from audiocheck import wav_pcm
from conftest import ServerProcess, standard_server

IDLE = 2.0
PATIENCE = 60.0


async def send(ws: ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), PATIENCE))
    return message


async def until(ws: ClientConnection, kind: str, context: str) -> list[dict[str, Any]]:
    """Messages up to and including the first `kind` for `context`."""
    seen: list[dict[str, Any]] = []
    while True:
        message = await receive(ws)
        seen.append(message)
        if message.get("type") == kind and message.get("context") == context:
            return seen


def audio_of(messages: list[dict[str, Any]], context: str) -> bytes:
    return b"".join(
        base64.b64decode(m["audio"])
        for m in messages
        if m.get("type") == "audio" and m["context"] == context
    )


def pcm_for(server: ServerProcess, text: str) -> bytes:
    answer = httpx.post(f"{server.base_url}/synthesize/binary", json={"text": text}, timeout=60)
    return wav_pcm(answer.content)


async def test_a_context_speaks_each_sentence_once_its_end_arrives(server: ServerProcess) -> None:
    async with connect(f"{server.ws_url}/synthesize/contexts") as ws:
        await send(ws, context="a", text="The first sent")
        await send(ws, context="a", text="ence is here. The second")
        first = await receive(ws)  # spoken before the second sentence has ended
        assert first["type"] == "audio" and first["context"] == "a"
        assert first["text"] == "The first sentence is here."
        assert [word["text"] for word in first["words"]][:2] == ["The", "first"]
        chars = first["chars"]
        assert "".join(chars["chars"]) == first["text"]
        assert len(chars["starts"]) == len(chars["durations"]) == len(first["text"])
        assert chars["starts"] == sorted(chars["starts"])
        await send(ws, context="a", text=" one has no end", flush=True)
        second = await receive(ws)
        assert second["text"] == "The second one has no end"
        assert second["start"] == pytest.approx(first["start"] + first["duration"], abs=1e-3)
        assert second["words"][0]["start"] >= second["start"]
        await send(ws, context="a", close=True)
        rest = await until(ws, "done", "a")
    assert base64.b64decode(first["audio"]) == pcm_for(server, "The first sentence is here.")
    spoken = base64.b64decode(second["audio"]) + audio_of(rest, "a")
    assert spoken == pcm_for(server, "The second one has no end")


async def test_cancelling_one_context_drops_it_and_the_others_go_on(server: ServerProcess) -> None:
    long_text = " ".join(f"Sentence number {n} of the long context." for n in range(1, 30))
    async with connect(f"{server.ws_url}/synthesize/contexts") as ws:
        await send(ws, context="long", text=long_text + " ")
        await send(ws, context="short", text="A short one. ", sample_rate=8000, format="ulaw")
        first = await receive(ws)
        await send(ws, context="long", cancel=True)
        await send(ws, context="short", close=True)
        seen = [first, *await until(ws, "done", "short")]
        # After the cancel is answered, nothing more of that context comes.
        while not any(m.get("type") == "cancelled" and m["context"] == "long" for m in seen):
            seen.append(await receive(ws))
        cancelled_at = next(i for i, m in enumerate(seen) if m.get("type") == "cancelled")
        assert all(m.get("context") != "long" for m in seen[cancelled_at + 1 :])
        long_audio = audio_of(seen, "long")
        assert len(long_audio) < len(pcm_for(server, long_text)) // 4
        # the socket and its other contexts go on
        await send(ws, context="later", text="Still here.", close=True)
        later = await until(ws, "done", "later")
    assert len(audio_of(seen, "short")) == pytest.approx(8000 * 1.0, rel=0.6)  # μ-law bytes
    assert audio_of(later, "later") == pcm_for(server, "Still here.")


async def test_bad_messages_get_errors_naming_the_context(server: ServerProcess) -> None:
    async with connect(f"{server.ws_url}/synthesize/contexts") as ws:
        await send(ws, context="ghost", cancel=True)
        unknown = await receive(ws)
        assert unknown["error"]["code"] == "unknown_context" and unknown["context"] == "ghost"
        await send(ws, context="a", text="Done now.", close=True)
        await until(ws, "done", "a")
        await send(ws, context="a", text="Late piece.")
        late = await receive(ws)
        assert late["error"]["code"] == "context_closed" and late["context"] == "a"
        await send(ws, context="b", text="x", format="opus", sample_rate=22050)
        bad_rate = await receive(ws)
        assert bad_rate["error"]["param"] == "sample_rate" and bad_rate["context"] == "b"
        await send(ws, context="c", text="Hi.", voice="no-such-voice")
        assert (await receive(ws))["error"]["code"] == "voice_not_found"
        await send(ws, context="d", text="Open. ")
        await receive(ws)
        await send(ws, context="d", text="more", voice="en_US-joe-medium")
        assert (await receive(ws))["error"]["param"] == "voice"
        await ws.send("{not json")
        assert (await receive(ws))["error"]["code"] == "malformed_json"


async def test_ten_megabytes_without_a_sentence_end_is_refused(server: ServerProcess) -> None:
    piece = "a" * 500_000  # one message stays under max_body_bytes
    async with connect(f"{server.ws_url}/synthesize/contexts", max_size=None) as ws:
        for _ in range(20):
            await send(ws, context="flood", text=piece)
        await send(ws, context="flood", text="a")
        error = await receive(ws)
        assert error["error"]["code"] == "text_too_long" and error["context"] == "flood"
        await send(ws, context="fine", text="Still serving.", close=True)
        assert audio_of(await until(ws, "done", "fine"), "fine")


@pytest.fixture(scope="module")
def impatient(logs_dir: Path, tiny_voices: Path) -> Iterator[ServerProcess]:
    proc = standard_server(logs_dir, tiny_voices, "--idle-timeout", str(IDLE))
    yield proc
    proc.stop()


async def test_idle_contexts_and_sockets_are_told_and_ended(impatient: ServerProcess) -> None:
    async with connect(f"{impatient.ws_url}/synthesize/contexts") as ws:
        await send(ws, context="quiet", text="No end yet")
        expired = await receive(ws)
        assert expired["error"]["code"] == "idle_timeout" and expired["context"] == "quiet"
        closing = await receive(ws)
        assert closing["error"]["code"] == "idle_timeout" and "context" not in closing
        await asyncio.wait_for(ws.wait_closed(), PATIENCE)
    assert ws.close_code == 1000
