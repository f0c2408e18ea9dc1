"""Downloads by name from a local server in the upstream layout: a good voice installs and
loads; a 404, a truncated file, wrong bytes or an oversized answer install nothing and say
why; an interrupted transfer leaves nothing that looks installed and resumes; concurrent
downloads of one voice fetch it once; progress is drawn on a terminal, written as lines
elsewhere."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tts_service.engine.voice import SynthesisOptions, Voice
from tts_service.errors import DownloadFailed
from tts_service.voices.downloads import Downloader, VoiceDownloads, is_installed
from tts_service.voices.folders import scan
from tts_service.voices.progress import TextProgress
from tts_service.voices.published import MODEL_CARD, CatalogVoice, parse_catalog
from voicemirror import VoiceMirror, published, running_mirror, tiny_voice_files

NAME = "en_US-tiny-x_low"
CARD = b"# Model card\nA tone, not a voice.\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("source")
    return tiny_voice_files(folder, NAME)


@pytest.fixture
def mirror(files: dict[str, bytes]) -> Iterator[VoiceMirror]:
    with running_mirror() as mirror:
        mirror.add_voice(NAME, {**files, MODEL_CARD: CARD})
        yield mirror


@pytest.fixture
def entry(files: dict[str, bytes]) -> CatalogVoice:
    raw = published(NAME, {**files, MODEL_CARD: CARD}, aliases=["tiny"])
    voice = parse_catalog({NAME: raw}).get(NAME)
    assert voice is not None
    return voice


def model_path(mirror: VoiceMirror) -> str:
    return mirror.path(NAME, f"{NAME}.onnx")


def looks_installed(folder: Path) -> bool:
    """What the server would find there: a voice by that name."""
    return NAME in scan([folder]).voices


def test_a_download_installs_a_voice_that_loads_and_speaks(
    mirror: VoiceMirror, entry: CatalogVoice, files: dict[str, bytes], tmp_path: Path
) -> None:
    result = Downloader(mirror.base_url).download(entry, tmp_path)
    assert not result.already_installed and result.fetched_bytes == entry.download_bytes + len(CARD)
    for file_name, data in files.items():
        assert (tmp_path / file_name).read_bytes() == data
    assert (tmp_path / f"{NAME}.{MODEL_CARD}").read_bytes() == CARD
    assert looks_installed(tmp_path) and is_installed(entry, tmp_path)
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))
    found = scan([tmp_path]).voices[NAME]
    voice = Voice.load(NAME, found.model, found.config, threads=1)
    sentences = voice.phonemize("Hello there.")
    assert voice.synthesize(sentences[0], SynthesisOptions()).pcm  # it speaks


def test_an_installed_voice_is_checked_not_fetched_again(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    Downloader(mirror.base_url).download(entry, tmp_path)
    before = sum(mirror.gets.values())
    again = Downloader(mirror.base_url).download(entry, tmp_path)
    assert again.already_installed and again.fetched_bytes == 0
    assert sum(mirror.gets.values()) == before
    forced = Downloader(mirror.base_url).download(entry, tmp_path, force=True)
    assert not forced.already_installed and sum(mirror.gets.values()) > before


def test_a_voice_installed_elsewhere_with_the_published_files_is_not_fetched(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    Downloader(mirror.base_url).download(entry, elsewhere)
    fetched = sum(mirror.gets.values())
    files = (elsewhere / f"{NAME}.onnx", elsewhere / f"{NAME}.onnx.json")
    found = Downloader(mirror.base_url).download(entry, tmp_path / "downloads", installed=files)
    assert found.already_installed and found.folder == elsewhere
    assert sum(mirror.gets.values()) == fetched
    (elsewhere / f"{NAME}.onnx.json").write_text("{}")  # not the published file any more
    again = Downloader(mirror.base_url).download(entry, tmp_path / "downloads", installed=files)
    assert not again.already_installed and is_installed(entry, tmp_path / "downloads")


def test_a_missing_model_card_never_fails_a_download(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    mirror.missing.add(mirror.path(NAME, MODEL_CARD))
    Downloader(mirror.base_url).download(entry, tmp_path)
    assert looks_installed(tmp_path) and not (tmp_path / f"{NAME}.{MODEL_CARD}").exists()


@pytest.mark.parametrize(
    ("problem", "said"),
    [
        ("missing", "answered HTTP 404"),
        ("truncated", "not the published"),
        ("corrupt", "MD5"),
    ],
)
@pytest.mark.parametrize("which", [".onnx", ".onnx.json"])
def test_a_bad_file_installs_nothing_and_says_why(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path, problem: str, said: str, which: str
) -> None:
    getattr(mirror, problem).add(mirror.path(NAME, NAME + which))
    with pytest.raises(DownloadFailed) as raised:
        Downloader(mirror.base_url).download(entry, tmp_path)
    assert said in raised.value.message and NAME + which in raised.value.message
    assert raised.value.status == 502 and raised.value.exit_code == 8
    assert not looks_installed(tmp_path)
    assert not (tmp_path / f"{NAME}.onnx.json").exists()
    # The wrong file is not kept to resume (a checked model may stay for the next try).
    assert not (tmp_path / f".{NAME}{which}.part").exists()


def test_an_answer_larger_than_published_is_cut_off(
    mirror: VoiceMirror, entry: CatalogVoice, files: dict[str, bytes], tmp_path: Path
) -> None:
    path = model_path(mirror)
    mirror.files[path] = files[f"{NAME}.onnx"] + bytes(10_000_000)
    with pytest.raises(DownloadFailed, match="not the published"):
        Downloader(mirror.base_url).download(entry, tmp_path)
    assert not looks_installed(tmp_path) and not list(tmp_path.glob(".*.part"))


def test_an_interrupted_transfer_looks_uninstalled_then_resumes(
    mirror: VoiceMirror, entry: CatalogVoice, files: dict[str, bytes], tmp_path: Path
) -> None:
    path = model_path(mirror)
    mirror.cut.add(path)
    with pytest.raises(DownloadFailed, match="interrupted"):
        Downloader(mirror.base_url).download(entry, tmp_path)
    assert not looks_installed(tmp_path) and not (tmp_path / f"{NAME}.onnx").exists()
    part = tmp_path / f".{NAME}.onnx.part"
    half = len(files[f"{NAME}.onnx"]) // 2
    assert part.stat().st_size == half
    Downloader(mirror.base_url).download(entry, tmp_path)
    assert (path, f"bytes={half}-") in mirror.ranges  # only the rest was asked for
    assert (tmp_path / f"{NAME}.onnx").read_bytes() == files[f"{NAME}.onnx"]
    assert looks_installed(tmp_path) and not part.exists()


def test_a_stale_part_that_does_not_match_is_replaced(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    (tmp_path / f".{NAME}.onnx.part").write_bytes(b"\xff" * 100)  # not the file's start
    with pytest.raises(DownloadFailed, match="MD5"):
        Downloader(mirror.base_url).download(entry, tmp_path)
    Downloader(mirror.base_url).download(entry, tmp_path)  # the bad part was dropped
    assert is_installed(entry, tmp_path)


async def test_concurrent_downloads_of_one_voice_fetch_it_once(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    path = model_path(mirror)
    gate = mirror.hold(path)
    downloads = VoiceDownloads(Downloader(mirror.base_url), tmp_path)
    try:
        first = asyncio.create_task(downloads.fetch(entry))
        await asyncio.to_thread(mirror.arrival(path).wait, 30)
        others = [asyncio.create_task(downloads.fetch(entry)) for _ in range(3)]
        await asyncio.sleep(0)  # the others are now waiting on the same download
        assert downloads.running == [NAME]
        first.cancel()  # a caller giving up leaves the download to the others
        gate.set()
        results = await asyncio.gather(*others)
    finally:
        downloads.close()
    assert {r.fetched_bytes for r in results} == {entry.download_bytes + len(CARD)}
    assert mirror.gets[path] == 1
    assert looks_installed(tmp_path) and downloads.running == []


def test_a_second_process_waits_for_the_first_then_finds_it_installed(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    """The lock is a file lock: a thread stands in for the second process here (the CLI
    test runs two real ones)."""
    path = model_path(mirror)
    gate = mirror.hold(path)
    first = threading.Thread(target=Downloader(mirror.base_url).download, args=(entry, tmp_path))
    first.start()
    assert mirror.arrival(path).wait(30)
    waiting = threading.Event()
    results = []

    def second() -> None:
        results.append(Downloader(mirror.base_url).download(entry, tmp_path, on_wait=waiting.set))

    thread = threading.Thread(target=second)
    thread.start()
    assert waiting.wait(30)
    gate.set()
    first.join(30)
    thread.join(30)
    assert results and results[0].already_installed
    assert mirror.gets[path] == 1


def test_progress_lines_off_a_terminal_and_a_bar_on_one(
    mirror: VoiceMirror, entry: CatalogVoice, tmp_path: Path
) -> None:
    lines = io.StringIO()
    Downloader(mirror.base_url, TextProgress(lines, terminal=False)).download(entry, tmp_path)
    text = lines.getvalue()
    assert "\r" not in text
    model_lines = [line for line in text.splitlines() if line.startswith(f"{NAME}.onnx:")]
    assert model_lines[-1].endswith(")") and "done" in model_lines[-1]
    assert len(model_lines) <= 5  # a start, at most three quarters, done

    bar = io.StringIO()
    Downloader(mirror.base_url, TextProgress(bar, terminal=True)).download(
        entry, tmp_path / "again"
    )
    drawn = bar.getvalue()
    assert "\r" in drawn and "100.0%" in drawn and "[" + "#" * 30 + "]" in drawn


def test_an_unreachable_repository_is_named(entry: CatalogVoice, tmp_path: Path) -> None:
    with running_mirror() as mirror:
        gone = mirror.base_url  # nothing listens here once the mirror has stopped
    with pytest.raises(DownloadFailed, match="cannot be reached") as raised:
        Downloader(gone).download(entry, tmp_path)
    assert gone in raised.value.message and not looks_installed(tmp_path)
