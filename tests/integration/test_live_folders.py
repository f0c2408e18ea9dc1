"""Voice folders watched by a running server: a voice copied in is listed and speaks, a
changed one is loaded afresh, a removed one finishes its request and leaves; per-voice
defaults slow a voice for HTTP and Wyoming (Home Assistant) alike, and a request's own
values win; Wyoming `describe` names languages and says what is installed."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeVoice

from audiocheck import piper_pcm, seconds, sentences, wait_for, wav_pcm
from conftest import DETERMINISTIC, ServerProcess
from tts_service.engine.voice import SynthesisOptions, Voice
from voicegen import write_tiny_voice

JOE = "en_US-joe-medium"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("watched")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Voices to copy in: the same tiny voice at three sample rates."""
    folder = tmp_path_factory.mktemp("sources")
    write_tiny_voice(folder, "tiny-late", num_speakers=1)
    write_tiny_voice(folder / "22k", "tiny-late", num_speakers=1, sample_rate=22050)
    # Many bytes per second of audio: a long answer that stays within the audio cap.
    write_tiny_voice(folder / "96k", "tiny-late", num_speakers=1, sample_rate=96000)
    return folder


@pytest.fixture(scope="module")
def watching(logs_dir: Path, folder: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        logs_dir,
        *("--workers", "2", "--voices-dir", str(folder), "--rescan-interval", "0.2"),
        *DETERMINISTIC,
        wyoming=True,
    )
    yield proc
    proc.stop()


def copy_in(source: Path, folder: Path, name: str, as_name: str | None = None) -> None:
    """As a careful user does: the model first, then the config that completes the voice."""
    target = as_name or name
    for suffix in (".onnx", ".onnx.json"):
        shutil.copyfile(source / f"{name}{suffix}", folder / f".{target}{suffix}.tmp")
        (folder / f".{target}{suffix}.tmp").rename(folder / f"{target}{suffix}")


def listed(server: ServerProcess) -> dict[str, dict[str, object]]:
    voices = httpx.get(f"{server.base_url}/voices", timeout=30).json()["voices"]
    return {voice["name"]: voice for voice in voices}


def speak(server: ServerProcess, **body: object) -> httpx.Response:
    return httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=120)


def tiny_pcm(folder: Path, name: str, text: str, length_scale: float | None = None) -> bytes:
    voice = Voice.load(name, folder / f"{name}.onnx", folder / f"{name}.onnx.json", threads=1)
    # The test servers' normalisation: Piper's peak (conftest.ServerProcess).
    options = SynthesisOptions(length_scale=length_scale, normalization="peak")
    return b"".join(voice.synthesize(ids, options).pcm for ids in voice.phonemize(text))


def test_a_voice_copied_in_is_listed_and_speaks_without_a_restart(
    watching: ServerProcess, folder: Path, sources: Path
) -> None:
    assert "tiny-late" not in listed(watching)
    copy_in(sources, folder, "tiny-late")
    wait_for(lambda: "tiny-late" in listed(watching), 30, "the new voice is listed")
    answer = speak(watching, text="Just arrived.", voice="tiny-late")
    assert answer.status_code == 200, answer.text
    assert wav_pcm(answer.content, rate=16000) == tiny_pcm(sources, "tiny-late", "Just arrived.")


def test_a_changed_voice_is_loaded_afresh(
    watching: ServerProcess, folder: Path, sources: Path
) -> None:
    copy_in(sources, folder, "tiny-late", as_name="tiny-shift")
    wait_for(lambda: "tiny-shift" in listed(watching), 30, "the voice is listed")
    assert speak(watching, text="Before.", voice="tiny-shift").headers["x-sample-rate"] == "16000"
    copy_in(sources / "22k", folder, "tiny-late", as_name="tiny-shift")

    def new_rate() -> bool:
        return listed(watching)["tiny-shift"]["sample_rate"] == 22050

    wait_for(new_rate, 30, "the changed config is read")
    answer = speak(watching, text="After.", voice="tiny-shift")
    assert answer.status_code == 200 and answer.headers["x-sample-rate"] == "22050"
    assert wav_pcm(answer.content, rate=22050) == tiny_pcm(sources / "22k", "tiny-late", "After.")


def test_a_removed_voice_finishes_its_request_then_is_gone(
    watching: ServerProcess, folder: Path, sources: Path
) -> None:
    copy_in(sources / "96k", folder, "tiny-late", as_name="tiny-going")
    wait_for(lambda: "tiny-going" in listed(watching), 30, "the voice is listed")
    # ~10 MB of audio to a reader with a small receive buffer (no autotuning): more than
    # the server's send buffer (at most 4 MB) and the sentences it may run ahead (8), so
    # the request is still being spoken when its voice goes away.
    text = sentences(40)
    body = {"text": text, "voice": "tiny-going", "length_scale": 20.0, "stream": True}
    small = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)]
    transport = httpx.HTTPTransport(socket_options=small)
    with (
        httpx.Client(transport=transport, timeout=120) as client,
        client.stream("POST", f"{watching.base_url}/synthesize/binary", json=body) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_bytes()
        received = next(chunks)
        for suffix in (".onnx", ".onnx.json"):
            (folder / f"tiny-going{suffix}").unlink()
        wait_for(lambda: "tiny-going" not in listed(watching), 30, "the voice leaves the list")
        health = httpx.get(f"{watching.base_url}/health", timeout=30).json()
        assert health["active_requests"] >= 1  # still speaking with the removed voice
        received += b"".join(chunks)
    expected = tiny_pcm(sources / "96k", "tiny-late", text, length_scale=20.0)
    assert wav_pcm(received, rate=96000) == expected  # all of it, from the removed voice
    gone = speak(watching, text="Hello?", voice="tiny-going")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "voice_not_found"


def test_per_voice_defaults_slow_a_voice_and_a_request_overrides_them(
    watching: ServerProcess, folder: Path
) -> None:
    text = "Home Assistant cannot send a speed."
    plain = wav_pcm(speak(watching, text=text).content)
    assert plain == piper_pcm(text)
    (folder / f"{JOE}.defaults.json").write_text(json.dumps({"length_scale": 1.5}))
    try:
        wait_for(
            lambda: listed(watching)[JOE].get("defaults") == {"length_scale": 1.5},
            30,
            "the defaults file is read",
        )
        slowed = wav_pcm(speak(watching, text=text).content)
        assert seconds(slowed) > 1.3 * seconds(plain)
        own = wav_pcm(speak(watching, text=text, length_scale=1.0).content)
        assert own == plain  # the request's own value wins
        assert wyoming_pcm(watching, text) == slowed  # what Home Assistant gets
    finally:
        (folder / f"{JOE}.defaults.json").unlink()


def wyoming_pcm(server: ServerProcess, text: str) -> bytes:
    async def run() -> bytes:
        assert server.wyoming_port is not None
        pcm = b""
        async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(JOE)).event())
            while True:
                event = await asyncio.wait_for(client.read_event(), 60)
                assert event is not None
                if AudioChunk.is_type(event.type):
                    pcm += AudioChunk.from_event(event).audio
                if AudioStop.is_type(event.type):
                    return pcm

    return asyncio.run(run())


def test_wyoming_describe_names_languages_and_says_what_is_installed(
    watching: ServerProcess, folder: Path, sources: Path
) -> None:
    copy_in(sources, folder, "tiny-late", as_name="tiny-described")
    wait_for(lambda: "tiny-described" in listed(watching), 30, "the voice is listed")
    info = asyncio.run(watching.wyoming_info())
    voices = {voice.name: voice for voice in info.tts[0].voices}
    assert voices[JOE].installed and voices[JOE].languages == ["en_US"]
    assert voices[JOE].description == "Joe, English (United States), medium"
    custom = voices["tiny-described"]  # not published: its dataset, quality, language name
    assert custom.description == "tiny-late (x_low), English (United States)"
    assert all(voice.installed for voice in voices.values())  # no --download-missing
