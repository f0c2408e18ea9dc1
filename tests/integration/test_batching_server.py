"""A real server with `--batch-size 4`: concurrent requests are run in batches and each
still gets its own, whole, decodable audio, as long as Piper's alone and within the
batch tolerance of it."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from audiocheck import BATCH_TOLERANCE, health, piper_pcm, wav_pcm
from conftest import DETERMINISTIC, ServerProcess

TEXTS = (
    "The cat sat on the mat. A dog ran in the park.",
    "Rain fell on the old roof. We drank hot tea.",
    "My friend reads a good book. The sun is warm.",
    "A small boat sails the sea. Green hills roll on.",
)


def batch_histogram(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    family = next(
        f for f in text_string_to_metric_families(text) if f.name == "tts_batch_sentences"
    )
    return {
        sample.labels.get("le", sample.name): sample.value
        for sample in family.samples
        if sample.name.endswith(("_bucket", "_count"))
    }


async def test_concurrent_requests_in_batches_each_get_their_own_audio(
    start_server: type[ServerProcess],
) -> None:
    server = start_server(
        *("--workers", "1", "--threads-per-worker", "1", "--batch-size", "4"), *DETERMINISTIC
    )
    jobs = [(TEXTS[n % 4], n % 2 == 1) for n in range(12)]

    async def one(client: httpx.AsyncClient, text: str, stream: bool) -> bytes:
        response = await client.post("/synthesize/binary", json={"text": text, "stream": stream})
        assert response.status_code == 200, response.text
        return response.content

    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        bodies = await asyncio.gather(*(one(client, text, stream) for text, stream in jobs))

    for (text, _), body in zip(jobs, bodies, strict=True):
        pcm = wav_pcm(body)
        reference = piper_pcm(text, threads=1)
        assert len(pcm) == len(reference), f"wrong length for {text!r}"
        diff = np.frombuffer(pcm, np.int16).astype(np.int32) - np.frombuffer(reference, np.int16)
        assert int(np.abs(diff).max()) <= BATCH_TOLERANCE, f"audio differs for {text!r}"

    stats = health(server.base_url)
    assert stats["batch_size"] == 4 and stats["batches"] >= 1
    assert stats["totals"]["completed"] >= 12 and stats["totals"]["failed"] == 0
    counts = batch_histogram(server.base_url)
    assert counts["tts_batch_sentences_count"] > counts["1.0"]  # some runs held several
