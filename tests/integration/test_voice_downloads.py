"""Downloads by name against a local server in the upstream layout, through the admin route
of a real server and the real command line: a voice installs and then speaks; a 404, a
truncated file and a wrong MD5 install nothing and say why (HTTP status, exit code); two
concurrent downloads fetch once; with --download-missing a request for a missing voice
waits for it while a request for an installed voice is served first."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from audiocheck import piper_pcm, wait_for, wav_pcm
from conftest import DETERMINISTIC, ROOT, ServerProcess
from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.voices.published import CATALOG_FILE_NAME, PACKAGED_CATALOG, CatalogSource
from voicegen import write_tiny_voice
from voicemirror import (
    VoiceMirror,
    bundled_files,
    published,
    running_mirror,
    voice_files,
    write_catalog,
)

KEY = "download-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
GOOD, MISSING_ON_FIRST_USE, SHARED = "en_US-tiny-x_low", "en_GB-tiny-x_low", "it_IT-tiny-x_low"
BAD = {
    "corrupt": "de_DE-tiny-x_low",
    "missing": "fr_FR-tiny-x_low",
    "truncated": "es_ES-tiny-x_low",
}
TEXT = "A short sentence. And another one."


def tiny_pcm(folder: Path, name: str, text: str) -> bytes:
    """What the voice says in-process (the tiny voice ignores noise: deterministic), with
    the test servers' normalisation (Piper's peak: conftest.ServerProcess)."""
    voice = Voice.load(name, folder / f"{name}.onnx", folder / f"{name}.onnx.json", threads=1)
    options = SynthesisOptions(normalization="peak")
    return b"".join(voice.synthesize(ids, options).pcm for ids in voice.phonemize(text))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("upstream")
    for name in (GOOD, MISSING_ON_FIRST_USE, SHARED, *BAD.values()):
        write_tiny_voice(folder, name, num_speakers=1)
    return folder


@pytest.fixture(scope="module")
def mirror(sources: Path) -> Iterator[VoiceMirror]:
    with running_mirror() as mirror:
        for name in (GOOD, MISSING_ON_FIRST_USE, SHARED, *BAD.values()):
            mirror.add_voice(name, voice_files(sources, name))
        for problem, name in BAD.items():
            getattr(mirror, problem).add(mirror.path(name, f"{name}.onnx"))
        mirror.files["voices.json"] = upstream_list()
        yield mirror


@pytest.fixture(scope="module")
def catalog(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    names = (GOOD, MISSING_ON_FIRST_USE, SHARED, *BAD.values())
    entries = {name: published(name, voice_files(sources, name)) for name in names}
    return write_catalog(tmp_path_factory.mktemp("catalog") / "catalog.json", entries)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def admin(
    logs_dir: Path, mirror: VoiceMirror, catalog: Path, downloads: Path
) -> Iterator[ServerProcess]:
    """A server with a key (so downloads are on), download on first use, the test catalog,
    and Wyoming on `proc.wyoming_port`."""
    proc = ServerProcess(
        logs_dir,
        "--workers",
        "2",
        "--api-key",
        KEY,
        "--download-missing",
        "--catalog",
        str(catalog),
        "--voices-url",
        mirror.base_url,
        "--download-dir",
        str(downloads),
        *DETERMINISTIC,
        wyoming=True,
    )
    yield proc
    proc.stop()


# ---------------------------------------------------------------------- the route


def test_downloads_are_off_without_a_key_and_the_catalog_is_listed(
    server: ServerProcess,
) -> None:
    answer = httpx.post(f"{server.base_url}/voices/en_US-amy-low/download", timeout=30)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "downloads_disabled"
    listed = httpx.get(f"{server.base_url}/voices/catalog", timeout=30).json()["voices"]
    by_name = {entry["name"]: entry for entry in listed}
    assert len(by_name) >= 170 and by_name["en_US-joe-medium"]["installed"] is True
    assert by_name["en_US-amy-low"]["installed"] is False
    assert by_name["en_GB-alan-low"]["aliases"] == ["en-gb-alan-low"]


def test_a_download_by_name_installs_a_voice_that_then_speaks(
    admin: ServerProcess, sources: Path, downloads: Path
) -> None:
    url = f"{admin.base_url}/voices/{GOOD}/download"
    assert httpx.post(url, timeout=30).status_code == 401
    answer = httpx.post(url, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["installed"] and not report["already_installed"]
    assert report["fetched_bytes"] == sum(len(d) for d in voice_files(sources, GOOD).values())
    assert (downloads / f"{GOOD}.onnx").read_bytes() == (sources / f"{GOOD}.onnx").read_bytes()
    listed = httpx.get(f"{admin.base_url}/voices", headers=AUTH, timeout=30).json()["voices"]
    assert GOOD in {voice["name"] for voice in listed}
    spoken = httpx.post(
        f"{admin.base_url}/synthesize/binary",
        json={"text": TEXT, "voice": GOOD},
        headers=AUTH,
        timeout=60,
    )
    assert spoken.status_code == 200 and spoken.headers["x-voice"] == GOOD
    assert wav_pcm(spoken.content, rate=16000) == tiny_pcm(sources, GOOD, TEXT)
    again = httpx.post(url, headers=AUTH, timeout=60).json()
    assert again["already_installed"] and again["fetched_bytes"] == 0


@pytest.mark.parametrize("problem", sorted(BAD))
def test_a_bad_download_installs_nothing_and_says_why(
    admin: ServerProcess, downloads: Path, problem: str
) -> None:
    name = BAD[problem]
    answer = httpx.post(f"{admin.base_url}/voices/{name}/download", headers=AUTH, timeout=60)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "download_failed" and f"{name}.onnx" in error["message"]
    assert not (downloads / f"{name}.onnx").exists()
    assert not (downloads / f"{name}.onnx.json").exists()
    listed = httpx.get(f"{admin.base_url}/voices", headers=AUTH, timeout=30).json()["voices"]
    assert name not in {voice["name"] for voice in listed}


def test_a_voice_the_catalog_lacks_is_a_404(admin: ServerProcess) -> None:
    answer = httpx.post(f"{admin.base_url}/voices/xx_XX-nobody-low/download", headers=AUTH)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "voice_not_found"


def test_concurrent_downloads_of_one_voice_fetch_it_once(
    admin: ServerProcess, mirror: VoiceMirror
) -> None:
    model = mirror.path(SHARED, f"{SHARED}.onnx")
    gate = mirror.hold(model)
    answers: list[httpx.Response] = []

    def post() -> None:
        url = f"{admin.base_url}/voices/{SHARED}/download"
        answers.append(httpx.post(url, headers=AUTH, timeout=120))

    first = threading.Thread(target=post)
    first.start()
    assert mirror.arrival(model).wait(60)
    second = threading.Thread(target=post)
    second.start()
    joined = f"voice {SHARED}: a download is already under way"
    wait_for(lambda: joined in admin.log(), 60, "the second request joins the first download")
    gate.set()
    first.join(120)
    second.join(120)
    assert [a.status_code for a in answers] == [200, 200]
    assert mirror.gets[model] == 1


def test_a_missing_voice_is_downloaded_while_an_installed_one_is_served(
    admin: ServerProcess, mirror: VoiceMirror, sources: Path
) -> None:
    model = mirror.path(MISSING_ON_FIRST_USE, f"{MISSING_ON_FIRST_USE}.onnx")
    gate = mirror.hold(model)
    waiting: list[httpx.Response] = []

    def ask_for_the_missing_voice() -> None:
        waiting.append(
            httpx.post(
                f"{admin.base_url}/synthesize/binary",
                json={"text": TEXT, "voice": MISSING_ON_FIRST_USE},
                headers=AUTH,
                timeout=120,
            )
        )

    missing = threading.Thread(target=ask_for_the_missing_voice)
    missing.start()
    assert mirror.arrival(model).wait(60)  # its download has begun and is held
    installed = httpx.post(
        f"{admin.base_url}/synthesize/binary",
        json={"text": "Hello there."},
        headers=AUTH,
        timeout=60,
    )
    assert installed.status_code == 200
    assert wav_pcm(installed.content) == piper_pcm("Hello there.")
    assert missing.is_alive() and not waiting  # still waiting for its voice
    gate.set()
    missing.join(120)
    assert waiting and waiting[0].status_code == 200, waiting[0].text if waiting else None
    assert wav_pcm(waiting[0].content, rate=16000) == tiny_pcm(sources, MISSING_ON_FIRST_USE, TEXT)


# ---------------------------------------------------------------------- the command line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tts_service", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=300,
    )


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    env["TTS_SOLO_FIRST_SENTENCE"] = "false"
    return env


@pytest.fixture
def joe_mirror() -> Iterator[VoiceMirror]:
    """The bundled voice's files where upstream publishes en_US-joe-medium (no MODEL_CARD:
    it is optional)."""
    with running_mirror() as mirror:
        mirror.add_voice("en_US-joe-medium", bundled_files())
        yield mirror


def test_the_cli_downloads_the_published_bundled_voice_which_then_speaks(
    joe_mirror: VoiceMirror, tmp_path: Path
) -> None:
    folder = tmp_path / "voices"
    args = ("voices", "download", "en_US-joe-medium", "--voices-url", joe_mirror.base_url)
    bundled = cli(*args, "--download-dir", str(folder))  # it is installed: checked by MD5
    assert bundled.returncode == 0 and "en_US-joe-medium: already installed" in bundled.stdout
    assert sum(joe_mirror.gets.values()) == 0
    result = cli(*args, "--force", "--download-dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert f"en_US-joe-medium: installed in {folder}" in result.stdout
    progress = result.stderr.splitlines()
    assert "en_US-joe-medium.onnx: 63.2 MB" in progress and "en_US-joe-medium.onnx: 50%" in progress
    for file_name, data in bundled_files().items():
        assert (folder / file_name).read_bytes() == data
    out = tmp_path / "hello.wav"
    peak = ("--normalization", "peak")  # Piper's own, to compare bytes with it
    said = cli(
        "say", "Hello there.", "-o", str(out), "--download-dir", str(folder), *DETERMINISTIC, *peak
    )
    assert said.returncode == 0, said.stderr
    assert wav_pcm(out.read_bytes()) == piper_pcm("Hello there.")


def test_cli_failures_install_nothing_and_exit_with_their_code(
    mirror: VoiceMirror, catalog: Path, tmp_path: Path
) -> None:
    place = ("--voices-url", mirror.base_url, "--catalog", str(catalog))
    folder = ("--download-dir", str(tmp_path))
    result = cli("voices", "download", *BAD.values(), GOOD, *place, *folder)
    assert result.returncode == 8, result.stderr  # each bad one said why; the good one installed
    for name in BAD.values():
        assert f"voice '{name}': {name}.onnx" in result.stderr
        assert not (tmp_path / f"{name}.onnx").exists()
    assert result.stderr.count("nothing was installed") == len(BAD)
    assert f"{GOOD}: installed" in result.stdout
    unknown = cli("voices", "download", "xx_XX-nobody-low", GOOD, *place, *folder)
    assert (
        unknown.returncode == 3 and "not in the voice catalog: xx_XX-nobody-low" in unknown.stderr
    )


def test_two_cli_processes_fetch_a_voice_once(
    mirror: VoiceMirror, catalog: Path, tmp_path: Path
) -> None:
    model = mirror.path(GOOD, f"{GOOD}.onnx")
    gate = mirror.hold(model)
    mirror.gets[model] = 0
    command = [
        sys.executable, "-m", "tts_service", "voices", "download", GOOD,
        "--voices-url", mirror.base_url, "--catalog", str(catalog),
        "--download-dir", str(tmp_path),
    ]  # fmt: skip
    options: dict[str, Any] = {"env": cli_env(), "cwd": ROOT, "text": True}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options)
    try:
        assert mirror.arrival(model).wait(60)
        second = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options
        )
        assert second.stderr is not None
        line = second.stderr.readline()  # blocks until it says it waits
        assert "another download of it is under way" in line
        gate.set()
        first_out, _ = first.communicate(timeout=120)
        second_out, _ = second.communicate(timeout=120)
    finally:
        gate.set()
        first.kill()
    assert first.returncode == second.returncode == 0
    assert "installed in" in first_out and "already installed" in second_out
    assert mirror.gets[model] == 1


def test_the_cli_refreshes_the_catalog_from_the_voice_repository(
    mirror: VoiceMirror, tmp_path: Path
) -> None:
    place = ("--voices-url", mirror.base_url, "--download-dir", str(tmp_path))
    result = cli("voices", "refresh-catalog", *place)
    assert result.returncode == 0, result.stderr
    assert "5 voices" in result.stdout
    refreshed = CatalogSource(None, tmp_path)
    assert refreshed.path == tmp_path / CATALOG_FILE_NAME and len(refreshed.current()) == 5


def test_wyoming_describe_offers_what_a_request_would_download(admin: ServerProcess) -> None:
    voices = {voice.name: voice for voice in asyncio.run(admin.wyoming_info()).tts[0].voices}
    assert voices["en_US-joe-medium"].installed
    remote = voices[BAD["missing"]]  # published in the test catalog, never installed
    assert not remote.installed and remote.languages == ["fr_FR"]
    assert remote.description == "Tiny, English (Test Land), x_low (downloaded on first use)"


def upstream_list() -> bytes:
    """Five published entries in upstream's own shape."""
    raw: dict[str, Any] = json.loads(PACKAGED_CATALOG.read_text(encoding="utf-8"))
    entries = {}
    for name, entry in list(raw.items())[:5]:
        entry["key"], entry["name"] = name, entry.pop("dataset")
        entries[name] = entry
    return json.dumps(entries).encode()
