"""A voice's loudness, measured once and kept: the cache file is used, refreshed when it
is of another version or unreadable, and an unwritable folder only costs a measure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tts_service.engine import calibration
from tts_service.engine.loudness import integrated_loudness


class Counter:
    def __init__(self, value: float) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def test_the_measure_is_the_median_of_the_sentences() -> None:
    rng = np.random.default_rng(1)
    sounds = [rng.standard_normal(22050) * scale for scale in (0.01, 0.1, 0.3)]
    middle = integrated_loudness(sounds[1], 22050)
    assert calibration.measured(sounds, 22050) == pytest.approx(middle)


def test_silence_alone_is_refused() -> None:
    with pytest.raises(ValueError):
        calibration.measured([np.zeros(22050)], 22050)


def test_a_stored_loudness_is_used_and_a_new_one_is_kept(tmp_path: Path) -> None:
    measure = Counter(-24.5)
    assert calibration.raw_loudness(tmp_path, "voice-1", measure) == -24.5
    assert calibration.raw_loudness(tmp_path, "voice-1", Counter(-30.0)) == -24.5
    assert measure.calls == 1
    assert calibration.raw_loudness(tmp_path, "voice-2", Counter(-20.0)) == -20.0  # its own key
    stored = json.loads((tmp_path / "loudness" / "voice-1.json").read_text())
    assert stored == {"version": calibration.VERSION, "raw_lufs": -24.5}


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"version": -1, "raw_lufs": -1.0}), json.dumps([])]
)
def test_an_odd_file_is_measured_anew(tmp_path: Path, content: str) -> None:
    (tmp_path / "loudness").mkdir()
    (tmp_path / "loudness" / "v.json").write_text(content)
    assert calibration.raw_loudness(tmp_path, "v", Counter(-22.0)) == -22.0
    assert json.loads((tmp_path / "loudness" / "v.json").read_text())["raw_lufs"] == -22.0


def test_an_unwritable_folder_costs_a_measure_only(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder under a file cannot be made, even by root
    folder = blocker / "cache"
    assert calibration.raw_loudness(folder, "v", Counter(-21.0)) == -21.0
    assert calibration.raw_loudness(folder, "v", Counter(-19.0)) == -19.0  # nothing kept


def test_no_folder_measures_every_time() -> None:
    measure = Counter(-23.0)
    calibration.raw_loudness(None, "v", measure)
    calibration.raw_loudness(None, "v", measure)
    assert measure.calls == 2
