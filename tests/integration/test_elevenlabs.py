"""ElevenLabs' sockets driven by the real client: Pipecat's `ElevenLabsTTSService` pointed at
the server (its `url`) speaks a reply streamed token by token, is interrupted mid-reply and
speaks the next turn; the raw protocol's edges (formats, keep-alives, errors) are checked
with a plain socket client."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from audiocheck import DEFAULT_VOICE, seconds, wav_pcm
from conftest import ServerProcess

frames = pytest.importorskip("pipecat.frames.frames")
eleven = pytest.importorskip("pipecat.services.elevenlabs.tts")
from pipecat_driver import run_pipeline  # noqa: E402  (needs pipecat, checked above)

RATE = 16000
FIRST = "Hello there. This is the first reply. It has three sentences."
LONG = " ".join(f"This is sentence number {n} of a long reply." for n in range(1, 41))
"""Far more than the server says before the interruption comes: most is still queued."""
NEXT = "The next turn speaks."


def tokens(text: str, apart: float = 0.02) -> list[Any]:
    """A language model's reply: a start, a token per word, `apart` seconds apart."""
    turn: list[Any] = [frames.LLMFullResponseStartFrame()]
    for word in text.split(" "):
        turn += [frames.LLMTextFrame(word + " "), apart]
    return turn


def spoken_seconds(server: ServerProcess, text: str) -> float:
    answer = httpx.post(
        f"{server.base_url}/synthesize/binary",
        json={"text": text, "sample_rate": RATE},
        timeout=60,
    )
    return seconds(wav_pcm(answer.content, rate=RATE), RATE)


def synthesized_sentences(server: ServerProcess) -> int:
    health = httpx.get(f"{server.base_url}/health", timeout=30).json()
    count: int = health["totals"]["sentences"]
    return count


def service(server: ServerProcess) -> Any:
    return eleven.ElevenLabsTTSService(
        api_key="unused",
        url=server.ws_url,
        sample_rate=RATE,
        settings=eleven.ElevenLabsTTSService.Settings(voice=DEFAULT_VOICE),
    )


async def test_pipecat_speaks_a_streamed_reply_with_word_timings(server: ServerProcess) -> None:
    turn = [*tokens(FIRST), frames.LLMFullResponseEndFrame(), 4.0]
    heard = await run_pipeline(service(server), turn, RATE, limit=120)
    assert heard.errors == []
    assert len(heard.runs()) == 1  # one context
    assert heard.runs()[0][1] == pytest.approx(spoken_seconds(server, FIRST), abs=0.15)
    # Pipecat timed the words from the character alignment it was sent
    assert " ".join(frame.text for frame in heard.words).split() == FIRST.split()


async def test_pipecat_interrupted_mid_reply_then_speaks_the_next_turn(
    server: ServerProcess,
) -> None:
    turns = [
        *tokens(LONG, apart=0.002),  # written faster than it can be said
        0.5,
        frames.InterruptionFrame(),
        0.2,
        *tokens(NEXT),
        frames.LLMFullResponseEndFrame(),
        4.0,
    ]
    before = synthesized_sentences(server)
    heard = await run_pipeline(service(server), turns, RATE, limit=120)
    assert heard.errors == []
    # The server dropped the reply's queued sentences: it did not say them to nobody.
    assert synthesized_sentences(server) - before < 40 // 2
    runs = heard.runs()
    # The interrupted context, then the next: none of the first after the next's first audio.
    assert len(runs) == 2, runs
    interrupted, following = runs
    assert interrupted[0] != following[0]
    # Mid-reply: some of it came, most not; what came after the interruption is at most
    # the sentence then being spoken.
    whole = 40 * spoken_seconds(server, "This is sentence number 20 of a long reply.")
    assert 0 < interrupted[1] < whole / 2
    longest = spoken_seconds(server, "This is sentence number 40 of a long reply.")
    late = heard.seconds_after(interrupted[0], heard.queued_at(frames.InterruptionFrame))
    assert late <= longest + 0.1
    spoken = [f.text for f in heard.words if f.context_id == following[0]]
    assert following[1] == pytest.approx(spoken_seconds(server, NEXT), abs=0.15), spoken


async def messages_until_final(ws: Any, context: str | None = None) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        seen.append(message)
        if message.get("isFinal") and message.get("contextId") == context:
            return seen


async def test_formats_keepalives_and_errors_in_elevenlabs_shape(server: ServerProcess) -> None:
    url = f"{server.ws_url}/v1/text-to-speech/{DEFAULT_VOICE}/multi-stream-input"
    async with connect(f"{url}?output_format=ulaw_8000&sync_alignment=true") as ws:
        await ws.send(json.dumps({"text": ""}))  # a keep-alive opens nothing
        await ws.send(json.dumps({"text": " ", "context_id": "c", "voice_settings": {"speed": 1}}))
        await ws.send(json.dumps({"text": "One sentence. ", "context_id": "c", "flush": True}))
        await ws.send(json.dumps({"text": "", "context_id": "c", "flush": True}))
        await ws.send(json.dumps({"context_id": "c", "close_context": True}))
        seen = await messages_until_final(ws, "c")
        audio = b"".join(base64.b64decode(m["audio"]) for m in seen if m.get("audio"))
        assert len(audio) == pytest.approx(8000 * spoken_seconds(server, "One sentence."), abs=2)
        aligned = next(m for m in seen if m.get("audio"))
        assert "".join(aligned["alignment"]["chars"]) == "One sentence."
        assert aligned["normalizedAlignment"] == aligned["alignment"]
        # a piece for a closed context, and a flush for one never opened
        await ws.send(json.dumps({"text": "Late. ", "context_id": "c"}))
        late = json.loads(await ws.recv())
        assert late["error"] == "context_closed" and late["contextId"] == "c" and late["message"]
        await ws.send(json.dumps({"context_id": "never", "flush": True}))
        ghost = json.loads(await ws.recv())
        assert ghost["error"] == "unknown_context" and ghost["contextId"] == "never"
        # Pipecat closes turns that sent no text: a close for a context never opened is final
        await ws.send(json.dumps({"context_id": "empty-turn", "close_context": True}))
        assert json.loads(await ws.recv()) == {"isFinal": True, "contextId": "empty-turn"}
        await ws.send(json.dumps({"close_socket": True}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)


async def test_a_format_we_cannot_make_closes_with_1008_and_a_reason(
    server: ServerProcess,
) -> None:
    path = f"/v1/text-to-speech/{DEFAULT_VOICE}/stream-input"
    url = f"{server.ws_url}{path}?output_format=opus_22050_32"
    async with connect(url) as ws:
        error = json.loads(await ws.recv())
        assert error["error"] == "invalid_output_format" and "opus" in error["message"]
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008 and "output_format" in (ws.close_reason or "")


async def test_stream_input_speaks_one_context_and_ends_with_empty_text(
    server: ServerProcess,
) -> None:
    url = f"{server.ws_url}/v1/text-to-speech/{DEFAULT_VOICE}/stream-input?output_format=pcm_16000"
    async with connect(url) as ws:
        await ws.send(json.dumps({"text": " ", "voice_settings": {"stability": 0.5}}))
        await ws.send(json.dumps({"text": "Just one context. "}))
        await ws.send(json.dumps({"text": ""}))
        seen = await messages_until_final(ws)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
    audio = b"".join(base64.b64decode(m["audio"]) for m in seen if m.get("audio"))
    assert all("contextId" not in m for m in seen)
    assert seconds(audio, RATE) == pytest.approx(
        spoken_seconds(server, "Just one context."), abs=0.01
    )


async def test_pipecats_http_service_speaks_through_stream_with_timestamps(
    server: ServerProcess,
) -> None:
    async with aiohttp.ClientSession() as session:
        tts = eleven.ElevenLabsHttpTTSService(
            api_key="unused",
            aiohttp_session=session,
            base_url=server.base_url,
            sample_rate=RATE,
            settings=eleven.ElevenLabsHttpTTSService.Settings(voice=DEFAULT_VOICE),
        )
        turn = [frames.TTSSpeakFrame(FIRST), 3.0]
        heard = await run_pipeline(tts, turn, RATE, limit=120)
    assert heard.errors == []
    assert seconds(heard.pcm(), RATE) == pytest.approx(spoken_seconds(server, FIRST), abs=0.15)
    assert " ".join(frame.text for frame in heard.words).split() == FIRST.split()


def test_http_routes_answer_in_elevenlabs_shapes(server: ServerProcess) -> None:
    base = f"{server.base_url}/v1/text-to-speech/{DEFAULT_VOICE}"
    body = {"text": "Hello there. A second one.", "model_id": "eleven_flash_v2_5"}
    whole = httpx.post(f"{base}?output_format=pcm_24000", json=body, timeout=60)
    assert whole.status_code == 200 and whole.headers["x-sample-rate"] == "24000"
    streamed = httpx.post(f"{base}/stream?output_format=pcm_24000", json=body, timeout=60)
    assert streamed.content == whole.content
    assert seconds(whole.content, 24000) == pytest.approx(
        spoken_seconds(server, body["text"]), abs=0.01
    )
    mp3 = httpx.post(base, json=body, timeout=60)  # ElevenLabs' default: mp3_44100_128
    assert mp3.headers["content-type"] == "audio/mpeg" and mp3.headers["x-sample-rate"] == "44100"

    timed = httpx.post(f"{base}/with-timestamps?output_format=ulaw_8000", json=body, timeout=60)
    answer = timed.json()
    assert "".join(answer["alignment"]["characters"]) == body["text"]
    ends = answer["alignment"]["character_end_times_seconds"]
    assert ends == sorted(ends) and ends[-1] <= seconds(whole.content, 24000) + 0.01
    assert len(base64.b64decode(answer["audio_base64"])) == pytest.approx(8000 * ends[-1], rel=0.2)

    slow = {**body, "voice_settings": {"speed": 0.5, "stability": 0.3}}
    slower = httpx.post(f"{base}?output_format=pcm_24000", json=slow, timeout=60)
    assert seconds(slower.content, 24000) > 1.6 * seconds(whole.content, 24000)

    voices = httpx.get(f"{server.base_url}/v1/voices", timeout=30).json()["voices"]
    assert {"voice_id", "name", "category"} <= set(voices[0])
    assert DEFAULT_VOICE in [voice["voice_id"] for voice in voices]

    refused = httpx.post(f"{base}?output_format=opus_22050_32", json=body, timeout=30)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "output_format"
