"""The loudness rows of the bench: spread, verdicts, the JSON's figures."""

from __future__ import annotations

from tts_service.bench.loudness import LoudnessSpread, Mode, render_loudness


def spread(loud: tuple[float, ...], cost: float) -> LoudnessSpread:
    return LoudnessSpread(
        peak=Mode((-21.1, -15.2, -18.0), -0.0),
        loudness=Mode(loud, -1.5),
        target=-18.0,
        level_ratio=cost,
    )


def test_an_even_cheap_result_passes() -> None:
    result = spread((-18.5, -18.0, -18.2), 0.02)
    text = render_loudness(result)
    assert "5.9" in text and "0.5" in text  # both spreads
    assert "MISS" not in text
    assert all(verdict == "PASS" for *_, verdict in [(g.verdict(v),) for _, v, g in result.goals()])
    assert result.to_dict()["peak_spread_lu"] == 21.1 - 15.2


def test_an_uneven_or_costly_result_misses() -> None:
    assert render_loudness(spread((-21.0, -17.0), 0.02)).count("MISS") == 1
    assert render_loudness(spread((-18.0, -18.1), 0.2)).count("MISS") == 1
