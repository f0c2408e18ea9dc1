"""The Wyoming endpoint, driven by the `wyoming` library's own client against the shared real
server (real voice, noise 0), compared byte for byte with the HTTP endpoint's audio."""

from __future__ import annotations

import asyncio
import io
import time
import wave
from dataclasses import dataclass, field

import httpx
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, Eventable
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from audiocheck import eventually, sentences
from conftest import ServerProcess

JOE = "en_US-joe-medium"
JOE_RATE = 22050
TINY_RATE = 16000
SAMPLES_PER_CHUNK = 1024
READ_TIMEOUT = 60.0  # per event: generous, the CPU is shared with other test runs


@dataclass
class Answer:
    """What the server sent back for one request."""

    types: list[str] = field(default_factory=list)
    start: AudioStart | None = None
    chunks: list[AudioChunk] = field(default_factory=list)
    error: Error | None = None

    @property
    def pcm(self) -> bytes:
        return b"".join(chunk.audio for chunk in self.chunks)


def connect(server: ServerProcess) -> AsyncTcpClient:
    assert server.wyoming_port is not None
    return AsyncTcpClient(
        "127.0.0.1", server.wyoming_port, connect_timeout=10, read_timeout=READ_TIMEOUT
    )


async def next_event(client: AsyncTcpClient) -> Event:
    event = await client.read_event()
    assert event is not None, "the server closed the connection"
    return event


async def read_answer(client: AsyncTcpClient, *ends: str) -> Answer:
    """Read events until one of `ends` (default: audio-stop or error)."""
    ends = ends or ("audio-stop", "error")
    answer = Answer()
    while True:
        event = await next_event(client)
        answer.types.append(event.type)
        if AudioStart.is_type(event.type):
            answer.start = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            answer.chunks.append(AudioChunk.from_event(event))
        elif Error.is_type(event.type):
            answer.error = Error.from_event(event)
        if event.type in ends:
            return answer


def http_reference(
    server: ServerProcess, text: str, voice: str | None = None, speaker: str | None = None
) -> tuple[int, bytes]:
    """(sample rate, PCM) of the same text from the HTTP endpoint."""
    body: dict[str, object] = {"text": text, "format": "wav"}
    if voice:
        body["voice"] = voice
    if speaker:
        body["speaker"] = speaker
    response = httpx.post(f"{server.base_url}/synthesize/binary", json=body, timeout=120)
    assert response.status_code == 200, response.text
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getsampwidth(), wav.getnchannels()) == (2, 1)
        return wav.getframerate(), wav.readframes(wav.getnframes())


def assert_audio(answer: Answer, rate: int, reference: bytes) -> None:
    assert answer.error is None, answer.error
    assert answer.start is not None
    assert (answer.start.rate, answer.start.width, answer.start.channels) == (rate, 2, 1)
    assert answer.chunks, "no audio"
    for chunk in answer.chunks:
        assert (chunk.rate, chunk.width, chunk.channels) == (rate, 2, 1)
        assert 0 < chunk.samples <= SAMPLES_PER_CHUNK
    assert answer.pcm == reference


def health(server: ServerProcess) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{server.base_url}/health", timeout=10).json()
    return body


async def test_describe_lists_voices_as_one_streaming_tts_program(server: ServerProcess) -> None:
    async with connect(server) as client:
        await client.write_event(Describe().event())
        event = await next_event(client)
        assert Info.is_type(event.type)
        info = Info.from_event(event)

        await client.write_event(Ping(text="still there?").event())
        pong = await next_event(client)
        assert Pong.is_type(pong.type) and Pong.from_event(pong).text == "still there?"

    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.installed and program.supports_synthesize_streaming
    assert program.version and program.attribution.url
    voices = {voice.name: voice for voice in program.voices}
    assert {JOE, "tiny-multi", "tiny-single"} <= set(voices)
    for voice in voices.values():
        assert voice.installed and voice.languages == ["en_US"]
        assert voice.attribution.name and voice.description
    assert voices[JOE].speakers is None
    assert [s.name for s in voices["tiny-multi"].speakers or []] == ["alice", "bob", "carol"]


async def test_synthesize_equals_http_audio_byte_for_byte(server: ServerProcess) -> None:
    text = "Hello from the Wyoming side. This sentence is a little longer than the first one."
    rate, reference = http_reference(server, text)
    tiny_rate, tiny_reference = http_reference(server, "Bob speaks.", "tiny-multi", "bob")
    assert (rate, tiny_rate) == (JOE_RATE, TINY_RATE)

    async with connect(server) as client:
        await client.write_event(Synthesize(text=text).event())  # no voice: the default
        answer = await read_answer(client)
        voice = SynthesizeVoice(name="tiny-multi", speaker="bob")
        await client.write_event(Synthesize(text="Bob speaks.", voice=voice).event())
        tiny = await read_answer(client)

    assert_audio(answer, JOE_RATE, reference)
    assert len(answer.chunks) > 2  # a sentence is sent in pieces, not as one event
    assert answer.types[0] == "audio-start" and answer.types[-1] == "audio-stop"
    assert_audio(tiny, TINY_RATE, tiny_reference)


async def test_streamed_text_is_spoken_before_the_text_ends(server: ServerProcess) -> None:
    first = "The first sentence is spoken at once. "
    rest = ["And the rest of the text", " arrives later."]
    whole = first + "".join(rest)
    _, reference = http_reference(server, whole)
    _, after_reference = http_reference(server, "Still here.")

    async with connect(server) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=JOE)).event())
        await client.write_event(SynthesizeChunk(text=first).event())
        # The rest is only sent once audio has come back: this waits (up to the read
        # timeout) for audio of a text whose end the server has not seen yet.
        early = await read_answer(client, "audio-chunk", "error", "synthesize-stopped")
        assert early.types == ["audio-start", "audio-chunk"], early.types
        for piece in rest:
            await client.write_event(SynthesizeChunk(text=piece).event())
        # What Home Assistant sends for servers without streaming: must not be spoken again.
        await client.write_event(Synthesize(text=whole, voice=SynthesizeVoice(name=JOE)).event())
        await client.write_event(SynthesizeStop().event())
        late = await read_answer(client, "synthesize-stopped", "error")

        # The connection serves a plain request next, which is not ignored.
        await client.write_event(Synthesize(text="Still here.").event())
        after = await read_answer(client)

    assert late.error is None
    assert late.types.count("audio-start") == 0 and late.types.count("audio-stop") == 1
    assert late.types[-2:] == ["audio-stop", "synthesize-stopped"]
    streamed = Answer(["audio-start"], early.start, early.chunks + late.chunks)
    assert_audio(streamed, JOE_RATE, reference)
    assert_audio(after, JOE_RATE, after_reference)


async def _wyoming_speak(
    server: ServerProcess, text: str, voice: SynthesizeVoice | None, streamed: bool
) -> Answer:
    async with connect(server) as client:
        if not streamed:
            await client.write_event(Synthesize(text=text, voice=voice).event())
            return await read_answer(client)
        await client.write_event(SynthesizeStart(voice=voice).event())
        for word in text.split(" "):
            await client.write_event(SynthesizeChunk(text=word + " ").event())
        await client.write_event(SynthesizeStop().event())
        return await read_answer(client, "synthesize-stopped", "error")


async def _http_speak(client: httpx.AsyncClient, server: ServerProcess, text: str) -> bytes:
    body = {"text": text, "format": "wav"}
    response = await client.post(f"{server.base_url}/synthesize/binary", json=body)
    assert response.status_code == 200, response.text
    with wave.open(io.BytesIO(response.content)) as wav:
        return wav.readframes(wav.getnframes())


async def test_wyoming_and_http_clients_at_once_all_get_their_audio(
    server: ServerProcess,
) -> None:
    wyoming_requests = [
        ("One satellite asks for the weather. It is sunny.", None, False),
        ("Another one wants the lights off.", SynthesizeVoice(name=JOE), True),
        ("Carol answers.", SynthesizeVoice(name="tiny-multi", speaker="carol"), False),
        ("Alone here.", SynthesizeVoice(name="tiny-single"), True),
    ]
    http_texts = ["The browser reads a page aloud.", "A second web client joins in."]
    references = [
        http_reference(server, text, *((voice.name, voice.speaker) if voice else ()))
        for text, voice, _ in wyoming_requests
    ]
    http_references = [http_reference(server, text)[1] for text in http_texts]

    async with httpx.AsyncClient(timeout=120) as http:
        results = await asyncio.gather(
            *(_wyoming_speak(server, *request) for request in wyoming_requests),
            *(_http_speak(http, server, text) for text in http_texts),
        )

    wyoming_answers = results[: len(wyoming_requests)]
    for answer, (rate, reference) in zip(wyoming_answers, references, strict=True):
        assert isinstance(answer, Answer)
        assert_audio(answer, rate, reference)
    assert list(results[len(wyoming_requests) :]) == http_references


HOME_ASSISTANT_READ_TIMEOUT = 10.0
"""Well below every server timeout (idle and stall: 30 s): a server that leaves the client
waiting makes `read_event` time out instead of ending the loop."""


async def home_assistant_reads(client: AsyncTcpClient) -> list[str]:
    """Home Assistant's loop: read events until audio-stop, synthesize-stopped or the end of
    the connection ("EOF"), ignoring `error` (shown here as "error:CODE")."""
    types: list[str] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), HOME_ASSISTANT_READ_TIMEOUT)
        if event is None:
            return [*types, "EOF"]
        if Error.is_type(event.type):
            types.append(f"error:{Error.from_event(event).code}")
        else:
            types.append(event.type)
        if event.type in ("audio-stop", "synthesize-stopped"):
            return types


async def end_of_connection(client: AsyncTcpClient) -> bool:
    event = await asyncio.wait_for(client.read_event(), HOME_ASSISTANT_READ_TIMEOUT)
    return event is None


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")).event(), "voice_not_found"),
        (
            Synthesize(text="Hi.", voice=SynthesizeVoice(name="tiny-multi", speaker="zed")).event(),
            "invalid_speaker",
        ),
        (Synthesize(text="   ").event(), "validation_error"),
        (Event("synthesize", {"voice": {"name": JOE}}), "invalid_request"),  # no text
        (Event("synthesize", {"text": "Hi.", "voice": JOE}), "invalid_request"),  # not an object
        (SynthesizeChunk(text="No stream was started.").event(), "invalid_request"),
        (SynthesizeStop().event(), "invalid_request"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.type,
)
async def test_an_error_ends_the_connection_so_home_assistant_stops_waiting(
    server: ServerProcess, event: Event, code: str
) -> None:
    async with connect(server) as client:
        await client.write_event(event)
        assert await home_assistant_reads(client) == [f"error:{code}", "EOF"]


async def test_a_stream_for_an_unknown_voice_is_told_stopped_and_closed_at_once(
    server: ServerProcess,
) -> None:
    """No synthesize-stop is sent: the answer must not wait for one."""
    async with connect(server) as client:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
        assert await home_assistant_reads(client) == [
            "error:voice_not_found",
            "synthesize-stopped",
        ]
        assert await end_of_connection(client)


@pytest.mark.parametrize(
    "events",
    [
        [SynthesizeChunk(text="a" * 20_001)],  # past the text limit, no sentence spoken yet
        [SynthesizeChunk(text="First words. But then "), SynthesizeChunk(text="a" * 20_001)],
        [SynthesizeStart()],  # a second start inside an open stream
    ],
    ids=["too-long", "too-long-after-audio", "start-inside-stream"],
)
async def test_a_failing_stream_is_told_stopped_and_closed(
    server: ServerProcess, events: list[Eventable]
) -> None:
    async with connect(server) as client:
        await client.write_event(SynthesizeStart().event())
        for event in events:
            await client.write_event(event.event())
        types = await home_assistant_reads(client)
        assert await end_of_connection(client)
    assert types[-1] == "synthesize-stopped", types
    assert types[-2] in ("error:text_too_long", "error:invalid_request"), types
    assert "audio-stop" not in types


async def test_an_error_cancels_the_other_requests_of_its_connection(
    server: ServerProcess,
) -> None:
    before = health(server)["totals"]
    assert isinstance(before, dict)
    async with connect(server) as client:
        await client.write_event(Synthesize(text=sentences(40)).event())
        await client.write_event(Describe().event())
        await client.write_event(Synthesize(text="Hi.", voice=SynthesizeVoice(name="x")).event())
        types = await home_assistant_reads(client)
        while types[-1] != "EOF":  # the first answer's audio-stop must not come
            types += await home_assistant_reads(client)

    assert types[-2:] == ["error:voice_not_found", "EOF"], types
    assert "audio-stop" not in types and "info" not in types

    async def cancelled() -> bool:
        now = health(server)
        totals = now["totals"]
        assert isinstance(totals, dict)
        return bool(totals["cancelled"] > before["cancelled"] and now["queued_sentences"] == 0)

    await eventually(cancelled, 30, "the long request was cancelled")


async def test_an_empty_stream_is_answered_with_silence_and_the_connection_goes_on(
    server: ServerProcess,
) -> None:
    _, reference = http_reference(server, "All good.")
    async with connect(server) as client:
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="   ").event())
        await client.write_event(SynthesizeStop().event())
        empty = await read_answer(client, "synthesize-stopped", "error")
        assert empty.types == ["audio-start", "audio-stop", "synthesize-stopped"]

        await client.write_event(Synthesize(text="All good.").event())
        good = await read_answer(client)
    assert_audio(good, JOE_RATE, reference)
    assert health(server)["status"] == "ok"


async def test_a_client_that_hangs_up_cancels_its_work(server: ServerProcess) -> None:
    sentences = 40
    text = " ".join(f"This is sentence number {n} of a long answer." for n in range(sentences))
    before = health(server)
    totals_before = before["totals"]
    assert isinstance(totals_before, dict)

    client = connect(server)
    await client.connect()
    await client.write_event(Synthesize(text=text).event())
    first = await read_answer(client, "audio-chunk", "error")
    assert first.types == ["audio-start", "audio-chunk"]
    await client.disconnect()

    deadline = time.monotonic() + 30
    while True:
        now = health(server)
        totals = now["totals"]
        assert isinstance(totals, dict)
        if totals["cancelled"] > totals_before["cancelled"] and now["queued_sentences"] == 0:
            break
        assert time.monotonic() < deadline, f"never cancelled: {now}"
        await asyncio.sleep(0.05)
    assert totals["completed"] == totals_before["completed"]
    assert totals["sentences"] - totals_before["sentences"] < sentences


async def test_an_open_stream_is_cancelled_when_its_client_hangs_up(server: ServerProcess) -> None:
    """Nothing is being written to this client, so only reading can notice it left."""
    before = health(server)["totals"]
    assert isinstance(before, dict)
    client = connect(server)
    await client.connect()
    await client.write_event(SynthesizeStart().event())
    await client.write_event(
        SynthesizeChunk(text="A first sentence. And an unfinished one with no end").event()
    )
    await client.disconnect()

    deadline = time.monotonic() + 30
    while True:
        now = health(server)
        totals = now["totals"]
        assert isinstance(totals, dict)
        if totals["cancelled"] > before["cancelled"]:
            break
        assert time.monotonic() < deadline, f"never cancelled: {now}"
        await asyncio.sleep(0.05)
    assert now["active_requests"] == now["queued_requests"] == 0
