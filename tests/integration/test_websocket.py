"""The WebSocket route against the real server: audio starts long before the text is done,
the frames are exactly the file /synthesize/binary gives, cancel and hang-up stop the work,
bad requests get an error message and the socket lives on, `format` is honoured."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import av
import httpx
from websockets.asyncio.client import ClientConnection, connect

from audiocheck import RATE, eventually, health, seconds, sentences, wav_pcm
from conftest import ServerProcess

URL = "/synthesize/stream"


@asynccontextmanager
async def socket(server: ServerProcess) -> AsyncIterator[ClientConnection]:
    async with connect(server.ws_url + URL, proxy=None, max_size=None) as ws:
        yield ws


async def next_json(ws: ClientConnection) -> dict[str, Any]:
    """The next JSON message, skipping any audio frames before it."""
    while isinstance(message := await ws.recv(), bytes):
        pass
    body: dict[str, Any] = json.loads(message)
    return body


async def test_first_audio_long_before_the_end_and_frames_equal_the_file(
    server: ServerProcess,
) -> None:
    text = sentences(10)
    frames: list[bytes] = []
    async with socket(server) as ws:
        sent = time.monotonic()
        await ws.send(json.dumps({"text": text}))
        start = json.loads(await ws.recv())
        assert start["type"] == "start" and start["sentences"] == 10
        assert start["sample_rate"] == RATE and start["sample_width"] == 2
        while isinstance(message := await ws.recv(), bytes):
            if not frames:
                first_at = time.monotonic() - sent
            frames.append(message)
        end_at = time.monotonic() - sent
        end = json.loads(message)

    assert end["type"] == "end" and end["sentences"] == 10
    assert len(frames) == 10  # one frame per sentence
    pcm = b"".join(frames)
    assert end["duration"] == round(seconds(pcm), 4)
    assert first_at < end_at / 3, f"first audio after {first_at:.2f} s of {end_at:.2f} s"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        binary = await client.post("/synthesize/binary", json={"text": text})
    assert binary.status_code == 200
    assert pcm == wav_pcm(binary.content)


async def test_cancel_stops_the_work_and_the_socket_goes_on(server: ServerProcess) -> None:
    before = health(server.base_url)["totals"]
    async with socket(server) as ws:
        await ws.send(json.dumps({"text": sentences(40)}))
        assert json.loads(await ws.recv())["type"] == "start"
        assert isinstance(await ws.recv(), bytes)
        await ws.send(json.dumps({"cancel": True}))
        assert (await next_json(ws))["type"] == "cancelled"

        stats = health(server.base_url)
        assert stats["totals"]["cancelled"] == before["cancelled"] + 1
        made = stats["totals"]["sentences"] - before["sentences"]
        assert made < 25, f"{made} of 40 sentences made after a cancel"

        # The same socket serves the next request.
        await ws.send(json.dumps({"text": "Still here."}))
        assert json.loads(await ws.recv())["type"] == "start"
        audio = await ws.recv()
        assert isinstance(audio, bytes) and seconds(audio) > 0.3
        assert (await next_json(ws))["type"] == "end"
    assert health(server.base_url)["queued_sentences"] == 0


async def test_hanging_up_mid_stream_stops_the_work(server: ServerProcess) -> None:
    before = health(server.base_url)["totals"]
    async with socket(server) as ws:
        await ws.send(json.dumps({"text": sentences(40)}))
        assert json.loads(await ws.recv())["type"] == "start"
        assert isinstance(await ws.recv(), bytes)
    hung_up = time.monotonic()

    async def cleaned_up() -> bool:
        stats = health(server.base_url)
        return bool(
            stats["totals"]["cancelled"] == before["cancelled"] + 1
            and stats["queued_sentences"] == 0
        )

    await eventually(cleaned_up, 10, "work of a closed socket was cancelled")
    assert time.monotonic() - hung_up < 5
    made = health(server.base_url)["totals"]["sentences"] - before["sentences"]
    assert made < 25, f"{made} of 40 sentences made for a client that left"


async def test_bad_requests_get_an_error_message_and_the_socket_lives_on(
    server: ServerProcess,
) -> None:
    cases: list[tuple[str, int, str]] = [
        ("{not json", 400, "malformed_json"),
        (json.dumps({"text": ""}), 422, "validation_error"),
        (json.dumps({"text": 5}), 422, "validation_error"),
        (json.dumps({"text": "Hi.", "voice": "nope"}), 404, "voice_not_found"),
        (json.dumps({"text": "Hi.", "voice": "../x"}), 400, "invalid_request"),
        (json.dumps({"text": "Hi.", "voice": "tiny-multi", "speaker": 7}), 400, "invalid_speaker"),
    ]
    async with socket(server) as ws:
        for raw, status, code in cases:
            await ws.send(raw)
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error", raw
            assert (reply["status"], reply["error"]["code"]) == (status, code), raw
            assert reply["error"]["message"]
        await ws.send(json.dumps({"cancel": True}))  # nothing to cancel: ignored
        await ws.send(json.dumps({"text": "Fine.", "voice": "tiny-single"}))
        start = json.loads(await ws.recv())
        assert start["type"] == "start" and start["sample_rate"] == 16000
        assert isinstance(await ws.recv(), bytes)
        assert (await next_json(ws))["type"] == "end"


def decoded_seconds(data: bytes) -> float:
    """Duration of an encoded file, by decoding every frame."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


async def test_an_explicit_format_sends_that_format_in_frames(server: ServerProcess) -> None:
    text = sentences(3)
    async with socket(server) as ws:
        await ws.send(json.dumps({"text": text}))
        raw_start = json.loads(await ws.recv())
        raw = b""
        while isinstance(message := await ws.recv(), bytes):
            raw += message
        assert "format" not in raw_start and json.loads(message)["type"] == "end"

        await ws.send(json.dumps({"text": text, "format": "mp3"}))
        start = json.loads(await ws.recv())
        frames: list[bytes] = []
        while isinstance(message := await ws.recv(), bytes):
            frames.append(message)
        end = json.loads(message)

    assert start["type"] == "start" and start["format"] == "mp3"
    assert start["sample_rate"] == RATE and start["sentences"] == 3
    assert end["type"] == "end" and end["format"] == "mp3"
    mp3 = b"".join(frames)
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF, mp3[:4]
    assert abs(decoded_seconds(mp3) - seconds(raw)) < 0.15


async def test_stream_is_no_websocket_field_and_the_socket_lives_on(server: ServerProcess) -> None:
    async with socket(server) as ws:
        await ws.send(json.dumps({"text": "Hi.", "stream": True}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["status"] == 422
        assert reply["error"]["code"] == "validation_error"
        assert "stream" in reply["error"]["message"]

        await ws.send(json.dumps({"text": "Fine.", "format": "wav"}))
        start = json.loads(await ws.recv())
        assert start["type"] == "start" and start["format"] == "wav"
        wav = b""
        while isinstance(message := await ws.recv(), bytes):
            wav += message
        assert json.loads(message)["type"] == "end"
    assert seconds(wav_pcm(wav, RATE)) > 0.2
