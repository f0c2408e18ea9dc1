"""On an idle server a request's first sentence runs alone on an all-cores session (faster
first audio); the rest runs on the 1-thread workers. The bytes prove which ran where."""

from __future__ import annotations

from typing import Any

import httpx
from piper import SynthesisConfig

from audiocheck import _piper_voice, health, wait_for, wav_pcm
from conftest import DETERMINISTIC, ServerProcess
from tts_service.config import available_cores

TEXT = "The first sentence runs alone. The second one shares. So does the third."


def default_voice(server: ServerProcess) -> dict[str, Any]:
    listed = httpx.get(f"{server.base_url}/voices", timeout=10).json()
    voice: dict[str, Any] = next(v for v in listed["voices"] if v["name"] == listed["default"])
    return voice


def piper_sentences(threads: int) -> list[bytes]:
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return [c.audio_int16_bytes for c in _piper_voice(threads).synthesize(TEXT, quiet)]


def test_lone_request_first_sentence_on_all_cores(start_server: type[ServerProcess]) -> None:
    server = start_server(
        "--workers", "2", "--threads-per-worker", "1", *DETERMINISTIC,
        env={"TTS_SOLO_FIRST_SENTENCE": "true"},
    )  # fmt: skip
    before = health(server.base_url)
    assert before["solo_first_sentence"] is True
    # The all-cores session is added in the background, once the server is quiet.
    wait_for(lambda: default_voice(server)["sessions"] == 2, 60, "the all-cores session")
    response = httpx.post(f"{server.base_url}/synthesize/binary", json={"text": TEXT}, timeout=60)
    assert response.status_code == 200
    pcm = wav_pcm(response.content)

    all_cores, one_thread = piper_sentences(available_cores()), piper_sentences(1)
    assert len(all_cores) == 3
    assert pcm == all_cores[0] + one_thread[1] + one_thread[2]
    assert health(server.base_url)["solo_sentences"] == before["solo_sentences"] + 1


def test_solo_is_off_when_disabled(server: ServerProcess) -> None:
    assert health(server.base_url)["solo_first_sentence"] is False
    assert default_voice(server)["sessions"] == 1  # and no second session takes memory
