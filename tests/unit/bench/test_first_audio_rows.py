"""The first-audio rows of the latency bench and the chunked decoder's rows: ratios to
Piper, verdicts, what the tables show (constructed figures, no server)."""

from __future__ import annotations

from tts_service.bench.chunk_rows import ChunkRows, render_chunk_rows
from tts_service.bench.chunking import ChunkCost
from tts_service.bench.first_audio import TRANSPORTS, FirstAudio
from tts_service.bench.latency_report import LatencyReport, first_audio_rows, render_latency


def found(sentence: float, text: float) -> FirstAudio:
    return FirstAudio(
        service_s={
            "sentence": {t: [sentence, sentence * 2, sentence / 2] for t in TRANSPORTS},
            "text": {t: [text] for t in TRANSPORTS},
        },
        piper_s={"sentence": [1.0, 1.0, 1.0], "text": [0.4]},
    )


def test_ratios_are_to_pipers_whole_first_sentence() -> None:
    first = found(sentence=0.3, text=0.2)
    assert first.ratio("sentence", "HTTP") == 0.3  # the median of 0.15, 0.3, 0.6
    assert first.ratio("text", "Wyoming") == 0.5
    assert [g.verdict(v) for _, v, g in first.goals()] == ["PASS"] * 6


def test_a_slow_transport_misses_its_row() -> None:
    first = found(sentence=0.3, text=0.2)
    first.service_s["text"]["WebSocket"] = [0.4]  # 1.0x Piper: over 0.7x
    verdicts = {name: g.verdict(v) for name, v, g in first.goals()}
    assert verdicts["first audio, 20 sentences, WebSocket / Piper"] == "MISS"
    assert list(verdicts.values()).count("MISS") == 1


def test_the_latency_report_shows_and_judges_them() -> None:
    report = LatencyReport([], 3.0, first_audio=found(0.3, 0.5))
    rows = first_audio_rows(report.first_audio) if report.first_audio else []
    assert len(rows) == 6 and rows[0][0] == "first audio, a lone 26-word sentence, HTTP"
    assert "first audio, 20 sentences, Wyoming" in render_latency(report)
    goals = {g["name"]: g["verdict"] for g in report.goals()}
    assert goals["first audio, 20 sentences, HTTP / Piper"] == "MISS"  # 1.25x
    assert report.to_dict()["first_audio"]["ratios"]["first audio, 20 sentences, HTTP / Piper"]


def cost(first: float, lsb: float) -> ChunkCost:
    return ChunkCost(
        samples=1000,
        whole_s=1.0,
        first_chunk_s=first,
        whole_cpu_s=1.0,
        chunked_cpu_s=1.4,
        max_lsb=lsb,
    )


def test_the_chunk_rows_show_first_chunk_cpu_and_exactness() -> None:
    rows = ChunkRows(1, long=cost(0.2, 0.5), short=cost(1.1, 0.1))
    text = render_chunk_rows(rows)
    assert "0.20x" in text and "1.40x" in text and "PASS" in text
    assert render_chunk_rows(ChunkRows(1, cost(0.2, 9.0), cost(1.1, 0.1))).count("MISS") == 1


def test_the_front_end_rows_judge_its_share_of_a_request() -> None:
    from tts_service.bench.frontend_rows import FrontendCost, frontend_goals, render_frontend

    cheap = FrontendCost("plain", 200, 0.0003, 0.9997)
    costly = FrontendCost("llm", 300, 0.05, 0.95)
    assert cheap.share == 0.0003
    assert [g.verdict(v) for _, v, g in frontend_goals([cheap, costly])] == ["PASS", "MISS"]
    assert "5.0%" in render_frontend([costly]) or "5%" in render_frontend([costly])
