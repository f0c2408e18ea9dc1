"""The main bench's phases, every target taking its turn: throughput rounds, the mixed load,
time to first audio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import httpx

from tts_service.bench.client import first_byte, server_clients, synthesize, wait_all_idle
from tts_service.bench.cpu import CpuMeter
from tts_service.bench.loads import mixed_load, throughput_round
from tts_service.bench.progress import progress
from tts_service.bench.results import TargetResult
from tts_service.bench.rounds import Sample, rotation
from tts_service.bench.serial import SerialPiper
from tts_service.bench.servers import Server
from tts_service.bench.workload import Workload

SERIAL = "serial"


async def _throughput_phase(
    workload: Workload,
    serial: SerialPiper,
    clients: dict[str, httpx.AsyncClient],
    results: dict[str, TargetResult],
    meter: CpuMeter,
) -> None:
    """Each round, every target gets the same requests; who goes first rotates."""
    rounds = workload.throughput_rounds
    for round_no, requests in enumerate(rounds):
        progress(f"throughput round {round_no + 1}/{len(rounds)}")
        for name in rotation(list(results), round_no):
            target = results[name]
            await wait_all_idle(clients)
            if name == SERIAL:
                texts = [text for client in requests for text in client]
                work: Awaitable[Sample] = _serial_round(serial, texts)
            else:
                work = throughput_round(clients[name], requests)
            sample, share = await meter.measure(work, target.noise)
            target.rounds.append(Sample(sample.wall_s, sample.audio_s, share))


async def _serial_round(serial: SerialPiper, texts: list[str]) -> Sample:
    started = time.perf_counter()
    audio = await asyncio.to_thread(serial.synthesize_all, texts)
    return Sample(time.perf_counter() - started, audio, None)


async def _first_audio_phase(
    workload: Workload,
    serial: SerialPiper,
    clients: dict[str, httpx.AsyncClient],
    results: dict[str, TargetResult],
) -> None:
    """Each measurement starts with every server idle: a hung-up stream's last sentences
    must not overlap the next target's first one."""
    text = workload.stream_text
    for round_no in range(workload.first_audio_rounds):
        for name in rotation(list(results), round_no):
            target = results[name]
            await wait_all_idle(clients)
            if name == SERIAL:
                target.first_audio_s.append(await asyncio.to_thread(serial.first_audio, text))
                continue
            target.first_audio_s.append(await first_byte(clients[name], text, "wav"))
            await wait_all_idle(clients)
            target.mp3_first_byte_s.append(await first_byte(clients[name], text, "mp3"))
    await wait_all_idle(clients)


async def run_targets(
    workload: Workload, serial: SerialPiper, servers: list[Server], meter: CpuMeter
) -> dict[str, TargetResult]:
    """Every phase for every target; results keyed by "serial" and target names."""
    results = {SERIAL: TargetResult(SERIAL)}
    results.update({server.name: TargetResult(server.name) for server in servers})
    async with server_clients(servers) as clients:
        for client in clients.values():  # a model's first runs allocate: not measured
            await synthesize(client, workload.short_texts[0])
        serial.synthesize_all(workload.short_texts[:1])
        await _throughput_phase(workload, serial, clients, results, meter)
        for name, client in clients.items():
            progress(f"mixed load, {name}")
            target = results[name]
            (latencies, done), _ = await meter.measure(mixed_load(client, workload), target.noise)
            target.short_latencies_s, target.long_requests_done = latencies, done
        progress("time to first audio")
        await _first_audio_phase(workload, serial, clients, results)
    return results
