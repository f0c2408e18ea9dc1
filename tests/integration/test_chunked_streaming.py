"""A streamed answer's long first sentence in pieces, on a real server at its defaults:
each transport carries the pieces (same sentence index, words once, on the first), their
audio joins to the sentence's full length, and the timings equal the whole answer's."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect as ws_connect
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from conftest import ServerProcess, default_normalization_server

LONG = (
    "The quick brown fox, who had been running through the forest all morning, finally "
    "stopped to rest beside a cold and quiet mountain stream."
)
TEXT = f"{LONG} Then it slept."


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = default_normalization_server(tmp_path_factory.mktemp("chunked-logs"))
    yield proc
    proc.stop()


def lines(server: ServerProcess, stream: bool) -> list[dict[str, Any]]:
    body = {"text": TEXT, "format": "pcm", "stream": stream, "timestamps": True}
    response = httpx.post(f"{server.base_url}/synthesize", json=body, timeout=120)
    assert response.status_code == 200, response.text
    if not stream:
        return [response.json()]
    return [json.loads(line) for line in response.text.splitlines()]


def words(found: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    return [(w["text"], w["start"], w["end"]) for w in found]


def test_json_lines_carry_the_first_sentence_in_pieces(server: ServerProcess) -> None:
    streamed = lines(server, stream=True)
    audio = [line for line in streamed if line["type"] == "audio" and "sentence" in line]
    indexes = [line["sentence"] for line in audio]
    assert indexes.count(0) >= 3 and indexes[-1] == 1  # pieces of 0, then 1 whole
    assert indexes == sorted(indexes)
    with_words = [line for line in audio if "words" in line]
    assert [line["sentence"] for line in with_words] == [0, 1]  # once per sentence
    assert with_words[0] is audio[0]  # on the first piece, before the rest of its audio
    everything = [line for line in streamed if line["type"] == "audio"]  # the tail too
    pcm = b"".join(base64.b64decode(line["audio"]) for line in everything)
    (whole,) = lines(server, stream=False)
    assert len(pcm) == len(base64.b64decode(whole["audio"]))
    streamed_words = [w for line in with_words for w in words(line["words"])]
    assert streamed_words == words(whole["words"])  # timings come from the front end
    assert streamed[-1]["type"] == "end" and streamed[-1]["sentences"] == 2


def test_binary_stream_is_the_json_lines_audio(server: ServerProcess) -> None:
    body = {"text": TEXT, "format": "pcm", "stream": True}
    binary = httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=120)
    assert binary.status_code == 200
    audio = [line for line in lines(server, stream=True) if line["type"] == "audio"]
    assert binary.content == b"".join(base64.b64decode(line["audio"]) for line in audio)


async def socket_answer(server: ServerProcess) -> tuple[list[bytes], list[dict[str, Any]]]:
    """The WebSocket's frames (raw PCM at the voice's rate) and JSON events for TEXT."""
    frames: list[bytes] = []
    events: list[dict[str, Any]] = []
    async with ws_connect(server.ws_url + "/synthesize/stream", proxy=None, max_size=None) as ws:
        await ws.send(json.dumps({"text": TEXT, "timestamps": True}))
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                frames.append(message)
                continue
            event = json.loads(message)
            events.append(event)
            if event["type"] in ("end", "error"):
                return frames, events
    raise AssertionError("unreachable")


async def test_websocket_frames_and_one_words_event_per_sentence(server: ServerProcess) -> None:
    frames, events = await socket_answer(server)
    assert events[-1]["type"] == "end", events[-1]
    assert len(frames) >= 4  # the first sentence in pieces, the second whole
    assert [e["sentence"] for e in events if e["type"] == "words"] == [0, 1]
    (whole,) = lines(server, stream=False)
    assert events[-1]["duration"] == whole["duration"]


async def test_wyoming_streams_the_pieces_in_chunks(server: ServerProcess) -> None:
    assert server.wyoming_port is not None
    pcm = b""
    async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
        await client.write_event(Synthesize(text=TEXT).event())
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                pcm += AudioChunk.from_event(event).audio
            if event.type == "audio-stop":
                break
    frames, _ = await socket_answer(server)
    assert pcm == b"".join(frames)


def test_the_pieces_are_speech_not_noise(server: ServerProcess) -> None:
    """Joined pieces against the whole answer (own gain): the same speech, sample for
    sample up to the gain (their correlation)."""
    audio = [line for line in lines(server, stream=True) if line["type"] == "audio"]
    pieces = np.frombuffer(b"".join(base64.b64decode(a["audio"]) for a in audio), np.int16)
    (whole,) = lines(server, stream=False)
    reference = np.frombuffer(base64.b64decode(whole["audio"]), np.int16)
    correlation = np.corrcoef(pieces.astype(float), reference.astype(float))[0, 1]
    assert correlation > 0.999
