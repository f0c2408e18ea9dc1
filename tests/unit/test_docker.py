"""Docker can't build here, so the container files are checked by reading them: the facts
that must hold (port, user, health check, voices volume, install method) can't rot silently.
The health check command itself runs against a real server in
tests/integration/test_docker_healthcheck.py.
"""

from __future__ import annotations

import json
import re

import yaml

from dockerfile import ROOT, args_of, healthcheck_code, instructions
from tts_service.cli import build_parser
from tts_service.config import Settings


def test_slim_python_base_and_the_readme_install() -> None:
    assert args_of("FROM") == ["python:3.11-slim"]
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in args_of("RUN"))
    copied = " ".join(args_of("COPY"))
    for needed in ("pyproject.toml", "README.md", "src"):
        assert needed in copied


def test_runs_as_a_numeric_non_root_user_before_cmd() -> None:
    order = [name for name, _ in instructions()]
    users = args_of("USER")
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert order.index("CMD") > max(i for i, name in enumerate(order) if name == "USER")


def test_port_voices_and_command() -> None:
    assert args_of("EXPOSE") == [str(Settings.model_fields["port"].default)]
    assert "/voices" in json.loads(args_of("VOLUME")[0])
    assert any("TTS_VOICES_DIR=/voices" in env for env in args_of("ENV"))
    (cmd,) = args_of("CMD")
    command = json.loads(cmd)
    assert command[:2] == ["tts-service", "serve"] and "0.0.0.0" in command
    args = build_parser().parse_args(command[1:])  # the flags exist
    assert args.host == "0.0.0.0"


def test_healthcheck_probes_ping_and_is_valid_python() -> None:
    code = healthcheck_code()
    assert "/ping" in code and "TTS_PORT" in code
    compile(code, "<healthcheck>", "exec")


def test_compose_service_port_volume_and_grace() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["tts-service"]
    assert service["build"] == "."
    assert "3002:3002" in service["ports"]
    targets = [volume.split(":")[1] for volume in service["volumes"]]
    assert "/voices" in targets
    assert service["environment"]["TTS_VOICES_DIR"] == "/voices"
    grace = float(service["stop_grace_period"].removesuffix("s"))
    assert grace > Settings.model_fields["drain_seconds"].default, "docker would kill the drain"


def test_dockerignore_keeps_the_build_inputs() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "tests"} <= ignored
    assert not ignored & {"src", "pyproject.toml", "README.md", "*.md", "*"}


def test_downloaded_voices_go_to_a_writable_volume() -> None:
    assert "/data" in json.loads(args_of("VOLUME")[0])
    assert any("TTS_DOWNLOAD_DIR=/data" in env for env in args_of("ENV"))
    assert any("chown" in run and "/data" in run for run in args_of("RUN"))  # the user writes
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["tts-service"]
    writable = [v for v in service["volumes"] if v.split(":")[1] == "/data"]
    assert writable and not writable[0].endswith(":ro")
    assert service["environment"]["TTS_DOWNLOAD_DIR"] == "/data"


def test_the_gpu_variant_is_a_build_argument_that_swaps_onnxruntime() -> None:
    """`--build-arg DEVICE=cuda`: the GPU build replaces the CPU one (they install the same
    module) and the server is told to use CUDA, so it refuses to start without it."""
    assert args_of("ARG") == ["DEVICE=cpu"]
    assert any("TTS_DEVICE=${DEVICE}" in env for env in args_of("ENV"))
    (install,) = [run for run in args_of("RUN") if "pip install ." in run]
    swap = install.index("pip uninstall -y onnxruntime")
    assert '"$DEVICE" = "cuda"' in install[:swap]
    assert install.index("onnxruntime-gpu[cuda,cudnn]", swap) > swap
    choices = build_parser().parse_args(["serve", "--device", "cuda"])
    assert choices.device == "cuda" and Settings(device="cuda").device == "cuda"
