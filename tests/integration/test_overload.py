"""Overload on a real server with one worker and a queue of two: a burst of twelve gets
exactly three admissions (one running + two queued) and nine 503s with Retry-After, and
the three carry complete, identical audio (noise 0)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiocheck import seconds, sentences, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

BURST = 12
ADMITTED = 1 + 2  # one worker + two queue places
# Long enough that the first admitted request is far from done when the last one arrives:
# with three admitted, the first ends only after about ten sentences of work.
TEXT = sentences(4)


@pytest.fixture(scope="module")
def narrow(logs_dir: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(logs_dir, "--workers", "1", "--max-queued-requests", "2", *DETERMINISTIC)
    yield proc
    proc.stop()


async def test_a_burst_gets_exactly_the_right_mix_of_200_and_503(narrow: ServerProcess) -> None:
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(base_url=narrow.base_url, limits=limits, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post("/synthesize/binary", json={"text": TEXT}) for _ in range(BURST))
        )
        after = await client.post("/synthesize/binary", json={"text": "Calm again."})

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * ADMITTED + [503] * (BURST - ADMITTED)

    for refused in (r for r in responses if r.status_code == 503):
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "overloaded" and "busy" in error["message"]

    audio = [wav_pcm(r.content) for r in responses if r.status_code == 200]
    assert seconds(audio[0]) > 4 * 1.0  # four sentences, a second or more each
    assert all(pcm == audio[0] for pcm in audio), "same text, noise 0: same samples"
    assert after.status_code == 200  # the refusals left nothing behind
