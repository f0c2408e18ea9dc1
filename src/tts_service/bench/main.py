"""`tts-service bench`: one workload, one run, against serial Piper and the real service.

(a) serial: plain `piper.PiperVoice` in this process, onnxruntime on every core, the
    workload's texts one after another: the machine's limit for one caller.
(b-d) the service under the `fifo` (the old one-lock design), `fair` and `round_robin`
    policies: each a real uvicorn server in a subprocess, driven over loopback HTTP.

The machine is usually shared and noisy, so the results are ratios to (a) measured in the
same run, and the targets take turns (round by round, in rotating order) rather than one
after another, so a burst of outside load hits all of them alike. Absolute times are
printed for context only, next to how much CPU other processes took meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tts_service.bench.cache import measure_cache, render_cache
from tts_service.bench.chunk_rows import measure_chunk_rows
from tts_service.bench.cpu import CpuMeter
from tts_service.bench.encoding import measure_encoding
from tts_service.bench.errors import BenchError
from tts_service.bench.frontend_rows import measure_frontend
from tts_service.bench.latency import latency_plan, latency_server, measure_latency
from tts_service.bench.latency_report import LatencyReport, render_latency
from tts_service.bench.loudness import measure_loudness
from tts_service.bench.memory import measure_memory, render_memory, sizing
from tts_service.bench.phases import SERIAL, run_targets
from tts_service.bench.progress import progress
from tts_service.bench.report import BenchReport, render
from tts_service.bench.serial import SerialPiper
from tts_service.bench.servers import ServerConfig, running_servers
from tts_service.bench.streams import run_streams
from tts_service.bench.targets import Target, parse_targets
from tts_service.bench.words import measure_word_cost
from tts_service.bench.workload import Workload, build_workload
from tts_service.config import Settings, available_cores
from tts_service.errors import VoiceNotFound
from tts_service.voices.loaded import VoiceFiles, discover


def _voice_files(settings: Settings) -> VoiceFiles:
    found = discover(settings.voices_dir)
    if settings.default_voice not in found:
        raise VoiceNotFound(
            f"voice '{settings.default_voice}' is not installed", available=sorted(found)
        )
    return found[settings.default_voice]


def _meta(settings: Settings, args: argparse.Namespace, workload: Workload) -> dict[str, Any]:
    texts = [text for requests in workload.throughput_rounds for c in requests for text in c]
    return {
        "command": " ".join(["tts-service", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "machine": {
            "cores": available_cores(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "service": {
            "workers": settings.worker_count,
            "threads_per_worker": settings.threads_per_worker,
            "voice": settings.default_voice,
        },
        "workload": {
            "clients": len(workload.throughput_rounds[0]),
            "throughput_rounds": len(workload.throughput_rounds),
            "throughput_requests": len(texts),
            "throughput_chars": sum(len(text) for text in texts),
            "long_clients": workload.long_clients,
            "long_text_chars": len(workload.long_text),
            "mixed_seconds": workload.mixed_seconds,
            "stream_text_chars": len(workload.stream_text),
        },
    }


def measure(settings: Settings, args: argparse.Namespace, targets: Sequence[Target]) -> BenchReport:
    workload = build_workload(args.quick)
    meta = _meta(settings, args, workload)
    cores = available_cores()
    progress(f"serial Piper with {cores} onnxruntime threads; encoders")
    serial = SerialPiper(_voice_files(settings), threads=cores)
    encode = measure_encoding(
        serial, workload.stream_text, workload.encode_sentences, repeats=1 if args.quick else 3
    )
    progress("word timestamps: the voice with and without durations")
    words = measure_word_cost(
        _voice_files(settings),
        workload.stream_text,
        workload.encode_sentences,
        repeats=1 if args.quick else 3,
        threads=settings.threads_per_worker,  # as the service's workers run it
    )
    progress("loudness: sentences of every length, peak and loudness normalisation")
    loudness = measure_loudness(
        _voice_files(settings), settings.threads_per_worker, settings.loudness_target
    )
    progress("chunked decoding: a 26-word and a 2-word sentence, chunked against whole")
    chunks = measure_chunk_rows(
        _voice_files(settings), settings.threads_per_worker, passes=3 if args.quick else 5
    )
    progress("text front-end: plain, SSML and an LLM's Markdown answer")
    frontend = measure_frontend(_voice_files(settings), runs=1 if args.quick else 3)
    config = ServerConfig(settings.default_voice, settings.voices_dir, Path(args.output).parent)
    meter = CpuMeter(cores)
    sizes = ", ".join(f"{t.name} {t.workers}x{t.threads_per_worker}" for t in targets)
    progress(f"servers: {sizes}")
    meta["targets"] = [vars(target) for target in targets]
    with running_servers(config, targets) as servers:
        meter.pids = [server.proc.pid for server in servers]
        results = asyncio.run(run_targets(workload, serial, servers, meter))
    latency = _latency_phase(settings, args, serial, workload.stream_text)
    meta["cache"] = measure_cache(settings, Path(args.output).parent, args.quick)
    memory = _memory_phase(settings, args) if not getattr(args, "no_memory", False) else None
    meta["machine"]["loadavg_end"] = list(os.getloadavg())
    serial_result = results.pop(SERIAL)
    if memory is not None:
        meta["memory"] = memory[0]
    return BenchReport(
        serial=serial_result,
        policies=results,
        encode_s=encode.encode_s,
        encode_synth_s=encode.synth_s,
        encode_audio_s=encode.audio_s,
        phonemize_s=serial.phonemize_seconds(workload.stream_text),
        meta=meta,
        words=words,
        loudness=loudness,
        chunks=chunks,
        frontend=frontend,
        memory=memory[1] if memory is not None else "",
        latency=latency,
        cache=render_cache(meta["cache"]),
    )


def _latency_phase(
    settings: Settings, args: argparse.Namespace, serial: SerialPiper, stream_text: str
) -> LatencyReport:
    """The latency rows, against a default service of their own."""
    config, target = latency_server(settings, Path(args.output).parent)
    plan = latency_plan(args.quick, stream_text)
    return measure_latency(serial, config, target, plan, available_cores())


def run_latency_only(settings: Settings, args: argparse.Namespace) -> int:
    """`tts-service bench --latency`: only the latency rows, written to bench-latency.json."""
    started = time.monotonic()
    try:
        cores = available_cores()
        progress(f"serial Piper with {cores} onnxruntime threads")
        serial = SerialPiper(_voice_files(settings), threads=cores)
        report = _latency_phase(settings, args, serial, build_workload(args.quick).stream_text)
    except BenchError as error:
        print(f"tts-service bench --latency: {error}", file=sys.stderr)
        return 1
    report.meta.update(
        command=" ".join(["tts-service", *sys.argv[1:]]),
        quick=bool(args.quick),
        bench_seconds=round(time.monotonic() - started, 1),
    )
    output = Path(args.output).with_name("bench-latency.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(render_latency(report))
    print(f"\n{cores} cores; {report.meta['bench_seconds']} s; wrote {output}")
    return 0


def run_cache_only(settings: Settings, args: argparse.Namespace) -> int:
    """`tts-service bench --cache`: only the repeated-phrase rows, to bench-cache.json."""
    started = time.monotonic()
    try:
        report = measure_cache(settings, Path(args.output).parent, args.quick)
    except BenchError as error:
        print(f"tts-service bench --cache: {error}", file=sys.stderr)
        return 1
    report["command"] = " ".join(["tts-service", *sys.argv[1:]])
    report["bench_seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output).with_name("bench-cache.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(render_cache(report))
    print(f"\n{available_cores()} cores; {report['bench_seconds']} s; wrote {output}")
    return 0


def _memory_phase(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The memory rows (memory.py), run after the other servers have stopped."""
    files = _voice_files(settings)
    log_dir = Path(args.output).parent
    serial, service, bursts = measure_memory(files, settings.voices_dir, log_dir, args.quick)
    figures = {"bursts": bursts, "serial": serial.to_dict(), "service": service.to_dict()}
    return figures, render_memory(serial, service, bursts)


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    if getattr(args, "streams", None):
        return run_streams(settings, args)
    if getattr(args, "latency", False):
        return run_latency_only(settings, args)
    if getattr(args, "cache_phase", False):
        return run_cache_only(settings, args)
    if getattr(args, "sizing", False):
        output = Path(args.output).parent
        output.mkdir(parents=True, exist_ok=True)
        print(sizing(_voice_files(settings), settings.voices_dir, output))
        return 0
    try:
        targets = parse_targets(
            getattr(args, "policies", None),
            args.quick,
            settings.worker_count,
            settings.threads_per_worker,
        )
        report = measure(settings, args, targets)
    except BenchError as error:
        print(f"tts-service bench: {error}", file=sys.stderr)
        return 1
    report.meta["bench_seconds"] = round(time.monotonic() - started, 1)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    print(render(report))
    load = report.meta["machine"]
    service = report.meta["service"]
    print(
        f"\nservice: {service['workers']} workers x {service['threads_per_worker']} threads on "
        f"{load['cores']} cores; load average {load['loadavg_start'][0]:.2f} -> "
        f"{load['loadavg_end'][0]:.2f}; {report.meta['bench_seconds']} s; wrote {output}"
    )
    return 0
