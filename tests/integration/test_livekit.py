"""LiveKit Agents' real ElevenLabs plugin pointed at the server (`base_url`): `synthesize()`
over HTTP, in raw PCM and in its default MP3, and `stream()` over the multi-context socket
with text pushed a word at a time."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import pytest

from audiocheck import DEFAULT_VOICE, seconds, wav_pcm
from conftest import ServerProcess

elevenlabs = pytest.importorskip("livekit.plugins.elevenlabs")

TEXT = "Hello from LiveKit. A second sentence follows."


def spoken_seconds(server: ServerProcess, text: str, rate: int) -> float:
    body = {"text": text, "sample_rate": rate}
    answer = httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=60)
    return seconds(wav_pcm(answer.content, rate=rate), rate)


def plugin(server: ServerProcess, session: aiohttp.ClientSession, **options: str) -> Any:
    return elevenlabs.TTS(
        base_url=f"{server.base_url}/v1",
        api_key="unused",
        voice_id=DEFAULT_VOICE,
        http_session=session,
        **options,
    )


@pytest.mark.parametrize(("encoding", "rate"), [("pcm_24000", 24000), ("mp3_22050_32", 22050)])
async def test_synthesize_over_http(server: ServerProcess, encoding: str, rate: int) -> None:
    async with aiohttp.ClientSession() as session:
        tts = plugin(server, session, encoding=encoding)
        samples = 0
        async with tts.synthesize(TEXT) as stream:
            async for event in stream:
                assert event.frame.sample_rate == rate
                samples += event.frame.samples_per_channel
        await tts.aclose()
    # LiveKit pads the last frame to its 10 ms frames; MP3 adds its encoder's delay too
    slack = 0.02 if encoding.startswith("pcm") else 0.15
    assert samples / rate == pytest.approx(spoken_seconds(server, TEXT, rate), abs=slack)


async def test_stream_over_the_socket_word_by_word(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as session:
        tts = plugin(server, session, encoding="pcm_16000")
        stream = tts.stream()
        for word in TEXT.split(" "):
            stream.push_text(word + " ")
        stream.flush()
        stream.end_input()
        samples = 0
        segments = set()
        async for event in stream:
            samples += event.frame.samples_per_channel
            segments.add(event.segment_id)
        await stream.aclose()
        await tts.aclose()
    assert len(segments) == 1
    assert samples / 16000 == pytest.approx(spoken_seconds(server, TEXT, 16000), abs=0.02)


async def test_an_interrupted_stream_stops_and_the_next_one_speaks(server: ServerProcess) -> None:
    long_text = " ".join(f"Sentence {n} of a reply that is cut short." for n in range(1, 30))
    before = synthesized_sentences(server)
    async with aiohttp.ClientSession() as session:
        tts = plugin(server, session, encoding="pcm_16000")
        first = tts.stream()
        for word in long_text.split(" "):
            first.push_text(word + " ")
        first.flush()
        async for _ in first:  # the first audio, then the user interrupts
            break
        await first.aclose()
        second = tts.stream()
        second.push_text(TEXT)
        second.flush()
        second.end_input()
        samples = sum([event.frame.samples_per_channel async for event in second])
        await second.aclose()
        await tts.aclose()
    assert samples / 16000 == pytest.approx(spoken_seconds(server, TEXT, 16000), abs=0.02)
    # LiveKit's close_context right after text is an interruption: the server dropped the
    # rest of the reply instead of saying it to nobody (29 sentences, then TEXT's 2)
    assert synthesized_sentences(server) - before < 29 // 2


def synthesized_sentences(server: ServerProcess) -> int:
    health = httpx.get(f"{server.base_url}/health", timeout=30).json()
    count: int = health["totals"]["sentences"]
    return count
