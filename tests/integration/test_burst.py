"""Admission by predicted wait on a server of its own (2 workers, default limits): a burst
the server can finish inside the deadline is admitted whole, and with a deliberately tiny
deadline the requests that could not start in time are refused at once, before any
synthesis, while every admitted one meets it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from audiocheck import piper_pcm, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

BURST = 300
TEXT = "Hi. Bye."  # two short sentences


@pytest.fixture(scope="module")
def server(logs_dir: Path) -> Iterator[ServerProcess]:
    """Fresh, so that its speed estimate comes from its warm-up and this burst alone. Its
    deadline is long enough that the burst fits on a machine several times slower than
    usual (the estimate is pessimistic by design): what is tested is that all of what fits
    is admitted, not how fast this machine is today."""
    proc = ServerProcess(
        logs_dir,
        *("--workers", "2", "--threads-per-worker", "1", "--request-timeout", "180"),
        *DETERMINISTIC,
    )
    yield proc
    proc.stop()


async def burst(server: ServerProcess, body: dict[str, object]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=180) as client:
        return await asyncio.gather(
            *(client.post("/synthesize/binary", json=body) for _ in range(BURST))
        )


def totals(client: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = client.get("/health").json()["totals"]
    return counts


async def test_a_burst_the_server_can_finish_in_time_is_admitted_whole(
    server: ServerProcess,
) -> None:
    responses = await burst(server, {"text": TEXT})
    assert Counter(r.status_code for r in responses) == {200: BURST}
    expected = piper_pcm(TEXT, threads=1)
    assert all(wav_pcm(r.content) == expected for r in responses), "complete, exact audio"


async def test_with_a_tiny_deadline_the_refused_never_run_and_the_admitted_meet_it(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        before = totals(client)
        responses = await burst(server, {"text": TEXT, "timeout": 1.0})
        after = totals(client)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses  # no 504: the admitted all started in time
    assert 0 < statuses[200] < BURST and statuses[503] > 0, statuses
    for refused in (r for r in responses if r.status_code == 503):
        assert int(refused.headers["retry-after"]) >= 1
        assert "deadline" in refused.json()["error"]["message"]
    # Refused before any synthesis: the sentence counter moved by the admitted ones only.
    assert after["sentences"] - before["sentences"] == 2 * statuses[200]
    assert after["timed_out"] == before["timed_out"]
    expected = piper_pcm(TEXT, threads=1)
    assert all(wav_pcm(r.content) == expected for r in responses if r.status_code == 200)
