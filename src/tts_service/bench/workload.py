"""The main bench's workload: what every target is asked to do, fixed before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tts_service.bench.texts import make_sentences, make_text


@dataclass(frozen=True)
class Workload:
    """Everything every target is asked to do, fixed before anything runs."""

    throughput_rounds: list[list[list[str]]]
    """Round -> client -> the texts that client sends one after another."""
    long_text: str
    """Looped by the long clients of the mixed load."""
    stream_text: str
    """20 sentences, streamed to measure time to first audio."""
    encode_sentences: int
    """How many sentences of `stream_text` the encoders are timed on."""
    short_texts: list[str]
    long_clients: int
    mixed_seconds: float
    min_short_samples: int
    first_audio_rounds: int


def _round_requests(round_no: int, clients: int, sizes: Sequence[int]) -> list[list[str]]:
    """Each client: a one-sentence request, then one of `sizes` sentences (varies by client)."""
    requests = []
    for client in range(clients):
        seed = 100_000 * (round_no + 1) + 100 * client
        counts = [1, *sizes[(client + round_no) % len(sizes) :][:1]]
        requests.append([make_text(n, seed + i) for i, n in enumerate(counts)])
    return requests


def build_workload(quick: bool) -> Workload:
    """Full: 3 rounds of 16 clients x 2 requests, 20-sentence long texts. Quick: one round
    of 16 clients x 1 request (1 or 2 sentences), 4-sentence long texts."""
    clients = 16
    if quick:
        rounds = [[texts[1:] for texts in _round_requests(0, clients, (1, 2))]]
    else:
        rounds = [_round_requests(r, clients, (1, 2)) for r in range(3)]
    return Workload(
        throughput_rounds=rounds,
        long_text=make_text(4 if quick else 20, seed=7),
        stream_text=make_text(20, seed=8),
        encode_sentences=5 if quick else 10,
        short_texts=make_sentences(40, seed=9),
        long_clients=4,
        mixed_seconds=4.0 if quick else 10.0,
        min_short_samples=1 if quick else 2,
        first_audio_rounds=2 if quick else 3,
    )
