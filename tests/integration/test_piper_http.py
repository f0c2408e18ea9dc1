"""Piper's own HTTP server's request at the root: `POST /` answers the WAV that
`/synthesize/binary` answers, with Piper's field names, and Pipecat's real
`PiperHttpTTSService`, pointed at the root as its docs say, speaks through it."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import pytest

from audiocheck import RATE, seconds, wav_pcm
from conftest import ServerProcess

pipecat_frames = pytest.importorskip("pipecat.frames.frames")
piper_tts = pytest.importorskip("pipecat.services.piper.tts")
from pipecat_driver import run_pipeline  # noqa: E402  (needs pipecat, checked above)

TEXT = "Hello from the root. Piper clients work unchanged."


def post(server: ServerProcess, body: Any, path: str = "/") -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=120)


def test_post_root_answers_the_wav_of_the_native_route(server: ServerProcess) -> None:
    piper = post(server, {"text": TEXT, "voice": None})
    assert piper.status_code == 200, piper.text
    assert piper.headers["content-type"] == "audio/wav"
    assert piper.content[:4] == b"RIFF" and piper.content[36:40] == b"data"  # 44-byte header
    native = post(server, {"text": TEXT}, "/synthesize/binary")
    assert piper.content == native.content


def test_pipers_field_names_and_habits(server: ServerProcess) -> None:
    slow = post(server, {"text": TEXT, "length_scale": 1.5, "unknown": 1, "speaker_id": None})
    normal = post(server, {"text": TEXT})
    assert slow.status_code == 200, slow.text
    # unknown fields are ignored, as Piper does
    assert seconds(wav_pcm(slow.content)) > 1.3 * seconds(wav_pcm(normal.content))
    speaker = post(server, {"text": "One.", "voice": "tiny-multi", "speaker_id": 1})
    assert speaker.status_code == 200, speaker.text
    other = post(server, {"text": "One.", "voice": "tiny-multi", "speaker_id": 0})
    assert speaker.content != other.content


def test_bad_piper_requests_get_the_native_error_shape(server: ServerProcess) -> None:
    missing = post(server, {"voice": None})
    assert missing.status_code == 422 and missing.json()["error"]["param"] == "text"
    unknown = post(server, {"text": TEXT, "voice": "no-such-voice"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "voice_not_found"
    page = httpx.get(f"{server.base_url}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("pipeline_rate", [RATE, 16000])
async def test_pipecats_piper_service_pointed_at_the_root_speaks(
    server: ServerProcess, pipeline_rate: int
) -> None:
    async with aiohttp.ClientSession() as session:
        tts = piper_tts.PiperHttpTTSService(base_url=server.base_url, aiohttp_session=session)
        speak = pipecat_frames.TTSSpeakFrame(TEXT)
        heard = await run_pipeline(tts, [speak, 2.0], sample_rate=pipeline_rate)
    assert heard.errors == []
    assert heard.audio and all(frame.sample_rate == pipeline_rate for frame in heard.audio)
    expected = seconds(wav_pcm(post(server, {"text": TEXT}).content))
    assert seconds(heard.pcm(), pipeline_rate) == pytest.approx(expected, abs=0.05)
    if pipeline_rate == RATE:  # no resampling on Pipecat's side: the very samples
        assert heard.pcm() == wav_pcm(post(server, {"text": TEXT}).content)
