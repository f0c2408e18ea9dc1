"""Word timestamps and captions on every transport of a real server: the JSON answer, its
JSON-lines stream, the WebSocket, OpenAI's speech route (vtt, srt) and the captioned-speech
route through the official SDK. The shared server runs at noise 0, so every transport must
give the same words, and audio byte-identical to Piper's own, timestamps on or off."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from piper import PiperVoice
from websockets.asyncio.client import connect

from audiocheck import piper_pcm, wav_pcm
from captioncheck import check_cues_match_words, parse_srt, parse_vtt
from conftest import ServerProcess
from voicegen import HOP_LENGTH, aligned_frames, write_tiny_voice

TEXT = "In 1984 it cost $3.50, said Dr. Smith. A well-known “state-of-the-art”   idea!"
WORDS = ["In", "1984", "it", "cost", "$3.50", "said", "Dr", "Smith", "A", "well-known"]
WORDS += ["state-of-the-art", "idea"]


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def timed(http: httpx.Client) -> dict[str, Any]:
    """`/synthesize` with words and captions: what the other transports must agree with."""
    answer = http.post("/synthesize", json={"text": TEXT, "timestamps": True, "captions": "vtt"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def check_words(words: list[dict[str, Any]], duration: float) -> None:
    assert [w["text"] for w in words] == WORDS
    assert all(TEXT[w["char_start"] : w["char_end"]] == w["text"] for w in words)
    assert all(w["start"] <= w["end"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
    assert 0 <= words[0]["start"] and words[-1]["end"] <= duration


def test_synthesize_answers_words_and_captions(http: httpx.Client, timed: dict[str, Any]) -> None:
    pcm = wav_pcm(base64.b64decode(timed["audio"]))
    assert pcm == piper_pcm(TEXT)  # timing words changes no sample
    check_words(timed["words"], timed["duration"])
    check_cues_match_words(parse_vtt(timed["captions"]), timed["words"])
    plain = http.post("/synthesize", json={"text": TEXT}).json()
    assert "words" not in plain and "captions" not in plain
    assert plain["audio"] == timed["audio"]


def json_lines(http: httpx.Client, body: dict[str, Any], route: str) -> list[dict[str, Any]]:
    with http.stream("POST", route, json=body) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in answer.iter_lines() if line]


def test_json_lines_bring_each_sentence_with_its_words(
    http: httpx.Client, timed: dict[str, Any]
) -> None:
    body = {"text": TEXT, "timestamps": True, "captions": "srt", "stream": True}
    lines = json_lines(http, body, "/synthesize")
    start, *audio, end = lines
    assert start["type"] == "start" and end["type"] == "end"
    sentences = [line for line in audio if "sentence" in line]
    assert [line["sentence"] for line in sentences] == list(range(start["sentences"]))
    assert all(line["type"] == "audio" for line in audio)
    pcm = wav_pcm(b"".join(base64.b64decode(line["audio"]) for line in audio))
    assert pcm == piper_pcm(TEXT)
    assert [w for line in sentences for w in line["words"]] == timed["words"]
    check_cues_match_words(parse_srt(end["captions"]), timed["words"])
    assert "words" not in end and end["duration"] == timed["duration"]


async def test_websocket_words_come_just_before_each_sentences_audio(
    server: ServerProcess, timed: dict[str, Any]
) -> None:
    messages: list[dict[str, Any] | bytes] = []
    async with connect(server.ws_url + "/synthesize/stream", proxy=None, max_size=None) as ws:
        await ws.send(json.dumps({"text": TEXT, "timestamps": True, "captions": "vtt"}))
        while True:
            message = await ws.recv()
            messages.append(message if isinstance(message, bytes) else json.loads(message))
            if isinstance(messages[-1], dict) and messages[-1]["type"] in ("end", "error"):
                break
    start, *middle, end = messages
    assert isinstance(start, dict) and isinstance(end, dict) and end["type"] == "end"
    pairs = list(zip(middle[::2], middle[1::2], strict=True))
    assert len(pairs) == start["sentences"]
    for index, (words, audio) in enumerate(pairs):
        assert isinstance(words, dict) and isinstance(audio, bytes)
        assert words["type"] == "words" and words["sentence"] == index
    assert b"".join(audio for _, audio in pairs) == piper_pcm(TEXT)
    assert [w for words, _ in pairs for w in words["words"]] == timed["words"]
    check_cues_match_words(parse_vtt(end["captions"]), timed["words"])


@pytest.fixture(scope="module")
def sdk(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", timeout=120) as client:
        yield client


@pytest.mark.parametrize("fmt", ["vtt", "srt"])
def test_openai_speech_answers_captions_in_vtt_and_srt(
    sdk: openai.OpenAI, timed: dict[str, Any], fmt: str
) -> None:
    answer = sdk.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input=TEXT,
        response_format=fmt,
    )
    assert answer.response.headers["content-type"].startswith(
        "text/vtt" if fmt == "vtt" else "application/x-subrip"
    )
    parse = parse_vtt if fmt == "vtt" else parse_srt
    check_cues_match_words(parse(answer.content.decode("utf-8")), timed["words"])


def as_native(timestamps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "text": t["word"],
            "start": t["start_time"],
            "end": t["end_time"],
            "char_start": t["char_start"],
            "char_end": t["char_end"],
        }
        for t in timestamps
    ]


def test_openai_captioned_speech_through_the_sdk(sdk: openai.OpenAI, timed: dict[str, Any]) -> None:
    answer = sdk.post(
        "/audio/captioned_speech",
        cast_to=object,
        body={"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"},
    )
    assert isinstance(answer, dict) and answer["audio_format"] == "wav"
    assert wav_pcm(base64.b64decode(answer["audio"])) == piper_pcm(TEXT)
    assert as_native(answer["timestamps"]) == timed["words"]


def test_openai_captioned_speech_streams_a_line_per_sentence(
    http: httpx.Client, timed: dict[str, Any]
) -> None:
    body = {"input": TEXT, "response_format": "wav", "stream": True}
    lines = json_lines(http, body, "/v1/audio/captioned_speech")
    assert len(lines) == timed["sentences"]  # a WAV stream has no tail to send
    assert all(line["audio_format"] == "wav" for line in lines)
    assert wav_pcm(b"".join(base64.b64decode(line["audio"]) for line in lines)) == piper_pcm(TEXT)
    assert as_native([t for line in lines for t in line["timestamps"]]) == timed["words"]


def test_a_voice_that_cannot_time_words_says_so(http: httpx.Client, sdk: openai.OpenAI) -> None:
    refused = http.post(
        "/synthesize", json={"text": "Hi.", "voice": "tiny-single", "captions": "vtt"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "word_timestamps_unavailable"
    assert refused.json()["error"]["param"] == "timestamps"
    listed = {v["name"]: v for v in http.get("/voices").json()["voices"]}
    assert listed["tiny-single"]["word_timestamps"] is False  # loaded by the refused request
    assert listed["en_US-joe-medium"]["word_timestamps"] is True
    assert http.post("/synthesize", json={"text": "Hi.", "voice": "tiny-single"}).status_code == 200
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.speech.create(
            model="tts-1", voice="tiny-single", input="Hi.", response_format="srt"
        )
    assert caught.value.code == "word_timestamps_unavailable"


async def test_the_websocket_refuses_timestamps_such_a_voice_cannot_give(
    server: ServerProcess,
) -> None:
    async with connect(server.ws_url + "/synthesize/stream", proxy=None) as ws:
        await ws.send(json.dumps({"text": "Hi.", "voice": "tiny-single", "timestamps": True}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["status"] == 400
        await ws.send(json.dumps({"text": "Hi.", "voice": "tiny-single"}))  # the socket lives on
        assert json.loads(await ws.recv())["type"] == "start"


def test_a_french_voice_keeps_its_words_in_place(
    start_server: type[ServerProcess], tmp_path: Path
) -> None:
    """A tiny French voice whose durations are known in advance: the last word ends where
    the last sentence's speech ends (its final punctuation, padding and end-of-sentence
    frames and the added silence after it), computed here from Piper's own phonemes."""
    model = write_tiny_voice(tmp_path, "tiny-fr", 1, espeak_voice="fr", alignments=True)
    srv = start_server("--voices-dir", str(tmp_path), "--default-voice", "tiny-fr")
    text = "En 1984, cela coûtait 3,50 €, dit le Dr Dupont.   « Qu'est-ce que c'est ? »"
    body = {"text": text, "timestamps": True, "length_scale": 1.5, "sentence_silence": 0.25}
    answer = httpx.post(f"{srv.base_url}/synthesize", json=body, timeout=60).json()
    words = answer["words"]
    assert [w["text"] for w in words] == [
        "En", "1984", "cela", "coûtait", "3,50", "€", "dit", "le", "Dr", "Dupont",
        "Qu'est-ce", "que", "c'est",
    ]  # fmt: skip
    assert all(text[w["char_start"] : w["char_end"]] == w["text"] for w in words)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
    piper = PiperVoice.load(model)
    last = piper.phonemes_to_ids(piper.phonemize(text)[-1])
    silent = {i for s in "_$ .?!,»«" for i in piper.config.phoneme_id_map.get(s, [])}
    tail = next(k for k in range(len(last) - 1, -1, -1) if last[k] not in silent) + 2
    after = HOP_LENGTH * sum(aligned_frames(last[tail:], 1.5)) + int(0.25 * 16000)
    assert abs(words[-1]["end"] - (answer["duration"] - after / 16000)) <= HOP_LENGTH / 16000
