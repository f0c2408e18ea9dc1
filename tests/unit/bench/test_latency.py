"""The latency rows' pure parts (addresses, plan, ratios, verdicts, rows, JSON) and their
clients against tiny fake servers: each client really leaves from its own address."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import async_read_event, async_write_event
from wyoming.tts import Synthesize

from tts_service.bench.addresses import CAPACITY, Addresses, loopback_address
from tts_service.bench.errors import BenchError
from tts_service.bench.latency import (
    LONG_CLIENTS,
    QUICK_LONG_CLIENTS,
    _until_all_set,
    arrival_offsets,
    latency_plan,
)
from tts_service.bench.latency_clients import HttpClients, WyomingClients
from tts_service.bench.latency_report import (
    LatencyReport,
    ShortUnderLoad,
    TransportLatency,
    latency_rows,
    render_latency,
)
from tts_service.bench.report import BenchReport, render
from tts_service.bench.results import TargetResult
from tts_service.bench.servers import ServerConfig, serve_command
from tts_service.bench.targets import Target
from tts_service.bench.texts import make_text

# ------------------------------------------------------------------ addresses


def test_client_addresses_start_after_the_bench_own_and_skip_0_and_255() -> None:
    assert loopback_address(0) == "127.0.0.2"
    assert loopback_address(252) == "127.0.0.254"
    assert loopback_address(253) == "127.0.1.1"
    assert loopback_address(CAPACITY - 1) == "127.255.255.254"
    addresses = [loopback_address(i) for i in range(3000)]
    assert len(set(addresses)) == 3000
    assert all(a.startswith("127.") for a in addresses)
    assert not any(a.endswith((".0", ".255")) or a == "127.0.0.1" for a in addresses)


@pytest.mark.parametrize("index", [-1, CAPACITY])
def test_client_address_index_out_of_range(index: int) -> None:
    with pytest.raises(ValueError):
        loopback_address(index)


def test_each_address_is_handed_out_once() -> None:
    addresses = Addresses()
    first = addresses.take()
    many = addresses.take_many(40)
    assert first == "127.0.0.2" and many[0] == "127.0.0.3"
    assert len({first, *many}) == 41 and addresses.taken == 41


# ------------------------------------------------------------------ plan


def test_shorts_arrive_evenly_within_the_spread() -> None:
    assert arrival_offsets(8, 1.0) == pytest.approx([k / 8 for k in range(8)])
    assert arrival_offsets(1, 1.0) == [0.0]


@pytest.mark.parametrize("quick", [False, True])
def test_latency_plan(quick: bool) -> None:
    stream = make_text(20, seed=8)
    plan = latency_plan(quick, stream)
    assert plan.long_clients == (QUICK_LONG_CLIENTS if quick else LONG_CLIENTS)
    assert LONG_CLIENTS == (1, 4, 12, 32)
    assert plan.long_text.count(".") + plan.long_text.count("?") >= 20
    assert plan.stream_text == stream
    assert plan.short_text.count(".") == 1 and plan.short_text.endswith(".")
    assert plan.shorts == 8 and plan.shorts_within_s == 1.0 and plan.idle_s == 3.0
    assert plan.idle_samples == (1 if quick else 3)


def test_the_latency_server_speaks_wyoming_with_its_own_admission(tmp_path: Path) -> None:
    config = ServerConfig("voice", [tmp_path], tmp_path, admission=(), wyoming=True)
    command = serve_command(config, Target("latency", "fair", 2, 1), 8000, 10300)
    assert command[command.index("--wyoming-uri") + 1] == "tcp://127.0.0.1:10300"
    assert "--request-timeout" not in command and "--max-queued-requests" not in command
    plain = serve_command(ServerConfig("voice", [tmp_path], tmp_path), Target("f", "fair", 2, 1), 1)
    assert "--wyoming-uri" not in plain


# ------------------------------------------------------------------ figures and rows


def make_latency() -> LatencyReport:
    http = TransportLatency("HTTP", alone_s=[0.1, 0.08, 0.09])  # median 0.09
    http.loads[1] = ShortUnderLoad(1, [0.1] * 7 + [0.135])  # p95 of 8 = the 8th: 0.135
    http.loads[32] = ShortUnderLoad(32, [0.2] * 7 + [0.5])
    wyoming = TransportLatency("Wyoming", alone_s=[0.1])
    wyoming.loads[1] = ShortUnderLoad(1, [0.1] * 7, refused=1)
    return LatencyReport(
        [http, wyoming],
        idle_s=3.0,
        first_audio_s=[0.3, 0.2, 0.25],
        piper_first_audio_s=[0.25, 0.3, 0.2],
        sentence_s=[0.12],
        piper_sentence_s=[0.1],
        noise=0.25,
        meta={"service": {"workers": 2, "threads_per_worker": 1}},
    )


def test_short_p95_is_a_ratio_to_the_request_alone() -> None:
    http, wyoming = make_latency().transports
    assert http.alone == pytest.approx(0.09)
    assert http.ratio(1) == pytest.approx(1.5)
    assert http.verdict(1) == "PASS"
    assert http.ratio(32) == pytest.approx(0.5 / 0.09)
    assert http.verdict(32) == "MISS"
    assert wyoming.ratio(1) == pytest.approx(1.0)
    assert wyoming.verdict(1) == "MISS"  # a refused short request is never within the goal


def test_idle_rows_are_ratios_of_medians_to_piper() -> None:
    report = make_latency()
    assert report.first_audio_ratio == pytest.approx(1.0)
    assert report.sentence_ratio == pytest.approx(1.2)
    empty = LatencyReport([], idle_s=3.0)
    assert empty.first_audio_ratio is None and empty.sentence_ratio is None


def test_latency_goals() -> None:
    verdicts = {goal["name"]: goal["verdict"] for goal in make_latency().goals()}
    assert verdicts == {
        "short p95 beside 1 long / alone, HTTP": "PASS",
        "short p95 beside 32 long / alone, HTTP": "MISS",
        "short p95 beside 1 long / alone, Wyoming": "MISS",
        "first audio after 3 s idle / Piper": "PASS",  # 1.0x meets <= 1.0x
        "one sentence after 3 s idle / Piper": "MISS",  # 1.2x > 1.15x
    }
    goals = {goal["name"]: goal["goal"] for goal in make_latency().goals()}
    assert goals["short p95 beside 1 long / alone, HTTP"] == "<= 2.00x"
    assert goals["one sentence after 3 s idle / Piper"] == "<= 1.15x"


def test_latency_rows_show_samples_times_ratios_and_verdicts() -> None:
    rows = {row[0].strip(): row[1:] for row in latency_rows(make_latency())}
    assert rows["HTTP: short alone, idle"] == ["3", "0.090 s", "", "", ""]
    assert rows["short p95 beside 1 long client(s)"] == [
        "8",
        "0.135 s",
        "0.090 s",
        "1.50x PASS",
        "<= 2.00x",
    ]
    assert rows["short p95 beside 1 long connection(s)"][:2] == ["7 (1 refused)", "0.100 s"]
    assert rows["short p95 beside 1 long connection(s)"][3] == "1.00x MISS"
    assert rows["first audio, 20 sentences, after 3 s idle"][3:] == ["1.00x PASS", "<= 1.00x"]
    assert rows["one sentence, after 3 s idle"][3:] == ["1.20x MISS", "<= 1.15x"]
    assert rows["other processes' CPU (noise)"][1] == "25%"
    text = render_latency(make_latency())
    assert text.splitlines()[0].startswith("latency (fair, 2 x 1, defaults)")


def test_latency_json_has_every_figure() -> None:
    figures = json.loads(json.dumps(make_latency().to_dict()))
    http = figures["transports"]["HTTP"]
    assert http["alone_median_s"] == pytest.approx(0.09)
    assert http["by_long_clients"]["1"]["ratio_to_alone"] == pytest.approx(1.5)
    assert http["by_long_clients"]["32"]["verdict"] == "MISS"
    assert figures["transports"]["Wyoming"]["by_long_clients"]["1"]["refused"] == 1
    assert figures["sentence_ratio"] == pytest.approx(1.2)
    assert len(figures["goals"]) == 5


# ------------------------------------------------------------------ waiting for the load


async def test_a_long_client_that_fails_ends_the_wait() -> None:
    async def broken() -> None:
        raise BenchError("refused")

    task = asyncio.create_task(broken())
    with pytest.raises(BenchError, match="refused"):
        await _until_all_set([asyncio.Event()], [task])


async def test_the_wait_ends_once_every_long_client_has_audio() -> None:
    events = [asyncio.Event(), asyncio.Event()]
    forever = asyncio.create_task(asyncio.sleep(3600))
    asyncio.get_running_loop().call_later(0.01, events[0].set)
    asyncio.get_running_loop().call_later(0.02, events[1].set)
    await _until_all_set(events, [forever])
    forever.cancel()


# ------------------------------------------------------------------ the clients, really bound

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[tuple[int, list[str]]]:
    """A TCP server on 127.0.0.1 noting each connection's remote address."""
    peers: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], peers


def http_answer(status: str, body: bytes) -> Handler:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    return answer


async def test_an_http_short_request_comes_from_its_own_address() -> None:
    async with fake_server(http_answer("200 OK", bytes(100))) as (port, peers):
        elapsed = await HttpClients(f"http://127.0.0.1:{port}").short_request("127.0.0.9", "Hi.")
    assert elapsed is not None and elapsed > 0
    assert peers == ["127.0.0.9"]


async def test_an_http_refusal_is_counted_not_timed() -> None:
    async with fake_server(http_answer("503 Service Unavailable", b"{}")) as (port, _):
        assert (
            await HttpClients(f"http://127.0.0.1:{port}").short_request("127.0.0.9", "Hi.") is None
        )
    async with fake_server(http_answer("500 Internal Server Error", b"{}")) as (port, _):
        with pytest.raises(BenchError):
            await HttpClients(f"http://127.0.0.1:{port}").short_request("127.0.0.9", "Hi.")


def wyoming_answer(refuse: bool) -> Handler:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        event = await async_read_event(reader)
        assert event is not None and Synthesize.is_type(event.type)
        if refuse:
            await async_write_event(Error(text="busy", code="busy").event(), writer)
            return
        await async_write_event(AudioStart(rate=22050, width=2, channels=1).event(), writer)
        chunk = AudioChunk(rate=22050, width=2, channels=1, audio=bytes(200))
        await async_write_event(chunk.event(), writer)
        await async_write_event(AudioStop().event(), writer)

    return answer


async def test_a_wyoming_short_request_is_timed_to_audio_stop_from_its_own_address() -> None:
    async with fake_server(wyoming_answer(refuse=False)) as (port, peers):
        elapsed = await WyomingClients(port).short_request("127.0.0.11", "Hi.")
    assert elapsed is not None and elapsed > 0
    assert peers == ["127.0.0.11"]


async def test_a_wyoming_error_is_a_refusal() -> None:
    async with fake_server(wyoming_answer(refuse=True)) as (port, _):
        assert await WyomingClients(port).short_request("127.0.0.12", "Hi.") is None


def test_the_main_report_carries_the_latency_rows() -> None:
    report = BenchReport(
        serial=TargetResult("serial"),
        policies={"fair": TargetResult("fair")},
        encode_s={},
        encode_synth_s=1.0,
        encode_audio_s=1.0,
        phonemize_s=0.0,
        meta={},
        latency=make_latency(),
    )
    names = [goal["name"] for goal in report.goals()]
    assert names[-5:] == [goal["name"] for goal in make_latency().goals()]
    figures = json.loads(json.dumps(report.to_dict()))
    assert figures["latency"]["sentence_ratio"] == pytest.approx(1.2)
    assert render_latency(make_latency()) in render(report)
    report.latency = None
    assert report.to_dict()["latency"] is None
    assert "latency (fair" not in render(report)
