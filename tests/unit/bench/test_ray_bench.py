"""`bench --ray`'s arithmetic: ratios against each phase's own direct measurement, the two
fleets compared through the direct server both phases share, and the goals' verdicts."""

from __future__ import annotations

from tts_service.bench.ray import DIRECT, Figures, RayBenchReport, render
from tts_service.bench.rounds import Sample


def figures(single: float, audio_per_s: float, short: float) -> Figures:
    return Figures(
        single_s=[single, single * 2, single],  # median: `single`
        rounds=[Sample(wall_s=10.0, audio_s=10.0 * audio_per_s, foreign_cpu=None)],
        short_s=[short] * 20,
    )


def test_ratios_use_each_phases_own_direct_server() -> None:
    report = RayBenchReport(
        phases={
            "serve 1x2": {DIRECT: figures(1.0, 20.0, 0.5), "serve 1x2": figures(1.05, 19.0, 0.6)},
            "serve 2x1": {DIRECT: figures(2.0, 10.0, 1.0), "serve 2x1": figures(2.4, 11.0, 3.0)},
        },
        meta={},
    )
    ratios = report.ratios()
    assert ratios["serve 1x2"]["single"] == 1.05
    assert ratios["serve 1x2"]["throughput"] == 0.95
    assert ratios["serve 2x1"]["throughput"] == 1.1
    assert ratios["serve 2x1"]["vs_one_replica"] == 1.1 / 0.95
    text = render(report)
    assert "1.05x PASS" in text and "1.20x MISS" in text  # one request: <= 1.10x
    assert "3.00x MISS" in text  # short p95: <= 2x the direct server's
    assert report.to_dict()["phases"]["serve 2x1"][DIRECT]["throughput"] == 10.0
