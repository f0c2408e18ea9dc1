"""Hypothesis-generated bodies against a real server's synthesis routes: wrong types, huge
numbers, NaN and Infinity, nested junk, odd Unicode (controls, format characters, unpaired
surrogate escapes), strings far past the text limit, bytes that are not JSON at all.

Whatever comes in: never a 5xx, never a hang (client timeout), always a JSON error or
complete audio, and the server keeps serving. A small text limit keeps the valid bodies
that do get synthesized short, so the run stays quick."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from audiocheck import seconds, wav_pcm
from captioncheck import parse_srt, parse_vtt
from conftest import ServerProcess

MAX_TEXT = 60
MAX_BODY = 64 * 1024
ROUTES = ("/synthesize", "/synthesize/binary", "/v1/audio/speech")
NATIVE_FIELDS = (
    "text", "voice", "speaker", "length_scale", "noise_scale", "noise_w_scale", "volume",
    "sentence_silence", "priority", "timeout", "format", "stream", "timestamps", "captions",
)  # fmt: skip
OPENAI_FIELDS = ("model", "input", "voice", "response_format", "speed", "stream_format")
PLAUSIBLE = (
    "Hello there.", "Hi. How are you?", "en_US-joe-medium", "tiny-multi", "tiny-single",
    "alice", "bob", "alloy", "tts-1", "wav", "mp3", "pcm", "opus", "sse", "audio", "vtt", "srt",
    "high", "low", "normal", "", " ", "0", "1",
)  # fmt: skip
OK_STATUSES = {200, 400, 404, 413, 422}

odd_characters = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Mn", "So"])
strings = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.text(max_size=MAX_TEXT),  # any code point but surrogates
    st.text(odd_characters, max_size=20),  # controls, format chars, lone surrogates
    st.builds(lambda c, n: c * n, st.characters(), st.integers(MAX_TEXT + 1, 20_000)),
    st.builds(lambda a, b: a + b, st.sampled_from(PLAUSIBLE), st.text(odd_characters, max_size=5)),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),  # NaN and +-Infinity too: Python's JSON writes (and reads) them
    st.sampled_from([0, 1, 2, -1, 0.5, 1.0, 1e308, 5e-324, 20, 20.0001, 3600]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=10,
)
field_bodies = st.dictionaries(
    st.sampled_from((*NATIVE_FIELDS, *OPENAI_FIELDS, "junk")), values, max_size=6
)
odd_values = st.one_of(st.sampled_from(PLAUSIBLE), numbers, st.booleans(), st.none())


def near_valid(paths: tuple[str, ...], text_field: str, others: tuple[str, ...]) -> Any:
    """A speakable text plus one or two odd fields: these get past validation often enough
    to fuzz the synthesis and encoding paths too, not only the error paths."""
    tails = st.text(st.one_of(odd_characters, st.characters()), max_size=8)
    texts = st.builds(lambda a, b: a + b, st.sampled_from(PLAUSIBLE[:2]), tails)
    extras = st.dictionaries(st.sampled_from(others), odd_values, max_size=2)
    return st.tuples(
        st.sampled_from(paths),
        st.builds(lambda text, extra: json.dumps({text_field: text, **extra}), texts, extras),
    )


junk = st.one_of(
    field_bodies.map(json.dumps),
    values.map(json.dumps),  # not even an object
    st.binary(max_size=64),  # not JSON, maybe not UTF-8
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),  # deep nesting
)
requests = st.one_of(
    near_valid(ROUTES[:2], "text", NATIVE_FIELDS[1:]),
    near_valid(ROUTES[2:], "input", (*OPENAI_FIELDS[:1], *OPENAI_FIELDS[2:], "speaker")),
    st.tuples(st.sampled_from(ROUTES), junk),
)


@pytest.fixture(scope="module")
def fuzzed(logs_dir: Path, tiny_voices: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        logs_dir,
        "--workers", "2",
        "--voices-dir", str(tiny_voices),
        "--max-text-chars", str(MAX_TEXT),
        "--max-body-bytes", str(MAX_BODY),
    )  # fmt: skip
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(fuzzed: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzzed.base_url, timeout=30) as made:
        yield made


def check_audio(path: str, response: httpx.Response, body: str | bytes) -> None:
    """A 200 carries audio of the format asked for (WAV is checked down to its samples),
    JSON lines that end well, or a caption file a strict parser reads."""
    request = json.loads(body)
    if path == "/synthesize" and request.get("stream") is True:
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines[0]["type"] == "start" and lines[-1]["type"] == "end", lines[-1]
        audio = b"".join(base64.b64decode(line["audio"]) for line in lines[1:-1])
        fmt, rate = lines[0]["format"], lines[0]["sample_rate"]
    elif path == "/synthesize":
        result = response.json()
        audio = base64.b64decode(result["audio"], validate=True)
        fmt, rate = result["format"], result["sample_rate"]
        if "captions" in result:
            (parse_vtt if request["captions"] == "vtt" else parse_srt)(result["captions"])
    else:
        field, default = (
            ("format", "wav") if path == "/synthesize/binary" else ("response_format", "mp3")
        )
        audio, fmt = response.content, request.get(field, default)
        if fmt in ("vtt", "srt"):
            (parse_vtt if fmt == "vtt" else parse_srt)(response.text)
            return
        rate = int(response.headers["x-sample-rate"])
    assert audio, "a 200 without audio"
    if fmt == "wav":
        assert seconds(wav_pcm(audio, rate), rate) > 0


def tiny_timeout(body: str | bytes) -> bool:
    """The body asks for a queue timeout under a millisecond (5e-324 s, say): on the idle
    test server it may run out before a worker starts the request."""
    try:
        fields = json.loads(body)
    except ValueError:
        return False
    timeout = fields.get("timeout") if isinstance(fields, dict) else None
    return isinstance(timeout, int | float) and 0 < timeout < 1e-3


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
# Bodies that once got a 500 (espeak-ng and JSON encoding choke on NUL and on unpaired
# surrogates; the JSON decoder recurses), always tried besides the generated ones.
@example(request=("/synthesize", '{"text": "Hello\\u0000world."}'))
@example(request=("/synthesize/binary", '{"text": "a\\ud800b."}'))
@example(request=("/synthesize", '{"text": "Hi.", "speaker": "\\udfff"}'))
@example(request=("/v1/audio/speech", '{"input": "Hi.", "voice": "\\ud800"}'))
@example(request=("/v1/audio/speech", "[" * 100_000 + "]" * 100_000))
# A queue timeout so small it may run out before a worker starts it: 504, or served.
@example(request=("/synthesize/binary", '{"text": "Hi.", "timeout": 5e-324}'))
def test_no_body_gets_a_5xx_or_a_hang(
    fuzzed: ServerProcess, client: httpx.Client, request: tuple[str, str | bytes]
) -> None:
    path, body = request
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    event(f"status {response.status_code}")
    if response.status_code == 504:  # documented: a deadline that ran out before a worker
        assert response.json()["error"]["code"] == "deadline_exceeded", response.text[:300]
        assert tiny_timeout(body), ("only a tiny timeout runs out on an idle server", body)
        return
    assert response.status_code in OK_STATUSES, (response.status_code, response.text[:300])
    if response.status_code == 200:
        check_audio(path, response, body)
    else:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["code"], str)
    assert fuzzed.proc.poll() is None


def test_the_server_still_serves_after_the_fuzzing(
    fuzzed: ServerProcess, client: httpx.Client
) -> None:
    response = client.post("/synthesize/binary", json={"text": "Still standing."})
    assert response.status_code == 200
    assert seconds(wav_pcm(response.content)) > 0.5
    stats = client.get("/health").json()
    assert stats["status"] == "ok" and stats["active_requests"] == 0
    assert "Traceback" not in fuzzed.log()
