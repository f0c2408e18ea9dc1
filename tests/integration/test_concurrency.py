"""Many requests at once against the real server: nothing is corrupted (byte-identical to
serial Piper at noise 0), short requests are not stuck behind long ones, and a client that
goes away stops its work."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from audiocheck import (
    eventually,
    piper_pcm,
    seconds,
    sentences,
    wav_pcm,
)
from conftest import ServerProcess

TEXTS = (
    "Hello there. How are you?",
    "Concurrency is safe.",
    "Pack my box!",
    "One more time, please.",
)


async def get_health(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/health")
    body: dict[str, Any] = response.json()
    return body


async def test_sixteen_concurrent_requests_equal_serial_piper(server: ServerProcess) -> None:
    """Four texts, four times each, half of them streamed: every response is a valid WAV
    whose samples equal Piper's own serial output (same onnxruntime settings: 1 thread)."""
    jobs = [(TEXTS[n % 4], n % 2 == 1) for n in range(16)]

    async def one(client: httpx.AsyncClient, text: str, stream: bool) -> bytes:
        body = {"text": text, "stream": stream}
        response = await client.post("/synthesize/binary", json=body, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        return response.content

    async with httpx.AsyncClient(base_url=server.base_url) as client:
        bodies = await asyncio.gather(*(one(client, text, stream) for text, stream in jobs))

    for (text, _), body in zip(jobs, bodies, strict=True):
        pcm = wav_pcm(body)  # RIFF header, mono 16-bit, 22050 Hz, some audio
        assert seconds(pcm) > 0.5
        assert pcm == piper_pcm(text, threads=1), f"audio differs from Piper for {text!r}"


async def test_a_one_sentence_request_overtakes_four_long_ones(server: ServerProcess) -> None:
    finished: dict[str, float] = {}

    async def long_request(client: httpx.AsyncClient, n: int) -> None:
        body = {"text": sentences(20, start=100 * n), "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as response:
            assert response.status_code == 200
            async for _ in response.aiter_bytes():
                pass
        finished[f"long-{n}"] = time.monotonic()

    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        longs = [asyncio.create_task(long_request(client, n)) for n in range(4)]
        try:

            async def all_running() -> bool:
                stats = await get_health(client)
                return stats["active_requests"] >= 4 and stats["queued_sentences"] > 20

            await eventually(all_running, 20, "four long requests running")
            sent = time.monotonic()
            response = await client.post("/synthesize/binary", json={"text": "Me first."})
            finished["short"] = time.monotonic()
            assert response.status_code == 200
            assert seconds(wav_pcm(response.content)) > 0.3
            assert not any(task.done() for task in longs), "a long request finished first"
            stats = await get_health(client)
            assert stats["active_requests"] == 4 and stats["queued_sentences"] > 0
            assert finished["short"] - sent < 10
        finally:
            for task in longs:  # hang up on the long ones: that also stops their work
                task.cancel()
            await asyncio.gather(*longs, return_exceptions=True)
        assert finished.keys() == {"short"}
        await eventually(
            lambda: _idle(client), 10, "the long requests' work stopped after hanging up"
        )


async def _idle(client: httpx.AsyncClient) -> bool:
    stats = await get_health(client)
    return bool(stats["queued_sentences"] == 0 and stats["active_requests"] == 0)


async def test_hanging_up_a_streamed_response_stops_its_work(server: ServerProcess) -> None:
    text = sentences(60)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        before = (await get_health(client))["totals"]
        body = {"text": text, "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as response:
            assert response.status_code == 200
            assert response.headers["x-sentences"] == "60"
            first = await anext(response.aiter_bytes())
            assert first[:4] == b"RIFF"
        hung_up = time.monotonic()

        async def cleaned_up() -> bool:
            stats = await get_health(client)
            return bool(
                stats["totals"]["cancelled"] == before["cancelled"] + 1
                and stats["queued_sentences"] == 0
            )

        await eventually(cleaned_up, 10, "the abandoned request was cancelled")
        took = time.monotonic() - hung_up
        after = (await get_health(client))["totals"]
    # Far fewer sentences than the text has were made: the rest were dropped.
    made = after["sentences"] - before["sentences"]
    assert made < 30, f"{made} of 60 sentences synthesized for a client that left"
    assert after["completed"] == before["completed"]
    assert took < 5


async def test_giving_up_on_a_whole_file_request_stops_its_work(server: ServerProcess) -> None:
    """Without streaming the server notices the hang-up while it is still synthesizing."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        before = (await get_health(client))["totals"]

        async def started() -> bool:
            return bool((await get_health(client))["totals"]["sentences"] > before["sentences"])

        request = asyncio.create_task(
            client.post("/synthesize/binary", json={"text": sentences(60)})
        )
        await eventually(started, 10, "synthesis started")
        request.cancel()  # the client gives up and closes the connection
        await asyncio.gather(request, return_exceptions=True)

        async def cleaned_up() -> bool:
            stats = await get_health(client)
            return bool(
                stats["totals"]["cancelled"] == before["cancelled"] + 1
                and stats["queued_sentences"] == 0
            )

        await eventually(cleaned_up, 5, "the abandoned request was cancelled")
        after = (await get_health(client))["totals"]
    assert after["sentences"] - before["sentences"] < 30
    assert after["completed"] == before["completed"]
