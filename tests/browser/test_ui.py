"""The web page in a real browser: Debian's Chromium driven by Playwright against a real
uvicorn server with the real voice.

The page records the timing of its last request on `window.ttsTrace` (performance.now()
milliseconds: request start, first audio bytes, end of the response, playback start), so
streaming can be asserted as an order of events rather than a timing guess; and the words
it marked as spoken, each with the playback position it was marked at.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from captioncheck import check_cues_match_words, parse_vtt
from conftest import ROOT, ServerProcess

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("TTS_TEST_CHROMIUM", "/usr/bin/chromium"))
# Chromium's own background traffic (updates, sync, QUIC probes) is refused here; turn it off.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 60_000  # generous: other test suites share the 2 cores

TEN_SENTENCES = " ".join(
    f"This is sentence number {n} of the streaming test." for n in range(1, 11)
)

FINISHED = "() => window.ttsTrace !== undefined && window.ttsTrace.finished"
PLAYABLE = """() => {
  const p = document.getElementById('player');
  return p.readyState >= 2 && Number.isFinite(p.duration) && p.duration > 0;
}"""
PLAYER_STATE = """() => {
  const p = document.getElementById('player');
  return {duration: p.duration, readyState: p.readyState, currentTime: p.currentTime,
          error: p.error && p.error.message};
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (or .ci/ensure-chromium) first")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    uncaught: list[str] = []
    page.on("pageerror", lambda error: uncaught.append(str(error)))
    yield page
    context.close()
    assert uncaught == [], f"uncaught errors in the page: {uncaught}"


def open_page(page: Page, base_url: str, wait_for_voices: bool = True) -> None:
    page.goto(f"{base_url}/")
    if wait_for_voices:
        page.wait_for_function("() => document.body.dataset.voices === 'loaded'")


def speak(page: Page) -> dict[str, Any]:
    """Press Speak and wait for the page to finish with the response; its trace."""
    page.click("#speak")
    page.wait_for_function(FINISHED)
    trace: dict[str, Any] = page.evaluate("() => window.ttsTrace")
    return trace


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def download(page: Page, filename: str) -> bytes:
    """Click the download link as a user would; the file the browser saved."""
    return download_link(page, "#download", filename)


def download_link(page: Page, selector: str, filename: str) -> bytes:
    link = page.locator(selector)
    expect(link).to_be_visible()
    with page.expect_download() as saved:
        link.click()
    assert saved.value.suggested_filename == filename
    return Path(saved.value.path()).read_bytes()


def is_synthesis(request: Any) -> bool:
    return bool(request.url.endswith("/synthesize"))


def is_spoken(response: Any) -> bool:
    """The synthesis answer that was spoken (a voice that turns out unable to time words
    is asked again without timestamps)."""
    return is_synthesis(response.request) and response.status == 200


def test_speak_streams_into_the_audio_element(server: ServerProcess, page: Page) -> None:
    open_page(page, server.base_url)
    page.select_option("#voice", "en_US-joe-medium")
    page.select_option("#format", "mp3")
    page.fill("#text", TEN_SENTENCES)
    with page.expect_request(is_synthesis) as sent:
        trace = speak(page)

    assert sent.value.post_data_json == {
        "text": TEN_SENTENCES,
        "voice": "en_US-joe-medium",
        "format": "mp3",
        "stream": True,
        "timestamps": True,
        "captions": "vtt",
    }
    assert trace["error"] is None and trace["status"] == 200
    assert trace["mode"] == "mediasource" and trace["sentences"] == 10
    # Streaming: audio bytes arrived, and the <audio> element was already playing them,
    # while the server was still synthesizing the rest of the text.
    assert trace["chunks"] >= 2
    assert trace["startedAt"] < trace["firstChunkAt"] < trace["endAt"]
    assert trace["playingAt"] is not None and trace["playingAt"] < trace["endAt"]

    page.wait_for_function(PLAYABLE)
    player = page.evaluate(PLAYER_STATE)
    assert player["error"] is None
    # The element holds the whole text, as long as the server's own WAV of it.
    reference = httpx.post(
        f"{server.base_url}/synthesize/binary",
        json={"text": TEN_SENTENCES, "voice": "en_US-joe-medium"},
        timeout=120,
    )
    assert player["duration"] == pytest.approx(float(reference.headers["X-Duration"]), abs=0.3)

    audio = download(page, "speech.mp3")
    assert len(audio) == trace["bytes"]
    assert audio[:3] == b"ID3" or (audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0)  # MP3 sync
    expect(page.locator("#status")).to_contain_text("Done: 10 sentences")
    screenshot(page, "ui-speak.png")


MARKED_TEXT = "Each word is marked. It follows the sound, word by word!"
MARKED_WORDS = ["Each", "word", "is", "marked", "It", "follows", "the", "sound", "word", "by"]
MARKED_WORDS += ["word"]
LAST_WORD_MARKED = """() => {
  const t = window.ttsTrace;
  const last = t.marks[t.marks.length - 1];
  return t.finished && last !== undefined && last.index === t.words.length - 1;
}"""


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_each_word_is_marked_as_it_is_spoken(server: ServerProcess, page: Page, fmt: str) -> None:
    """MP3 plays in the audio element, WAV through Web Audio: either way the mark moves
    forward through the words as the sound plays, each mark made while its word is being
    spoken, ending on the last word; the captions download matches the words."""
    open_page(page, server.base_url)
    page.select_option("#voice", "en_US-joe-medium")
    page.select_option("#format", fmt)
    page.fill("#text", MARKED_TEXT)
    page.evaluate("() => { document.getElementById('player').defaultPlaybackRate = 2; }")
    trace = speak(page)
    assert trace["error"] is None and trace["timed"] and trace["captions"]
    page.wait_for_function(LAST_WORD_MARKED)  # the sound reached the last word
    trace = page.evaluate("() => window.ttsTrace")

    words, marks = trace["words"], trace["marks"]
    assert [word["text"] for word in words] == MARKED_WORDS
    indices = [mark["index"] for mark in marks]
    assert len(indices) >= 3 and indices == sorted(set(indices))  # forward, never back
    starts = [word["start"] for word in words] + [float("inf")]
    for mark in marks:
        assert starts[mark["index"]] <= mark["position"] < starts[mark["index"] + 1], mark
        assert mark["at"] >= trace["playingAt"]  # nothing is marked before the sound starts
    assert [m["at"] for m in marks] == sorted(m["at"] for m in marks)
    expect(page.locator("#transcript")).to_have_text(MARKED_TEXT)
    expect(page.locator("#transcript .word.current")).to_have_text(MARKED_WORDS[-1])
    expect(page.locator("#transcript .word.current")).to_have_count(1)
    cues = parse_vtt(download_link(page, "#captions", "speech.vtt").decode("utf-8"))
    check_cues_match_words(cues, words)
    screenshot(page, f"ui-words-{fmt}.png")


def test_wav_download_equals_the_servers_file(server: ServerProcess, page: Page) -> None:
    """Speaker picker, speed slider and the Web Audio WAV path, checked byte for byte."""
    open_page(page, server.base_url)
    page.select_option("#voice", "tiny-multi")
    expect(page.locator("#speaker option")).to_have_text(["alice (0)", "bob (1)", "carol (2)"])
    page.select_option("#speaker", "bob")
    page.focus("#speed")
    page.keyboard.press("End")  # the slider's maximum, as a keyboard user would
    expect(page.locator("#speed-value")).to_have_text("2.0×")
    page.select_option("#format", "wav")
    text = "Two short sentences. Said by the tiny voice."
    page.fill("#text", text)
    with page.expect_response(is_spoken) as answered:
        trace = speak(page)

    body = answered.value.request.post_data_json
    assert trace["timed"] is False  # the tiny voice cannot time words: asked without
    assert body == {
        "text": text,
        "voice": "tiny-multi",
        "speaker": "bob",
        "length_scale": 0.5,
        "format": "wav",
        "stream": True,
    }
    assert trace["error"] is None and trace["mode"] == "webaudio"
    assert trace["playingAt"] is not None  # Web Audio started on the streamed PCM

    downloaded = download(page, "speech.wav")
    reference = httpx.post(
        f"{server.base_url}/synthesize/binary", json={**body, "stream": False}, timeout=60
    )
    assert reference.status_code == 200
    assert downloaded == reference.content  # exact sizes in the header, same samples

    page.wait_for_function(PLAYABLE)
    player = page.evaluate(PLAYER_STATE)
    assert player["duration"] == pytest.approx(trace["audioSeconds"], abs=0.01)
    assert player["duration"] == pytest.approx(float(reference.headers["X-Duration"]), abs=0.01)


def cancelled_total(base_url: str) -> int:
    total: int = httpx.get(f"{base_url}/health", timeout=10).json()["totals"]["cancelled"]
    return total


def test_stop_cancels_the_servers_work(server: ServerProcess, page: Page) -> None:
    open_page(page, server.base_url)
    page.select_option("#voice", "en_US-joe-medium")
    page.fill("#text", TEN_SENTENCES + " " + TEN_SENTENCES)
    before = cancelled_total(server.base_url)
    page.click("#speak")
    page.wait_for_function("() => window.ttsTrace.firstChunkAt !== null")
    page.click("#stop")
    page.wait_for_function(FINISHED)

    trace = page.evaluate("() => window.ttsTrace")
    assert trace["error"] == "stopped" and trace["endAt"] is None
    expect(page.locator("#status")).to_have_text("Stopped.")
    expect(page.locator("#stop")).to_be_disabled()
    expect(page.locator("#download")).to_be_hidden()
    assert page.evaluate("() => document.getElementById('player').paused")
    # Closing the stream made the server cancel the job's remaining sentences.
    deadline = time.monotonic() + 30
    while cancelled_total(server.base_url) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cancelled_total(server.base_url) == before + 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("   ", "Text must not be empty."),
        ("word " * 4001, "Too long: Text has 20005 characters; the limit is 20000."),
    ],
    ids=["empty", "too-long"],
)
def test_server_errors_are_shown(
    server: ServerProcess, page: Page, text: str, message: str
) -> None:
    open_page(page, server.base_url)
    page.select_option("#voice", "tiny-single")
    page.fill("#text", text)
    trace = speak(page)

    assert trace["status"] in (413, 422)
    error = page.get_by_role("alert")
    expect(error).to_have_text(message)
    expect(page.locator("#download")).to_be_hidden()
    # The error clears and the page works on the next, valid request.
    page.fill("#text", "Fine now.")
    trace = speak(page)
    assert trace["status"] == 200 and trace["error"] is None
    expect(error).to_be_hidden()
    page.wait_for_function(PLAYABLE)


def test_live_panel_shows_the_queue_during_a_burst(
    start_server: type[ServerProcess], page: Page
) -> None:
    srv = start_server("--workers", "1", "--threads-per-worker", "1", "--max-queued-requests", "2")
    open_page(page, srv.base_url)
    expect(page.locator("#health-status")).to_have_text("ok")
    expect(page.locator("#stat-capacity-text")).to_have_text("0 / 3")
    burst_text = " ".join(f"Burst sentence {n} keeps the only worker busy." for n in range(6))

    def post() -> httpx.Response:
        return httpx.post(
            f"{srv.base_url}/synthesize/binary", json={"text": burst_text}, timeout=120
        )

    with ThreadPoolExecutor(max_workers=3) as pool:
        burst = [pool.submit(post) for _ in range(3)]
        # One poll of /health shows all three admitted, sentences waiting, the worker busy.
        expect(page.locator("#stat-capacity-text")).to_have_text("3 / 3")
        seen = page.evaluate(
            """() => ({
              sentences: document.getElementById('stat-sentences').textContent,
              workers: document.getElementById('stat-workers').textContent,
              admitted: document.getElementById('stat-capacity-text').textContent})"""
        )
        screenshot(page, "ui-burst.png")
        # A fourth request while the queue is full: the page explains the 503.
        page.fill("#text", "One request too many.")
        trace = speak(page)
        responses = [future.result() for future in burst]

    assert seen["admitted"] == "3 / 3" and seen["workers"] == "1 / 1"
    assert int(seen["sentences"]) > 0
    assert trace["status"] == 503
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"^The server is busy\. .+ Try again in \d+ s\.$")
    )
    assert [response.status_code for response in responses] == [200, 200, 200]
    # The panel follows the queue back down and counts what happened.
    expect(page.locator("#stat-capacity-text")).to_have_text("0 / 3")
    expect(page.locator("#stat-sentences")).to_have_text("0")
    expect(page.locator("#total-completed")).to_have_text("3")
    expect(page.locator("#total-rejected")).to_have_text("1")


def test_api_key_field(start_server: type[ServerProcess], page: Page, tiny_voices: Path) -> None:
    key = "page-test-key"
    srv = start_server(
        "--api-key", key, "--voices-dir", str(tiny_voices), "--default-voice", "tiny-single"
    )
    open_page(page, srv.base_url, wait_for_voices=False)
    error = page.get_by_role("alert")
    expect(error).to_contain_text("The server needs a valid API key")
    expect(page.locator("#health-status")).to_have_text("ok")  # /health needs no key

    page.fill("#api-key", "not-the-key")
    page.keyboard.press("Tab")
    expect(error).to_contain_text("Invalid API key")

    page.fill("#api-key", key)
    page.keyboard.press("Tab")
    page.wait_for_function("() => document.body.dataset.voices === 'loaded'")
    expect(error).to_be_hidden()
    expect(page.locator("#voice")).to_have_value("tiny-single")
    page.fill("#text", "The key works.")
    with page.expect_request(is_synthesis) as sent:
        trace = speak(page)

    assert sent.value.headers["authorization"] == f"Bearer {key}"
    assert trace["status"] == 200 and trace["error"] is None
    page.wait_for_function(PLAYABLE)
    # Kept in page memory only: nothing stored where it would outlive the tab.
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []


def test_api_docs_render_offline(server: ServerProcess, page: Page) -> None:
    """Swagger UI and ReDoc come from the server itself and read its OpenAPI 3.1 document;
    the one outside file ReDoc asks for (its maker's logo) is blocked by the page's policy."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    failed: list[tuple[str, str | None]] = []
    page.on("requestfailed", lambda request: failed.append((request.url, request.failure)))
    spec = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    operations = sum(len(item) for item in spec["paths"].values())

    page.goto(f"{server.base_url}/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".information-container")).to_contain_text("tts-service")
    page.goto(f"{server.base_url}/redoc")
    expect(page.locator("h1")).to_contain_text("tts-service")
    expect(page.get_by_text("POST/v1/audio/speech").first).to_be_attached()

    local = (f"{server.base_url}/", f"blob:{server.base_url}/")
    elsewhere = {url for url in asked if not url.startswith(local)}
    blocked = {url for url, why in failed if why == "csp"}
    assert asked and elsewhere <= blocked, (elsewhere, failed)
