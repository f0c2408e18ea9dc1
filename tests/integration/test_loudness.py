"""Even loudness on every transport of a server left at its default (loudness), measured
by pyloudnorm; Piper's own peak normalisation one request field away, byte for byte."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Iterator

import httpx
import numpy as np
import openai
import pyloudnorm
import pytest
from websockets.asyncio.client import connect as ws_connect
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from audiocheck import piper_pcm
from conftest import ServerProcess, default_normalization_server

RATE = 22050
TARGET = -18.0
SHORT, LONG = (
    "Warning!",
    (
        "The weather today will be mostly sunny with a high of twenty three degrees and light "
        "winds from the west."
    ),
)


@pytest.fixture(scope="module")
def loud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = default_normalization_server(tmp_path_factory.mktemp("loud-logs"))
    yield proc
    proc.stop()


def lufs(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64) / 32768.0
    return float(pyloudnorm.Meter(RATE).integrated_loudness(samples))


def wav_pcm(data: bytes) -> bytes:
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getframerate() == RATE
        return wav.readframes(wav.getnframes())


def native(server: ServerProcess, text: str, **fields: object) -> bytes:
    response = httpx.post(
        f"{server.base_url}/synthesize/binary", json={"text": text, **fields}, timeout=120
    )
    assert response.status_code == 200, response.text
    return wav_pcm(response.content)


def test_native_http_speaks_short_and_long_sentences_at_the_target(
    loud_server: ServerProcess,
) -> None:
    for text in (SHORT, LONG):
        pcm = native(loud_server, text)
        assert lufs(pcm) == pytest.approx(TARGET, abs=1.0), text
        assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() < 32767


def test_peak_normalization_per_request_is_pipers_output(loud_server: ServerProcess) -> None:
    assert native(loud_server, LONG, normalization="peak") == piper_pcm(LONG)


def test_a_bad_normalization_is_a_422_naming_it(loud_server: ServerProcess) -> None:
    response = httpx.post(
        f"{loud_server.base_url}/synthesize/binary",
        json={"text": SHORT, "normalization": "max"},
        timeout=30,
    )
    assert response.status_code == 422
    assert "normalization" in response.text


def test_openai_sdk_speech_is_at_the_target(loud_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{loud_server.base_url}/v1", api_key="unused")
    wav = client.audio.speech.create(
        model="tts-1", voice="alloy", input=LONG, response_format="wav"
    ).content
    # Its answer streams: the long first sentence is decoded in chunks with the voice's
    # gain (within 2 LU of the target; a sentence decoded whole gets its own: 1 LU).
    assert lufs(wav_pcm(wav)) == pytest.approx(TARGET, abs=2.0)
    peak = client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=LONG,
        response_format="wav",
        extra_body={"normalization": "peak"},
    ).content
    assert wav_pcm(peak) == piper_pcm(LONG)


async def test_websocket_frames_are_at_the_target(loud_server: ServerProcess) -> None:
    frames: list[bytes] = []
    async with ws_connect(
        loud_server.ws_url + "/synthesize/stream", proxy=None, max_size=None
    ) as ws:
        await ws.send(json.dumps({"text": f"{SHORT} {LONG}"}))
        assert json.loads(await ws.recv())["type"] == "start"
        while isinstance(message := await ws.recv(), bytes):
            frames.append(message)
    assert len(frames) == 2  # a short first sentence: nothing is decoded in pieces
    for frame in frames:
        assert lufs(frame) == pytest.approx(TARGET, abs=1.0)


async def test_wyoming_audio_is_at_the_target(loud_server: ServerProcess) -> None:
    assert loud_server.wyoming_port is not None
    async with AsyncTcpClient("127.0.0.1", loud_server.wyoming_port) as client:
        await client.write_event(Synthesize(text=LONG).event())
        pcm = b""
        while (event := await client.read_event()) is not None:
            if AudioChunk.is_type(event.type):
                pcm += AudioChunk.from_event(event).audio
            if event.type == "audio-stop":
                break
    # A long first sentence of a streamed answer is decoded in chunks with the voice's
    # gain (test_chunked_streaming.py): near the target, and as native streaming makes it.
    assert lufs(pcm) == pytest.approx(TARGET, abs=2.0)
    assert pcm == native(loud_server, LONG, stream=True)
