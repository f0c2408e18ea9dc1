"""SIGTERM on a real server: requests in flight finish with good audio, readiness and new
work answer 503 meanwhile, and the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import httpx

from audiocheck import eventually, seconds, sentences, wav_pcm
from conftest import DETERMINISTIC, ServerProcess


async def test_sigterm_drains_in_flight_work_then_exits_0(
    start_server: type[ServerProcess],
) -> None:
    proc = start_server("--workers", "2", "--drain-seconds", "30", *DETERMINISTIC)
    texts = [sentences(4, start=10 * n) for n in range(3)]
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=60) as client:
        in_flight = [
            asyncio.create_task(client.post("/synthesize/binary", json={"text": text}))
            for text in texts
        ]

        async def all_admitted() -> bool:
            health = (await client.get("/health")).json()
            return bool(health["totals"]["submitted"] == 3)

        await eventually(all_admitted, 20, "three requests admitted")
        proc.signal(signal.SIGTERM)

        async def draining() -> bool:
            return (await client.get("/health")).status_code == 503

        await eventually(draining, 5, "/health turns 503")
        health = await client.get("/health")
        assert health.json()["status"] == "draining" and health.json()["draining"] is True
        refused = await client.post("/synthesize/binary", json={"text": "Too late."})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "shutting_down"
        assert int(refused.headers["retry-after"]) >= 1
        assert not all(task.done() for task in in_flight), "drained before it was tested"

        responses = await asyncio.gather(*in_flight)
    for response in responses:
        assert response.status_code == 200
        assert response.headers["x-sentences"] == "4"
        assert seconds(wav_pcm(response.content)) > 2.5
    try:
        code = proc.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server did not exit after draining:\n{proc.log()}") from None
    assert code == 0, proc.log()
    assert "draining" in proc.log()


async def test_drain_grace_cuts_off_what_does_not_finish(
    start_server: type[ServerProcess],
) -> None:
    proc = start_server("--workers", "1", "--drain-seconds", "0.5", *DETERMINISTIC)
    async with httpx.AsyncClient(base_url=proc.base_url, timeout=60) as client:
        body = {"text": sentences(60), "stream": True}
        async with client.stream("POST", "/synthesize/binary", json=body) as response:
            assert response.status_code == 200
            audio = response.aiter_bytes()  # kept: dropping it would hang up
            received = len(await anext(audio))
            proc.signal(signal.SIGTERM)
            try:
                async for piece in audio:
                    received += len(piece)
            except httpx.HTTPError:
                pass  # the server may cut the chunked body short: that is the point
    # The 60 sentences are ~90 s of audio; half a second of grace makes a few of them.
    assert 0 < received < 25 * 22050 * 2
    assert proc.proc.wait(timeout=20) == 0
    assert "unfinished request(s) were stopped" in proc.log()
