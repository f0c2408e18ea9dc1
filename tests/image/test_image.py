"""The container image, built from this tree's Dockerfile and run as the image says: its own
command as its own user, the volumes mounted the way the README's `docker run` mounts them,
its HEALTHCHECK, and a drain on SIGTERM. See tests/containerimage.py for how it is built and
run without a container registry or an OCI runtime."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import containerimage as ci
from audiocheck import eventually, seconds, sentences, wav_pcm
from conftest import free_port
from dockerfile import healthcheck_code
from voicegen import write_tiny_voice
from voicemirror import VoiceMirror, bundled_files

pytestmark = pytest.mark.image

WHY_NOT = ci.unavailable()
if WHY_NOT is not None:
    pytest.skip(f"image tests: {WHY_NOT}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
FACTS = ROOT / "test-artifacts" / "image.json"


def readme_docker_run() -> list[str]:
    """The README's `docker run` of the image with its volumes (the Voices section)."""
    for line in README.splitlines():
        if line.startswith("docker run ") and "/data" in line and "/voices" in line:
            return shlex.split(line)
    raise AssertionError("the README has no `docker run` line with /data and /voices")


def readme_volumes() -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each -v in that line."""
    args = readme_docker_run()
    volumes = []
    for flag, value in itertools.pairwise(args):
        if flag == "-v":
            source, target, *options = value.split(":")
            volumes.append((source, target, "ro" in options))
    return volumes


def readme_curl() -> list[str]:
    """The README's first synthesis example, a curl to /synthesize/binary."""
    found = re.search(r"^curl -s localhost:3002/synthesize/binary .*$", README, re.M)
    assert found, "the README's curl example is gone"
    return shlex.split(found.group(0))


@dataclass
class Built:
    base: str
    build_seconds: float
    config: ci.ImageConfig


@dataclass
class Volumes:
    """Host folders standing in for the README's volumes: a named volume (starts empty,
    owned like the image's folder, as docker initialises it) or a host folder."""

    host: dict[str, Path]
    read_only: dict[str, bool]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_seconds: float

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def facts(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """What the run measured: printed at the end of the module and kept in
    test-artifacts/image.json (the README quotes it)."""
    found: dict[str, Any] = {}
    yield found
    FACTS.parent.mkdir(exist_ok=True)
    FACTS.write_text(json.dumps(found, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for key, value in found.items():
                reporter.write_line(f"image: {key}: {value}")


@pytest.fixture(scope="module")
def built(facts: dict[str, Any]) -> Built:
    ci.cleanup_leftovers()
    started = time.monotonic()
    base = ci.ensure_base()
    facts["base"] = base
    facts["base_seconds"] = round(time.monotonic() - started, 1)
    build_seconds = ci.build()
    config = ci.ImageConfig.of(ci.TAG)
    facts["build_seconds"] = round(build_seconds, 1)
    facts["size_mb"] = round(config.size / 1e6)
    facts["base_size_mb"] = round(int(ci.inspect(ci.BASE)["Size"]) / 1e6)
    return Built(base, build_seconds, config)


@pytest.fixture(scope="module")
def volumes(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Volumes:
    host: dict[str, Path] = {}
    read_only: dict[str, bool] = {}
    uid, gid = (int(part) for part in built.config.user.split(":"))
    for source, target, ro in readme_volumes():
        folder = tmp_path_factory.mktemp(target.strip("/"))
        folder.chmod(0o755)
        if not source.startswith(("/", "$", ".")):  # a named volume: owned like the image's
            os.chown(folder, uid, gid)
        host[target], read_only[target] = folder, ro
    return Volumes(host, read_only)


@pytest.fixture(scope="module")
def image_root(built: Built, volumes: Volumes) -> Iterator[ci.ImageRoot]:
    with ci.ImageRoot(ci.TAG, built.config) as root:
        for target, folder in volumes.host.items():
            root.bind(folder, target, read_only=volumes.read_only[target])
        yield root


def start_server(root: ci.ImageRoot, log_dir: Path, *, within: float = 120) -> Server:
    """The image's CMD on a free port (TTS_PORT, like `docker run -e`); waits for /health."""
    port = free_port()
    log = log_dir / f"image-server-{port}.log"
    started = time.monotonic()
    proc = root.start(log, env={"TTS_PORT": str(port)})
    server = Server(proc, port, log, 0.0)
    while time.monotonic() - started < within:
        if proc.poll() is not None:
            raise AssertionError(
                f"the image's server exited ({proc.returncode}):\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                server.ready_seconds = time.monotonic() - started
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop(server)
    raise AssertionError(f"the image's server was not ready in {within} s:\n{server.output()}")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def server(
    image_root: ci.ImageRoot, tmp_path_factory: pytest.TempPathFactory, facts: dict[str, Any]
) -> Iterator[Server]:
    running = start_server(image_root, tmp_path_factory.mktemp("image-logs"))
    facts["ready_seconds"] = round(running.ready_seconds, 2)
    yield running
    stop(running)


def test_the_image_declares_its_user_volumes_port_and_healthcheck(built: Built) -> None:
    config = built.config
    uid, gid = config.user.split(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    assert config.volumes == sorted(target for _, target, _ in readme_volumes())
    assert config.exposed_ports == ["3002/tcp"]
    assert config.env["TTS_VOICES_DIR"] == "/voices" and config.env["TTS_DOWNLOAD_DIR"] == "/data"
    assert config.healthcheck == ["CMD", "python", "-c", healthcheck_code()]
    assert config.cmd[:2] == ["tts-service", "serve"]


def test_the_compose_service_matches_what_the_built_image_provides(built: Built) -> None:
    """docker-compose.yml against the image itself: its port is one the image exposes, its
    volumes are the image's volumes, its environment agrees with the image's ENV, and its
    health check is the image's own (compose declares none of its own)."""
    config = built.config
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["tts-service"]
    container_ports = {f"{port.split(':')[-1]}/tcp" for port in service["ports"]}
    assert container_ports <= set(config.exposed_ports)
    assert sorted(volume.split(":")[1] for volume in service["volumes"]) == config.volumes
    for key, value in service["environment"].items():
        assert config.env.get(key, value) == str(value), key
    assert "healthcheck" not in service and config.healthcheck[0] == "CMD"


def test_health_answers_ready(server: Server) -> None:
    health = httpx.get(f"{server.base_url}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


def test_the_readmes_curl_synthesizes_speech(server: Server, tmp_path: Path) -> None:
    argv = [arg.replace("localhost:3002", f"localhost:{server.port}") for arg in readme_curl()]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (written,) = [tmp_path / argv[i + 1] for i, arg in enumerate(argv) if arg == "-o"]
    assert seconds(wav_pcm(written.read_bytes())) > 1.0


def test_the_server_runs_as_the_images_user_from_the_images_root(
    server: Server, image_root: ci.ImageRoot
) -> None:
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
    gids = re.search(r"^Gid:\s+(.*)$", status, re.M)
    assert uids and gids
    uid, gid = image_root.config.user.split(":")
    assert set(uids.group(1).split()) == {uid} and uid != "0"
    assert set(gids.group(1).split()) == {gid} and gid != "0"
    assert os.readlink(f"/proc/{server.proc.pid}/root") == str(image_root.path)
    assert "tts-service" in Path(f"/proc/{server.proc.pid}/cmdline").read_text()


def test_a_voice_copied_into_the_voices_mount_is_listed_and_speaks(
    server: Server, volumes: Volumes, image_root: ci.ImageRoot
) -> None:
    folder = volumes.host["/voices"]
    write_tiny_voice(folder, "tiny-image", num_speakers=1)
    for path in folder.iterdir():
        path.chmod(0o644)

    def listed() -> bool:
        voices = httpx.get(f"{server.base_url}/voices", timeout=5).json()
        return "tiny-image" in json.dumps(voices)

    deadline = time.monotonic() + 30
    while not listed():
        assert time.monotonic() < deadline, "the copied voice was not listed at /voices"
        time.sleep(0.2)
    spoken = httpx.post(
        f"{server.base_url}/synthesize/binary",
        json={"text": "Hello.", "voice": "tiny-image"},
        timeout=60,
    )
    assert spoken.status_code == 200, spoken.text
    if volumes.read_only["/voices"]:
        touched = image_root.run(["touch", "/voices/written-by-the-image"])
        assert touched.returncode != 0 and "Read-only" in touched.stderr


def test_downloads_go_to_the_data_volume(volumes: Volumes, image_root: ci.ImageRoot) -> None:
    """The README's `tts-service voices download` in the image, from a local mirror laid out
    like the voice repository: the files land in /data, owned by the image's user."""
    mirror = VoiceMirror().start()
    try:
        mirror.add_voice("en_US-joe-medium", bundled_files())
        done = image_root.run(
            ["tts-service", "voices", "download", "en_US-joe-medium", "--force",
             "--voices-url", mirror.base_url],
            timeout=120,
        )  # fmt: skip
    finally:
        mirror.stop()
    assert done.returncode == 0, done.stderr
    assert "en_US-joe-medium: installed in /data" in done.stdout
    data = volumes.host["/data"]
    uid = int(image_root.config.user.split(":")[0])
    for file_name, content in bundled_files().items():
        (written,) = data.rglob(file_name)
        assert written.read_bytes() == content
        assert written.stat().st_uid == uid


def test_the_healthcheck_command_passes_on_the_server_and_fails_without_one(
    server: Server, image_root: ci.ImageRoot
) -> None:
    kind, *command = image_root.config.healthcheck
    assert kind == "CMD"
    live = image_root.run(command, env={"TTS_PORT": str(server.port)}, timeout=30)
    assert live.returncode == 0, live.stderr
    dead = image_root.run(command, env={"TTS_PORT": str(free_port())}, timeout=30)
    assert dead.returncode != 0


def test_device_cuda_is_refused_with_exit_code_9_without_a_gpu(image_root: ci.ImageRoot) -> None:
    """The CPU image (and any image on a machine without a GPU) refuses --device cuda."""
    done = image_root.run(
        [*image_root.config.cmd, "--device", "cuda"],
        env={"TTS_PORT": str(free_port())},
        timeout=120,
    )
    assert done.returncode == 9, done.stdout + done.stderr


async def test_sigterm_drains_in_flight_work_then_exits_0(
    image_root: ci.ImageRoot, tmp_path: Path
) -> None:
    server = start_server(image_root, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=90) as client:
            texts = [sentences(3, start=10 * n) for n in range(2)]
            in_flight = [
                asyncio.create_task(client.post("/synthesize/binary", json={"text": text}))
                for text in texts
            ]

            async def admitted() -> bool:
                health = (await client.get("/health")).json()
                return bool(health["totals"]["submitted"] == len(texts))

            await eventually(admitted, 30, "the requests admitted")
            server.proc.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return (await client.get("/health")).status_code == 503

            await eventually(draining, 10, "/health turns 503")
            assert not all(task.done() for task in in_flight), "drained before it was tested"
            responses = await asyncio.gather(*in_flight)
        for response in responses:
            assert response.status_code == 200
            assert seconds(wav_pcm(response.content)) > 1.5
        try:
            code = server.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit after the drain:\n{server.output()}") from None
        assert code == 0, server.output()
        assert "draining" in server.output()
    finally:
        stop(server)


@pytest.mark.skipif(
    os.environ.get("TTS_IMAGE_CUDA") != "1",
    reason="the DEVICE=cuda build adds ~1.4 GB of wheels and ~2.5 min: TTS_IMAGE_CUDA=1 runs it",
)
def test_the_cuda_build_swaps_onnxruntime_and_refuses_to_start_without_a_gpu(
    built: Built,
) -> None:
    """`--build-arg DEVICE=cuda`: onnxruntime-gpu replaces the CPU build, the image's ENV
    asks for CUDA, and without a GPU the image's own command stops with exit code 9."""
    tag = ci.TAG + "-cuda"
    ci.build(tag=tag, device="cuda")
    config = ci.ImageConfig.of(tag)
    assert config.env["TTS_DEVICE"] == "cuda"
    with ci.ImageRoot(tag, config) as root:
        providers = root.run(
            ["python", "-c", "import onnxruntime as o; print(o.get_available_providers())"]
        )
        assert "CUDAExecutionProvider" in providers.stdout, providers.stderr
        if Path("/dev/nvidiactl").exists():
            pytest.skip("a GPU is present: the refusal needs a machine without one")
        done = root.run(config.cmd, env={"TTS_PORT": str(free_port())}, timeout=180)
        assert done.returncode == 9, done.stdout + done.stderr
        assert "--device cuda" in done.stderr
