"""The OpenAI-compatible API, driven by the official `openai` SDK against a real server.

Audio is decoded with decoders independent of our encoders (libsndfile through soundfile;
FFmpeg's decoders through PyAV for raw ADTS AAC, which libsndfile cannot read, and for
streamed FLAC, whose unknown length soundfile cannot read past) and compared with the WAV the native
endpoint makes of the same text (the shared server runs at noise 0, so output is
deterministic).
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile

from conftest import ServerProcess
from voicegen import expected_frequency

DEFAULT_VOICE = "en_US-joe-medium"
VOICE_RATE = 22050  # en_US-joe-medium
TEXT = (
    "The quick brown fox jumps over the lazy dog. It was a bright cold day in April. "
    "The clocks were striking thirteen."
)
# Eight sentences: long enough that streaming visibly sends the first before the last.
LONG_TEXT = " ".join(
    [
        "Streaming starts with the first sentence.",
        "The second one follows a moment later.",
        "A third sentence keeps the workers busy.",
        "Then a fourth arrives in order.",
        "The fifth sentence is here.",
        "Six sentences are a decent paragraph.",
        "Seven is nearly done.",
        "And the eighth sentence ends it.",
    ]
)
SHORT = "Hello there."
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
# What each format must decode to: codecs keep the voice's rate except Opus (decoders
# always output 48 kHz) and OpenAI's pcm, defined as 24 kHz.
EXPECTED_RATE = {
    "mp3": VOICE_RATE,
    "opus": 48000,
    "aac": VOICE_RATE,
    "flac": VOICE_RATE,
    "wav": VOICE_RATE,
    "pcm": 24000,
}
CONTENT_TYPE = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# mp3/aac carry encoder priming and frame padding (~0.05-0.08 s here) that no header
# tells a decoder to trim when the file is streamed; 3 % of ~6.5 s covers it.
DURATION_TOLERANCE = 0.03
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
MODELS = ("tts-service", "piper", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")


# ---------------------------------------------------------------------------- helpers


class Decoded:
    def __init__(self, rate: int, channels: int, samples: np.ndarray) -> None:
        self.rate = rate
        self.channels = channels
        self.samples = samples

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate


def decode(data: bytes, fmt: str) -> Decoded:
    """Decode a whole response body with a decoder that is not ours."""
    if fmt == "pcm":  # raw s16le mono at 24 kHz by definition
        assert len(data) % 2 == 0
        return Decoded(24000, 1, np.frombuffer(data, dtype="<i2"))
    if fmt in ("aac", "flac"):
        with av.open(io.BytesIO(data)) as container:
            frames = list(container.decode(audio=0))
        channels = {frame.layout.nb_channels for frame in frames}
        rates = {frame.sample_rate for frame in frames}
        assert len(channels) == 1 and len(rates) == 1
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
        if samples.dtype.kind == "f":  # the AAC decoder outputs float samples in [-1, 1]
            samples = np.clip(samples * 32768.0, -32768, 32767).astype(np.int16)
        return Decoded(rates.pop(), channels.pop(), samples)
    samples, rate = soundfile.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return Decoded(rate, samples.shape[1], samples[:, 0])


def assert_close(duration: float, reference: float, tolerance: float = DURATION_TOLERANCE) -> None:
    assert abs(duration - reference) <= tolerance * reference, (duration, reference)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def assert_openai_error(body: Any, status: int, code: str, param: str | None) -> None:
    """OpenAI's error shape, exactly its four fields."""
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    assert isinstance(error["message"], str) and error["message"]


def totals(server: ServerProcess) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{server.base_url}/health").json()["totals"]
    return stats


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def native_wav(server: ServerProcess) -> Callable[[str], bytes]:
    """The native endpoint's complete WAV (exact header sizes) of a text, cached."""
    cache: dict[str, bytes] = {}

    def get(text: str) -> bytes:
        if text not in cache:
            response = httpx.post(
                f"{server.base_url}/synthesize/binary",
                json={"text": text, "format": "wav"},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            cache[text] = response.content
        return cache[text]

    return get


@pytest.fixture(scope="module")
def reference(native_wav: Callable[[str], bytes]) -> Decoded:
    decoded = decode(native_wav(TEXT), "wav")
    assert decoded.rate == VOICE_RATE and decoded.duration > 5
    return decoded


@pytest.fixture(scope="module")
def speech(client: openai.OpenAI) -> Callable[..., bytes]:
    """`client.audio.speech.create(...)` bodies, cached per argument set."""
    cache: dict[tuple[Any, ...], bytes] = {}

    def get(text: str, fmt: str, **kwargs: Any) -> bytes:
        key = (text, fmt, *sorted(kwargs.items()))
        if key not in cache:
            response = client.audio.speech.create(
                model="tts-1", voice="alloy", input=text, response_format=fmt, **kwargs
            )
            cache[key] = response.content
        return cache[key]

    return get


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_at_its_rate_and_length(
    client: openai.OpenAI, reference: Decoded, fmt: str
) -> None:
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format=fmt
    )
    assert raw.status_code == 200
    assert raw.headers["content-type"] == CONTENT_TYPE[fmt]
    assert raw.headers.get("transfer-encoding") == "chunked"
    assert raw.headers["x-sample-rate"] == str(EXPECTED_RATE[fmt])
    decoded = decode(raw.parse().content, fmt)
    assert decoded.rate == EXPECTED_RATE[fmt]
    assert decoded.channels == 1
    assert_close(decoded.duration, reference.duration)
    assert np.abs(decoded.samples.astype(np.int32)).max() > 1000  # speech, not silence
    if fmt in ("flac", "wav"):  # lossless at the voice's rate: the very same samples
        assert np.array_equal(decoded.samples, reference.samples)


def test_wav_holds_exactly_the_native_pcm(
    speech: Callable[..., bytes], native_wav: Callable[[str], bytes]
) -> None:
    streamed = speech(TEXT, "wav")
    native = native_wav(TEXT)
    # Streamed WAV has an unknown-size header; the samples after it are byte-identical.
    assert streamed[:4] == b"RIFF" and streamed[36:40] == b"data"
    assert streamed[44:] == native[44:]


def test_mp3_is_the_default_format(client: openai.OpenAI, reference: Decoded) -> None:
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input=TEXT)
    assert raw.headers["content-type"] == "audio/mpeg"
    assert_close(decode(raw.parse().content, "mp3").duration, reference.duration)


# --------------------------------------------------------------------------- streaming


def test_streaming_sends_the_first_sentence_before_the_last(
    client: openai.OpenAI, speech: Callable[..., bytes]
) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    parts: list[bytes] = []
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG_TEXT, response_format="mp3"
    ) as response:
        assert response.headers["x-sentences"] == "8"
        for part in response.iter_bytes():
            arrivals.append(time.monotonic() - started)
            parts.append(part)
    assert len(parts) >= 3, arrivals
    # Eight sentences are synthesized one after another (two at a time at most): the
    # first bytes must leave long before the last, not all together at the end.
    assert arrivals[0] < 0.5 * arrivals[-1], arrivals
    streamed = b"".join(parts)
    whole = speech(LONG_TEXT, "mp3")
    assert streamed == whole  # deterministic: same PCM, same encoder
    assert decode(streamed, "mp3").duration == pytest.approx(decode(whole, "mp3").duration)


def test_speed_two_is_about_half_as_long(speech: Callable[..., bytes], reference: Decoded) -> None:
    fast = decode(speech(TEXT, "wav", speed=2.0), "wav")
    ratio = fast.duration / reference.duration
    # Piper rounds each phoneme's duration up to whole frames, so halving the length
    # scale gives ~0.6, not exactly 0.5.
    assert 0.45 < ratio < 0.7, ratio
    slow = decode(speech(SHORT, "wav", speed=0.5), "wav")
    normal = decode(speech(SHORT, "wav"), "wav")
    assert 1.6 < slow.duration / normal.duration < 2.2


def test_sse_events_carry_the_whole_file(
    client: openai.OpenAI, speech: Callable[..., bytes], reference: Decoded
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="coral", input=TEXT, stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    events = [json.loads(line[len("data: ") :]) for line in lines if line.startswith("data: ")]
    assert all(line.startswith("data: ") for line in lines if line), lines[:3]
    *deltas, done = events
    assert deltas and all(event["type"] == "speech.audio.delta" for event in deltas)
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    audio = b"".join(base64.b64decode(event["audio"]) for event in deltas)
    assert audio == speech(TEXT, "mp3")
    assert_close(decode(audio, "mp3").duration, reference.duration)


def test_disconnect_cancels_the_rest(server: ServerProcess, client: openai.OpenAI) -> None:
    sentences = 40
    text = " ".join(f"This is sentence number {n} of a long text." for n in range(sentences))
    before = totals(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/speech",
        json={"model": "tts-1", "input": text, "response_format": "pcm"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert next(response.iter_bytes())
    # The client hung up after the first chunk: the job must end as cancelled, its
    # remaining sentences never synthesized.
    deadline = time.monotonic() + 20
    while True:
        health = httpx.get(f"{server.base_url}/health").json()
        if health["active_requests"] == 0 and health["queued_requests"] == 0:
            break
        assert time.monotonic() < deadline, health
        time.sleep(0.05)
    after = health["totals"]
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["completed"] == before["completed"]
    assert after["sentences"] - before["sentences"] < sentences // 2
    assert client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT).content


# ------------------------------------------------------------------------ bad requests


def _post(server: ServerProcess, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/audio/speech", timeout=30, **kwargs)


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code", "param"),
    [
        ({"json": {"model": "tts-1", "voice": "alloy"}}, 400, "validation_error", "input"),
        ({"json": {"input": 42}}, 400, "validation_error", "input"),
        ({"json": {"input": "   "}}, 400, "validation_error", "input"),
        ({"json": ["input", "hello"]}, 400, "validation_error", None),
        ({"content": b'{"input": "hi",', "headers": {"content-type": "application/json"}},
         400, "malformed_json", None),
        ({"json": {"input": "hi", "voice": {"name": "alloy"}}}, 400, "validation_error", "voice"),
        ({"json": {"input": "hi", "stream_format": "ws"}}, 400, "validation_error",
         "stream_format"),
        ({"json": {"input": "x" * 20_001}}, 413, "text_too_long", "input"),
    ],
    ids=["missing-input", "input-not-text", "blank-input", "not-an-object", "malformed-json",
         "voice-object-without-id", "bad-stream-format", "text-too-long"],
)  # fmt: skip
def test_bad_bodies_get_openai_errors(
    server: ServerProcess,
    request_kwargs: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    submitted = totals(server)["submitted"]
    response = _post(server, **request_kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert_openai_error(response.json(), status, code, param)
    assert totals(server)["submitted"] == submitted  # refused before admission
    assert _post(server, json={"input": SHORT, "response_format": "wav"}).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "code", "param"),
    [
        ({"response_format": "ogg"}, "validation_error", "response_format"),
        ({"speed": 10}, "validation_error", "speed"),
        ({"speed": 0.1}, "validation_error", "speed"),
        ({"voice": "no-such-voice"}, "voice_not_found", "voice"),
        ({"voice": "../../etc/passwd"}, "voice_not_found", "voice"),
        ({"model": "whisper-1"}, "model_not_found", "model"),
        ({"voice": "tiny-multi", "extra_body": {"speaker": "mallory"}}, "invalid_speaker",
         "speaker"),
    ],
    ids=["unknown-format", "speed-10", "speed-0.1", "unknown-voice", "path-as-voice",
         "unknown-model", "unknown-speaker"],
)  # fmt: skip
def test_sdk_raises_bad_request(
    server: ServerProcess, client: openai.OpenAI, kwargs: dict[str, Any], code: str, param: str
) -> None:
    arguments: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": SHORT, **kwargs}
    submitted = totals(server)["submitted"]
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.speech.create(**arguments)
    error = raised.value
    assert error.status_code == 400
    assert error.code == code and error.param == param
    assert error.response.headers["content-type"] == "application/json"
    assert_openai_error(error.response.json(), 400, code, param)
    assert totals(server)["submitted"] == submitted
    assert client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT).content


# ------------------------------------------------------------------------------ voices


def test_openai_voice_names_speak_with_the_default_voice(
    client: openai.OpenAI, native_wav: Callable[[str], bytes]
) -> None:
    expected = native_wav(SHORT)[44:]
    for name in OPENAI_VOICES:
        raw = client.audio.speech.with_raw_response.create(
            model="tts-1", voice=name, input=SHORT, response_format="wav"
        )
        assert raw.headers["x-voice"] == DEFAULT_VOICE, name
        assert raw.parse().content[44:] == expected, name


def test_piper_voice_and_speaker_by_name(client: openai.OpenAI) -> None:
    raw = client.audio.speech.with_raw_response.create(
        model="piper",
        voice={"id": "tiny-multi"},
        input=SHORT,
        response_format="wav",
        extra_body={"speaker": "bob"},
    )
    assert raw.headers["x-voice"] == "tiny-multi"
    decoded = decode(raw.parse().content, "wav")
    assert decoded.rate == 16000
    assert dominant_frequency(decoded.samples, decoded.rate) == pytest.approx(
        expected_frequency(1), abs=5
    )


def test_every_listed_model_is_accepted(client: openai.OpenAI) -> None:
    listed = client.models.list()
    ids = [model.id for model in listed.data]
    assert set(MODELS) <= set(ids)
    assert all(model.object == "model" and model.owned_by for model in listed.data)
    assert client.models.retrieve("tts-1").id == "tts-1"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("whisper-1")
    assert raised.value.code == "model_not_found"
    for model in ids:
        assert client.audio.speech.create(model=model, voice="alloy", input="Hi.").content


def test_models_and_voices_over_plain_http(server: ServerProcess) -> None:
    models = httpx.get(f"{server.base_url}/v1/models").json()
    assert models["object"] == "list"
    for card in models["data"]:
        assert set(card) == {"id", "object", "created", "owned_by"}
        assert isinstance(card["created"], int)
    voices = httpx.get(f"{server.base_url}/v1/audio/voices").json()
    assert voices["default"] == DEFAULT_VOICE
    by_id = {voice["id"]: voice for voice in voices["voices"]}
    for name in (DEFAULT_VOICE, "tiny-multi", "tiny-single"):
        assert by_id[name]["alias_of"] is None and by_id[name]["sample_rate"] > 0
    assert by_id["tiny-multi"]["speakers"] == {"alice": 0, "bob": 1, "carol": 2}
    for name in OPENAI_VOICES:
        assert by_id[name]["alias_of"] == DEFAULT_VOICE and by_id[name]["installed"]


def test_openapi_documents_the_routes(server: ServerProcess) -> None:
    schema = httpx.get(f"{server.base_url}/openapi.json").json()
    speech_op = schema["paths"]["/v1/audio/speech"]["post"]
    ref = speech_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]  # resolved in the contract
    assert {"model", "input", "voice", "response_format", "speed"} <= set(body["properties"])
    assert body["required"] == ["input"]
    assert "/v1/models" in schema["paths"] and "/v1/audio/voices" in schema["paths"]


# ------------------------------------------------------------- configured and limited


def test_voice_map_and_a_full_queue(start_server: type[ServerProcess], tiny_voices: Any) -> None:
    """One worker and room for three queued sentences: a second request that does not
    fit is refused with 503 + Retry-After while the first streams on undisturbed."""
    server = start_server(
        "--workers",
        "1",
        "--max-queued-sentences",
        "3",
        "--voices-dir",
        str(tiny_voices),
        "--noise-scale",
        "0",
        env={"TTS_OPENAI_VOICE_MAP": json.dumps({"nova": "tiny-multi", "sage": "not-there"})},
    )
    with openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0) as sdk:
        raw = sdk.audio.speech.with_raw_response.create(
            model="tts-1", voice="nova", input=SHORT, response_format="wav"
        )
        assert raw.headers["x-voice"] == "tiny-multi"
        with pytest.raises(openai.BadRequestError) as missing:
            sdk.audio.speech.create(model="tts-1", voice="sage", input=SHORT)
        assert missing.value.code == "voice_not_found" and "not-there" in str(missing.value)
        voices = httpx.get(f"{server.base_url}/v1/audio/voices").json()["voices"]
        aliases = {voice["id"]: voice for voice in voices if voice["alias_of"]}
        assert aliases["nova"]["alias_of"] == "tiny-multi" and aliases["nova"]["installed"]
        assert aliases["sage"]["installed"] is False
        assert aliases["alloy"]["alias_of"] == DEFAULT_VOICE

        three = "One sentence here is long enough. A second follows it. And a third ends."
        with sdk.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=three, response_format="wav", speed=0.5
        ) as first:
            # `first` is admitted (its headers are here) and still has sentences queued.
            with pytest.raises(openai.InternalServerError) as full:
                sdk.audio.speech.create(model="tts-1", voice="alloy", input=three)
            assert full.value.status_code == 503
            assert full.value.response.headers["retry-after"].isdigit()
            assert_openai_error(full.value.response.json(), 503, "overloaded", None)
            audio = first.read()
        assert decode(audio, "wav").duration > 3
        assert sdk.audio.speech.create(model="tts-1", voice="alloy", input=three).content
