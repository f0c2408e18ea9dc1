"""One broken voice file in a voice folder breaks that voice alone: a real server lists every
voice (the broken ones with their error), the others speak over HTTP, OpenAI and Wyoming,
and a request for a broken voice is a clear 500 `voice_unavailable`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from audiocheck import DEFAULT_VOICE, RATE, seconds, wav_pcm
from conftest import ServerProcess
from voicegen import tiny_voice_config, write_tiny_voice

TINY_RATE = 16000
# name -> what its error must say
BROKEN = {
    "broken": "not valid JSON",
    "no-rate": "lacks the required key 'sample_rate'",
}
CORRUPT_MODEL = "corrupt"  # a config that reads, a model that will not load


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("broken-voices")
    write_tiny_voice(folder, "good", num_speakers=1)
    (folder / "broken.onnx").write_bytes(b"never read")
    (folder / "broken.onnx.json").write_text("{not json")
    write_tiny_voice(folder, "no-rate", num_speakers=1)
    config = tiny_voice_config("no-rate", num_speakers=1)
    del config["audio"]["sample_rate"]
    (folder / "no-rate.onnx.json").write_text(json.dumps(config))
    write_tiny_voice(folder, CORRUPT_MODEL, num_speakers=1)
    (folder / f"{CORRUPT_MODEL}.onnx").write_bytes(b"not an onnx model")
    return folder


@pytest.fixture(scope="module")
def server(logs_dir: Path, voices: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(logs_dir, "--workers", "1", "--voices-dir", str(voices), wyoming=True)
    yield proc
    proc.stop()


def speak(server: ServerProcess, voice: str) -> httpx.Response:
    body = {"text": "One voice down, the rest still speak.", "voice": voice}
    return httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=60)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 500, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    return error


def test_voices_lists_every_voice_and_why_the_broken_ones_cannot_speak(
    server: ServerProcess, voices: Path
) -> None:
    response = httpx.get(f"{server.base_url}/voices", timeout=10)
    assert response.status_code == 200
    listed = {voice["name"]: voice for voice in response.json()["voices"]}
    assert set(listed) == {DEFAULT_VOICE, "good", CORRUPT_MODEL, *BROKEN}
    for name, reason in BROKEN.items():
        assert listed[name]["available"] is False and listed[name]["loaded"] is False
        assert f"'{name}'" in listed[name]["error"] and reason in listed[name]["error"]
        assert str(voices) not in listed[name]["error"]  # no server paths to clients
    for name in (DEFAULT_VOICE, "good"):
        assert listed[name]["available"] is True and "error" not in listed[name]
    assert listed["good"]["sample_rate"] == TINY_RATE and listed["good"]["language"] == "en_US"


def test_the_healthy_voices_still_speak(server: ServerProcess) -> None:
    good, default = speak(server, "good"), speak(server, DEFAULT_VOICE)
    assert good.status_code == 200 and default.status_code == 200
    assert seconds(wav_pcm(good.content, TINY_RATE), TINY_RATE) > 0.1
    assert seconds(wav_pcm(default.content, RATE), RATE) > 0.1


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_config_is_a_clear_500(server: ServerProcess, name: str) -> None:
    error = error_of(speak(server, name))
    assert error["code"] == "voice_unavailable"
    assert f"'{name}'" in error["message"] and BROKEN[name] in error["message"]


def test_a_model_that_will_not_load_is_a_clear_500_every_time(server: ServerProcess) -> None:
    for _ in range(2):  # not remembered: the second request tries the load again
        error = error_of(speak(server, CORRUPT_MODEL))
        assert error["code"] == "voice_unavailable"
        assert f"'{CORRUPT_MODEL}' could not be loaded" in error["message"]
    assert speak(server, "good").status_code == 200


def test_openai_lists_the_healthy_voices_and_refuses_a_broken_one(
    server: ServerProcess,
) -> None:
    response = httpx.get(f"{server.base_url}/v1/audio/voices", timeout=10)
    assert response.status_code == 200
    installed = {v["id"] for v in response.json()["voices"] if v["alias_of"] is None}
    assert installed == {DEFAULT_VOICE, "good", CORRUPT_MODEL}
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.InternalServerError) as refused:
            sdk.audio.speech.create(model="tts-1", voice="broken", input="Hello.")
        audio = sdk.audio.speech.create(
            model="tts-1", voice="good", input="Hello.", response_format="wav"
        )
    assert refused.value.status_code == 500
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "voice_unavailable"
    assert body["type"] == "server_error" and "'broken'" in body["message"]
    assert seconds(wav_pcm(audio.content, TINY_RATE), TINY_RATE) > 0.1


async def test_wyoming_describe_lists_the_healthy_voices(server: ServerProcess) -> None:
    (program,) = (await server.wyoming_info()).tts
    assert {voice.name for voice in program.voices} == {DEFAULT_VOICE, "good", CORRUPT_MODEL}
