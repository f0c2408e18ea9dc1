"""Settings: defaults, `TTS_*` environment variables, validation, CLI flags over env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from tts_service import cores
from tts_service.cli import build_parser, settings_from
from tts_service.config import OPENAI_VOICE_NAMES, Settings, available_cores, cgroup_cpu_limit
from tts_service.engine.chunked import ChunkPlan
from tts_service.voices.library import chunk_plan


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)


def test_defaults() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 3002
    assert settings.default_voice == "en_US-joe-medium"
    assert settings.policy == "fair"
    assert settings.threads_per_worker == 1
    assert settings.worker_count == available_cores()
    assert settings.noise_scale is None and settings.voices_dir == []


def test_workers_default_divides_the_cores_by_threads() -> None:
    settings = Settings(threads_per_worker=64)
    assert settings.worker_count == 1
    assert Settings(workers=3).worker_count == 3


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TTS_PORT", "8123")
    monkeypatch.setenv("TTS_POLICY", "round_robin")
    monkeypatch.setenv("TTS_VOICES_DIR", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("TTS_PRELOAD_VOICES", "x, y")
    monkeypatch.setenv("TTS_API_KEY", "k1,k2")
    monkeypatch.setenv("TTS_OPENAI_VOICE_MAP", '{"alloy": "tiny-a"}')
    monkeypatch.setenv("TTS_NOISE_SCALE", "0")
    settings = Settings()
    assert settings.port == 8123 and settings.policy == "round_robin"
    assert settings.voices_dir == [tmp_path / "a", tmp_path / "b"]
    assert settings.preload_voices == ["x", "y"]
    assert settings.api_key == ["k1", "k2"]
    assert settings.noise_scale == 0.0
    assert settings.openai_voice("alloy") == "tiny-a"


@pytest.mark.parametrize(
    "bad",
    [
        {"policy": "lottery"},
        {"port": 70000},
        {"workers": 0},
        {"max_queued_requests": -1},
        {"max_body_bytes": 10},
        {"request_timeout": 0},
        {"noise_scale": 5},
        {"no_such_setting": 1},
    ],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_openai_voice_names_map_to_the_default() -> None:
    settings = Settings(default_voice="tiny-a", openai_voice_map={"nova": "tiny-b"})
    assert settings.openai_voice("nova") == "tiny-b"
    assert all(settings.openai_voice(n) == "tiny-a" for n in OPENAI_VOICE_NAMES if n != "nova")
    assert settings.openai_voice("en_US-joe-medium") == "en_US-joe-medium"


def test_cli_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_WORKERS", "3")
    monkeypatch.setenv("TTS_POLICY", "fifo")
    args = build_parser().parse_args(["serve", "--workers", "2", "--noise-scale", "0"])
    settings = settings_from(args)
    assert settings.worker_count == 2
    assert settings.policy == "fifo"  # not given as a flag: the environment's
    assert settings.noise_scale == 0.0


def test_say_noise_flags_are_per_request_not_server_defaults() -> None:
    args = build_parser().parse_args(["say", "hi", "-o", "x.wav", "--noise-scale", "0.3"])
    assert settings_from(args).noise_scale is None


# ------------------------------------------------------------------ cores under a cgroup quota


def write_files(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


V1 = "cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us"
V1_JOINT = "cpu,cpuacct/cpu.cfs_quota_us", "cpu,cpuacct/cpu.cfs_period_us"


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: a second, part-time core
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "max 100000\n"}, None),
        ({V1[0]: "300000\n", V1[1]: "100000\n"}, 3),
        ({V1[0]: "-1\n", V1[1]: "100000\n"}, None),
        ({V1_JOINT[0]: "100000\n", V1_JOINT[1]: "100000\n"}, 1),
        ({}, None),
        ({V1[0]: "300000\n"}, None),  # half of the pair
        ({"cpu.max": "lots\n"}, None),
        ({"cpu.max": "200000 0\n"}, None),
        ({"cpu.max": "1 2 3\n"}, None),
        ({V1[0]: "x\n", V1[1]: "100000\n"}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], limit: int | None) -> None:
    assert cgroup_cpu_limit(write_files(tmp_path, files)) == limit


def test_the_quota_caps_the_cores(tmp_path: Path) -> None:
    free = available_cores(tmp_path)  # no cgroup files: the CPUs this process may run on
    assert free == len(os.sched_getaffinity(0))
    limited = write_files(tmp_path / "limited", {"cpu.max": "100000 100000\n"})
    assert available_cores(limited) == 1
    generous = write_files(tmp_path / "generous", {"cpu.max": f"{(free + 8) * 100000} 100000"})
    assert available_cores(generous) == free  # a quota above the CPUs changes nothing


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to cap to 1")
def test_default_workers_follow_the_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "CGROUP_ROOT", tmp_path / "none")
    assert Settings().worker_count >= 2
    limited = write_files(tmp_path / "limited", {"cpu.max": "100000 100000"})
    monkeypatch.setattr(cores, "CGROUP_ROOT", limited)
    settings = Settings()
    assert settings.worker_count == 1
    assert settings.solo_threads is None  # one core: no all-cores session


def test_the_cache_folder_is_the_users_cache_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TTS_SPLIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings().split_cache_dir == tmp_path / "tts-service"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings().split_cache_dir == Path.home() / ".cache" / "tts-service"


def test_the_chunk_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_CHUNK_MARGINS", "32,24")
    monkeypatch.setenv("TTS_CHUNK_FRAMES", "8, 64")
    assert chunk_plan(Settings()) == ChunkPlan(32, 24, (8, 64))
    monkeypatch.setenv("TTS_CHUNKED_DECODING", "false")
    assert chunk_plan(Settings()) is None
    monkeypatch.setenv("TTS_CHUNK_FRAMES", "0")
    with pytest.raises(ValueError, match="chunk_frames"):
        Settings()
    monkeypatch.setenv("TTS_CHUNK_FRAMES", "16")
    monkeypatch.setenv("TTS_CHUNK_MARGINS", "48")
    with pytest.raises(ValueError, match="chunk_margins"):
        Settings()


def test_the_audio_cache_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("TTS_"):
            monkeypatch.delenv(key)
    defaults = Settings()
    assert defaults.cache and defaults.cache_budget == 32 * 2**20
    monkeypatch.setenv("TTS_CACHE_BUDGET", "8M")
    assert Settings().cache_budget == 8 * 2**20
    args = build_parser().parse_args(["serve", "--no-cache", "--cache-budget", "1G"])
    settings = settings_from(args)
    assert not settings.cache and settings.cache_budget == 2**30
    bench = build_parser().parse_args(["bench", "--cache"])
    assert bench.cache_phase and settings_from(bench).cache  # the bench's rows, not the server's
