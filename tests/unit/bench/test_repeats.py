"""The repeated-phrase workload: drawn the same way every run, dealt to every client, and
the hit rates a per-sentence or per-request cache would have on it."""

from __future__ import annotations

from tts_service.bench.cache import render_cache
from tts_service.bench.repeats import ALONE, PHRASES, repeat_plan, sentences_of, would_hit


def test_the_plan_is_the_same_every_run_and_covers_every_client() -> None:
    plan = repeat_plan(200, 8)
    assert plan == repeat_plan(200, 8)
    assert len(plan.clients) == 8 and sum(len(texts) for texts in plan.clients) == 200
    assert set(plan.texts) <= set(PHRASES) and len(plan.texts) == 200
    assert len(PHRASES) == 20 and len(set(PHRASES)) == 20
    assert not set(ALONE) & set(PHRASES)  # said alone, first: a miss


def test_shared_sentences_hit_per_sentence_not_per_request() -> None:
    texts = ["Okay. Lights on.", "Okay. Lights off.", "Okay. Lights on.", "Lights off."]
    rates = would_hit(texts)
    # Sentences: 2, 2, 2, 1 = 7; seen before: 0, 1 (Okay.), 2, 1 = 4.
    assert rates["sentence_cache_sentence_hits"] == 4 / 7
    assert rates["sentence_cache_whole_requests"] == 2 / 4  # the third and the fourth
    assert rates["request_cache_hits"] == 1 / 4  # only the third is a repeat as a whole
    assert rates["request_cache_sentence_hits"] == 2 / 7
    assert sentences_of("Press one. For support, press two? Yes!") == [
        "Press one.",
        "For support, press two?",
        "Yes!",
    ]


def test_the_rows_render() -> None:
    report = {
        "requests": 200,
        "clients": 8,
        "phrases": 20,
        "server_sentence_hit_rate": 0.86,
        "cache": {"bytes": 2**20, "entries": 24},
        "sentence_cache_sentence_hits": 0.93,
        "request_cache_sentence_hits": 0.89,
        "request_cache_hits": 0.9,
        "first_median_s": 1.0,
        "repeat_median_s": 0.05,
        "repeat_p95_s": 0.1,
        "no_cache_repeat_median_s": 1.0,
        "repeat_to_first": 0.05,
        "repeat_to_no_cache": 0.05,
        "alone_first_median_s": 0.2,
        "alone_repeat_median_s": 0.004,
        "alone_repeat_to_first": 0.02,
        "wall_s": 10.0,
        "no_cache_wall_s": 50.0,
        "wall_ratio": 0.2,
    }
    text = render_cache(report)
    assert "86%" in text and "0.050x" in text and "24 sentences" in text and "0.020x" in text
