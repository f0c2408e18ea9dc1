"""The text front-end on every transport of the shared real server (noise 0): SSML and
its marks, inline pauses, clean-up and normalisation, and broken SSML refused in each
protocol's error shape while the server goes on."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from audiocheck import piper_pcm, wav_pcm
from conftest import ServerProcess

RATE = 22050
HOP = 256
MARKED = '<speak>Hello <mark name="here"/>world.</speak>'
BREAK = '<speak>Hello <break time="700ms"/> world.</speak>'


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        yield client


def wyoming_connect(server: ServerProcess) -> AsyncTcpClient:
    assert server.wyoming_port is not None
    return AsyncTcpClient("127.0.0.1", server.wyoming_port, connect_timeout=10, read_timeout=60)


async def wyoming_answer(client: AsyncTcpClient) -> tuple[bytes, Error | None]:
    """The audio of one answer, or the error in its place."""
    pcm = b""
    while True:
        event = await client.read_event()
        assert event is not None, "the server closed the connection"
        if AudioChunk.is_type(event.type):
            pcm += AudioChunk.from_event(event).audio
        elif Error.is_type(event.type):
            return pcm, Error.from_event(event)
        elif event.type == "audio-stop":
            return pcm, None


def zero_run(pcm: bytes) -> int:
    """The longest run of exact zero samples."""
    best = run = 0
    for k in range(0, len(pcm), 2):
        run = run + 1 if pcm[k : k + 2] == b"\0\0" else 0
        best = max(best, run)
    return best


def test_a_break_over_json_is_exact_silence_between_the_words(http: httpx.Client) -> None:
    answer = http.post("/synthesize", json={"text": BREAK, "timestamps": True})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    pcm = wav_pcm(base64.b64decode(body["audio"]))
    assert abs(zero_run(pcm) - 0.7 * RATE) <= HOP
    hello, world = body["words"]
    assert BREAK[hello["char_start"] : hello["char_end"]] == "Hello"
    assert BREAK[world["char_start"] : world["char_end"]] == "world"
    assert world["start"] - hello["end"] >= 0.7


def test_marks_come_with_the_words_in_the_json_answer(http: httpx.Client) -> None:
    body = http.post("/synthesize", json={"text": MARKED, "timestamps": True}).json()
    assert [m["name"] for m in body["marks"]] == ["here"]
    assert body["marks"][0]["time"] == body["words"][1]["start"]
    assert "marks" not in http.post("/synthesize", json={"text": "Hi.", "timestamps": True}).json()


def test_marks_arrive_at_their_word_on_json_lines(http: httpx.Client) -> None:
    body = {"text": MARKED, "timestamps": True, "stream": True}
    with http.stream("POST", "/synthesize", json=body) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    audio = [line for line in lines if line["type"] == "audio" and "sentence" in line]
    marks = [mark for line in audio for mark in line.get("marks", [])]
    words = [word for line in audio for word in line["words"]]
    assert [m["name"] for m in marks] == ["here"]
    assert marks[0]["time"] == next(w["start"] for w in words if w["text"] == "world")


def test_marks_come_with_the_words_on_captioned_speech(http: httpx.Client) -> None:
    """OpenAI-style captioned speech carries word timings: its marks come with them."""
    body = {"input": MARKED, "response_format": "wav"}
    whole = http.post("/v1/audio/captioned_speech", json=body).json()
    assert [m["name"] for m in whole["marks"]] == ["here"]
    world = next(w for w in whole["timestamps"] if w["word"] == "world")
    assert whole["marks"][0]["time"] == world["start_time"]
    with http.stream("POST", "/v1/audio/captioned_speech", json={**body, "stream": True}) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert [m["name"] for line in lines for m in line.get("marks", [])] == ["here"]


async def test_marks_arrive_before_their_audio_on_the_websocket(server: ServerProcess) -> None:
    async with connect(f"{server.ws_url}/synthesize/stream", proxy=None) as ws:
        await ws.send(json.dumps({"text": MARKED, "timestamps": True}))
        messages: list[Any] = []
        while not messages or not isinstance(messages[-1], dict) or messages[-1]["type"] != "end":
            raw = await ws.recv()
            messages.append(json.loads(raw) if isinstance(raw, str) else raw)
    kinds = [m["type"] if isinstance(m, dict) else "audio" for m in messages]
    assert kinds.index("mark") < kinds.index("audio")
    mark = next(m for m in messages if isinstance(m, dict) and m["type"] == "mark")
    words = next(m for m in messages if isinstance(m, dict) and m["type"] == "words")["words"]
    assert mark["name"] == "here"
    assert mark["time"] == next(w["start"] for w in words if w["text"] == "world")


@pytest.mark.parametrize("route", ["/synthesize", "/synthesize/binary"])
def test_broken_ssml_is_a_400_naming_line_and_column(http: httpx.Client, route: str) -> None:
    answer = http.post(route, json={"text": "<speak>\nHello <b>world</speak>"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_ssml" and (error["line"], error["column"]) == (2, 17)
    assert http.post(route, json={"text": "Still here."}).status_code == 200


def test_openai_reads_speak_input_as_ssml_and_refuses_broken_ssml(http: httpx.Client) -> None:
    body = {"model": "tts-1", "input": "<speak>Hello <shout>world</shout>.</speak>"}
    answer = http.post("/v1/audio/speech", json={**body, "response_format": "wav"})
    assert answer.status_code == 200, answer.text
    assert wav_pcm(answer.content) == piper_pcm("Hello world.")
    broken = http.post("/v1/audio/speech", json={**body, "input": "<speak>Hi"})
    assert broken.status_code == 400
    assert "line 1" in broken.json()["error"]["message"]


def test_openai_clean_and_normalize(http: httpx.Client) -> None:
    body = {"model": "tts-1", "input": "**It** is $3.50.", "response_format": "wav"}
    answer = http.post("/v1/audio/speech", json={**body, "clean": True, "normalize": True})
    assert answer.status_code == 200, answer.text
    assert wav_pcm(answer.content) == piper_pcm("It is three dollars, fifty cents.")


def test_native_clean_and_inline_pause(http: httpx.Client) -> None:
    answer = http.post(
        "/synthesize/binary", json={"text": "**Hello** world", "clean": True, "format": "wav"}
    )
    assert wav_pcm(answer.content) == piper_pcm("Hello world")
    paused = http.post(
        "/synthesize/binary", json={"text": "Hi. [pause 1s] There.", "format": "wav"}
    )
    assert abs(zero_run(wav_pcm(paused.content)) - RATE) <= HOP


async def test_wyoming_cleans_and_normalises_by_default(server: ServerProcess) -> None:
    async with wyoming_connect(server) as client:
        await client.write_event(Synthesize(text="**It** is $3.50.").event())
        pcm, error = await wyoming_answer(client)
    assert error is None
    assert pcm == piper_pcm("It is three dollars, fifty cents.")


async def test_wyoming_refuses_broken_ssml_with_an_error(server: ServerProcess) -> None:
    async with wyoming_connect(server) as client:
        await client.write_event(Synthesize(text="<speak>Hi").event())
        _, error = await wyoming_answer(client)
    assert error is not None and "line 1" in error.text


def test_phoneme_and_viseme_timings_on_json_lines(http: httpx.Client) -> None:
    body = {"text": "Hello world. Bye.", "phonemes": True, "timestamps": True, "stream": True}
    with http.stream("POST", "/synthesize", json=body) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    audio = [line for line in lines if line["type"] == "audio" and "sentence" in line]
    phonemes = [p for line in audio for p in line["phonemes"]]
    words = [w for line in audio for w in line["words"]]
    assert all(a["end"] <= b["start"] + 0.001 for a, b in itertools.pairwise(phonemes))
    hello = words[0]
    inside = [p for p in phonemes if hello["start"] <= p["start"] < hello["end"]]
    assert [p["phoneme"] for p in inside][:3] == ["h", "ə", "l"]
    assert {"PP", "nn", "DD"} & {p["viseme"] for p in phonemes}
    end = next(line for line in lines if line["type"] == "end")
    assert phonemes[-1]["end"] <= end["duration"]


async def test_phonemes_on_the_websocket(server: ServerProcess) -> None:
    async with connect(f"{server.ws_url}/synthesize/stream", proxy=None) as ws:
        await ws.send(json.dumps({"text": "Hi there.", "phonemes": True}))
        kinds = []
        while not kinds or kinds[-1] != "end":
            raw = await ws.recv()
            kinds.append(json.loads(raw)["type"] if isinstance(raw, str) else "audio")
            if kinds[-1] == "phonemes":
                message = json.loads(raw)
    assert "words" not in kinds and kinds.index("phonemes") < kinds.index("audio")
    assert message["sentence"] == 0 and message["phonemes"][0]["phoneme"] == "h"


async def test_broken_ssml_on_the_websocket_is_an_error_and_the_socket_goes_on(
    server: ServerProcess,
) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><speak>&b;&b;&b;</speak>'
    )
    async with connect(f"{server.ws_url}/synthesize/stream", proxy=None) as ws:
        await ws.send(json.dumps({"text": bomb}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["status"] == 400
        assert error["error"]["code"] == "invalid_ssml" and "DTD" in error["error"]["message"]
        await ws.send(json.dumps({"text": "Still here."}))
        assert json.loads(await ws.recv())["type"] == "start"


async def test_a_streamed_ssml_document_over_wyoming_is_read_whole(server: ServerProcess) -> None:
    document = '<speak>Hello <break time="700ms"/> world.</speak>'
    async with wyoming_connect(server) as client:
        await client.write_event(SynthesizeStart().event())
        for piece in ("<speak>Hello ", '<break time="700ms"/>', " world.</speak>"):
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(SynthesizeStop().event())
        pcm, error = await wyoming_answer(client)
    assert error is None
    assert abs(zero_run(pcm) - 0.7 * RATE) <= HOP
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        whole = await http.post("/synthesize/binary", json={"text": document, "format": "wav"})
    assert pcm == wav_pcm(whole.content)
