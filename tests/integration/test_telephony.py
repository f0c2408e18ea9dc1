"""Output rates and telephony formats against the real server: a chosen `sample_rate` on
every route, 8 kHz μ-law read as an Asterisk-style client reads it (20 ms frames) and
decoded by FFmpeg to the same length as the WAV, and rates a codec cannot take refused in
each route's error shape."""

from __future__ import annotations

import io
import json
from typing import Any

import av
import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from audiocheck import seconds, wav_pcm
from conftest import ServerProcess

TEXT = "Hello there. This call is being recorded. Thank you for waiting."
FRAME = 160  # 20 ms of 8 kHz G.711: one byte per sample


def post(server: ServerProcess, body: dict[str, Any], path: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=120)


def decode_g711(data: bytes, law: str) -> np.ndarray[Any, np.dtype[np.int16]]:
    container = av.open(
        io.BytesIO(data), format="mulaw" if law == "ulaw" else "alaw", options={"ar": "8000"}
    )
    with container:
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
    return np.concatenate(frames).astype(np.int16)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_wav_at_a_chosen_rate_has_that_rate_and_the_same_length(
    server: ServerProcess, rate: int
) -> None:
    native = post(server, {"text": TEXT}, "/synthesize/binary")
    chosen = post(server, {"text": TEXT, "sample_rate": rate}, "/synthesize/binary")
    assert chosen.status_code == 200, chosen.text
    assert chosen.headers["x-sample-rate"] == str(rate)
    assert int.from_bytes(chosen.content[24:28], "little") == rate
    # exact sizes in a whole file's header
    assert int.from_bytes(chosen.content[40:44], "little") == len(chosen.content) - 44
    pcm = wav_pcm(chosen.content, rate=rate)
    assert seconds(pcm, rate) == pytest.approx(seconds(wav_pcm(native.content)), abs=0.002)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_streamed_g711_in_20_ms_frames_decodes_to_the_length_of_the_wav(
    server: ServerProcess, law: str
) -> None:
    reference = post(server, {"text": TEXT, "sample_rate": 8000}, "/synthesize/binary")
    expected = len(wav_pcm(reference.content, rate=8000)) // 2
    frames: list[bytes] = []
    body = {"text": TEXT, "format": law, "stream": True}
    with httpx.stream(
        "POST", f"{server.base_url}/synthesize/binary", json=body, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["x-sample-rate"] == "8000"
        kind = "audio/basic" if law == "ulaw" else "audio/x-alaw-basic"
        assert response.headers["content-type"] == kind
        buffer = b""
        for piece in response.iter_bytes():
            buffer += piece
            while len(buffer) >= FRAME:
                frames.append(buffer[:FRAME])
                buffer = buffer[FRAME:]
    raw = b"".join(frames) + buffer
    assert not raw.startswith(b"RIFF")  # raw G.711, no header
    decoded = decode_g711(raw, law)
    assert len(decoded) == len(raw) == expected
    # the same speech as the linear WAV, within G.711's quantisation
    linear = np.frombuffer(wav_pcm(reference.content, rate=8000), dtype="<i2").astype(float)
    error = np.abs(decoded.astype(float) - linear)
    assert np.percentile(error, 99) < 0.07 * max(1.0, float(np.abs(linear).max()))

    in_wav = post(server, {"text": TEXT, "format": f"{law}_wav"}, "/synthesize/binary")
    assert in_wav.content[44:] == raw
    assert int.from_bytes(in_wav.content[40:44], "little") == len(raw)


def test_every_route_takes_a_rate(server: ServerProcess) -> None:
    openai = post(
        server, {"input": TEXT, "response_format": "pcm", "sample_rate": 16000}, "/v1/audio/speech"
    )
    assert openai.status_code == 200 and openai.headers["x-sample-rate"] == "16000"
    native = post(server, {"text": TEXT}, "/synthesize/binary")
    expected = seconds(wav_pcm(native.content))
    assert seconds(openai.content, 16000) == pytest.approx(expected, abs=0.002)

    answer = post(server, {"text": TEXT, "format": "mp3", "sample_rate": 24000}, "/synthesize")
    assert answer.status_code == 200 and answer.json()["sample_rate"] == 24000

    captioned = post(
        server,
        {"input": TEXT, "response_format": "ulaw", "sample_rate": 8000},
        "/v1/audio/captioned_speech",
    )
    assert captioned.status_code == 200 and captioned.json()["sample_rate"] == 8000


def test_a_rate_the_codec_cannot_take_is_refused_in_each_dialect(server: ServerProcess) -> None:
    native = post(server, {"text": TEXT, "format": "opus", "sample_rate": 22050}, "/synthesize")
    assert native.status_code == 422
    error = native.json()["error"]
    assert error["param"] == "sample_rate" and "opus cannot be made at 22050 Hz" in error["message"]
    openai = post(
        server,
        {"input": TEXT, "response_format": "ulaw", "sample_rate": 16000},
        "/v1/audio/speech",
    )
    assert openai.status_code == 400
    assert "ulaw cannot be made at 16000 Hz" in openai.json()["error"]["message"]
    assert post(server, {"text": TEXT}, "/synthesize/binary").status_code == 200


async def test_the_websocket_sends_raw_pcm_at_the_chosen_rate(server: ServerProcess) -> None:
    async with connect(f"{server.ws_url}/synthesize/stream") as ws:
        await ws.send(json.dumps({"text": TEXT, "sample_rate": 8000}))
        start = json.loads(await ws.recv())
        assert start["type"] == "start" and start["sample_rate"] == 8000
        audio = b""
        while isinstance(message := await ws.recv(), bytes):
            audio += message
        assert json.loads(message)["type"] == "end"
    native = post(server, {"text": TEXT, "sample_rate": 8000}, "/synthesize/binary")
    assert audio == wav_pcm(native.content, rate=8000)
