"""`tts-service serve | say | voices [download | catalog | refresh-catalog] | bench`.
Flags override `TTS_*` environment variables."""

from __future__ import annotations

import argparse
import asyncio
import sys
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tts_service.config import ZEROCONF_DEFAULT_NAME, RaySettings, Settings
from tts_service.errors import InvalidRequest, ServiceError
from tts_service.logs import setup_logging
from tts_service.voices.cli import add_voice_commands, run_voices

if TYPE_CHECKING:
    from tts_service.engine.words import Word
    from tts_service.service import Admitted, TTSService


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 to expose)")
    parser.add_argument("--port", type=int, help="port (default 3002)")
    _voice_flags(parser)
    parser.add_argument("--cores", type=int, help="CPUs to plan for (default: detected)")
    parser.add_argument(
        "--memory-budget", help="most memory for loaded voices, e.g. 600M or 1.5G (default: none)"
    )
    parser.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="answer a sentence said again from memory (default on)",
    )
    parser.add_argument("--cache-budget", help="most memory for the audio cache (default 32M)")
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        help="where voices run (default cpu; cuda needs the gpu extra; auto: cuda if it works)",
    )
    parser.add_argument("--workers", type=int, help="inference threads (default cores/threads)")
    parser.add_argument("--threads-per-worker", type=int, help="onnxruntime threads per run")
    parser.add_argument(
        "--solo-first-sentence",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="first sentence on all cores when idle (default: on if threads < cores)",
    )
    parser.add_argument("--policy", choices=["fair", "round_robin", "fifo"])
    parser.add_argument(
        "--express-lane",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a new request's short first sentence starts at once when every worker is busy "
        "(default on)",
    )
    parser.add_argument(
        "--worker-nice", type=int, help="how much lower the workers' CPU priority is (default 5)"
    )
    parser.add_argument(
        "--batch-size", type=int, help="sentences per model run, for GPUs (default 1: off)"
    )
    parser.add_argument(
        "--batch-wait-ms", type=float, help="most a batch waits for company (default 5)"
    )
    parser.add_argument("--max-queued-requests", type=int)
    parser.add_argument("--max-queued-sentences", type=int)
    parser.add_argument("--request-timeout", type=float, help="max queue wait, seconds")
    parser.add_argument("--drain-seconds", type=float)
    parser.add_argument("--max-text-chars", type=int)
    parser.add_argument("--max-body-bytes", type=int)
    parser.add_argument("--max-audio-seconds", type=float, help="most audio per request")
    parser.add_argument("--max-client-requests", type=int, help="requests one client may hold")
    parser.add_argument("--idle-timeout", type=float, help="close silent streams, seconds")
    parser.add_argument("--stall-timeout", type=float, help="cut off non-reading clients")
    parser.add_argument("--noise-scale", type=float, help="server default noise scale")
    parser.add_argument("--noise-w-scale", type=float, help="server default noise width")
    parser.add_argument(
        "--normalization",
        choices=["loudness", "peak"],
        help="loudness (default): every sentence at --loudness-target; peak: Piper's own",
    )
    parser.add_argument("--loudness-target", type=float, help="LUFS, default -18")
    parser.add_argument(
        "--word-timestamps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="voices report word timings for timestamps and captions (default: on)",
    )
    parser.add_argument(
        "--chunked-decoding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="split voices' graphs to decode sentences in chunks (default: on)",
    )
    parser.add_argument("--api-key", action="append", help="require this bearer key (repeatable)")
    parser.add_argument("--cors-origin", dest="cors_origins", action="append")
    parser.add_argument(
        "--allowed-host", dest="allowed_hosts", action="append", help="extra Host name"
    )
    parser.add_argument("--log-level")
    parser.add_argument("--log-json", action="store_true", default=None)
    parser.add_argument("--no-ui", dest="ui", action="store_false", default=None)
    parser.add_argument("--wyoming-uri", help="also serve Wyoming, e.g. tcp://127.0.0.1:10200")
    parser.add_argument(
        "--zeroconf",
        nargs="?",
        const=ZEROCONF_DEFAULT_NAME,
        metavar="NAME",
        help=f"announce Wyoming on the local network (default name {ZEROCONF_DEFAULT_NAME})",
    )
    _catalog_flags(parser)
    _ray_flags(parser)


def _catalog_flags(parser: argparse.ArgumentParser) -> None:
    """Where published voices come from and when they are fetched."""
    parser.add_argument("--catalog", type=Path, help="the published voice list to use")
    parser.add_argument("--voices-url", help="base URL of the voice repository (or a mirror)")
    parser.add_argument(
        "--download-missing",
        action="store_true",
        default=None,
        help="download a published voice a request names that is not installed",
    )
    parser.add_argument(
        "--voice-downloads",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="POST /voices/{name}/download (default: on when an API key is set)",
    )
    parser.add_argument(
        "--rescan-interval", type=float, help="least seconds between voice folder scans"
    )


RAY_FLAGS = {  # flag -> RaySettings field (the rest: TTS_RAY_* environment variables)
    "--ray-address": ("address", str, "Ray cluster to join (default: start a local Ray)"),
    "--ray-num-cpus": ("num_cpus", int, "CPUs of the local Ray (default: cores)"),
    "--ray-cpus-per-replica": ("cpus_per_replica", int, "CPUs (and workers) per replica"),
    "--ray-min-replicas": ("min_replicas", int, "fewest replicas (default 1)"),
    "--ray-max-replicas": ("max_replicas", int, "most replicas (default: CPUs / per replica)"),
    "--ray-initial-replicas": ("initial_replicas", int, "replicas at start"),
    "--ray-max-queued-requests": ("max_queued_requests", int, "queue at the proxy; past it 503"),
}


def _ray_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray", action="store_true", help="run on Ray Serve (needs tts-service[ray])"
    )
    for flag, (field, kind, text) in RAY_FLAGS.items():
        parser.add_argument(flag, dest=f"ray_{field}", type=kind, help=text)


def ray_settings_from(args: argparse.Namespace) -> RaySettings:
    """`RaySettings` from the environment, then the `--ray-*` flags that were given."""
    fields = (field for field, _, _ in RAY_FLAGS.values())
    given = {f: getattr(args, f"ray_{f}") for f in fields if getattr(args, f"ray_{f}") is not None}
    return RaySettings(**given)


def _voice_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voices-dir", action="append", type=Path, help="voice folder")
    parser.add_argument("--default-voice", help="voice used when a request names none")
    parser.add_argument(
        "--download-dir", type=Path, help="where downloaded voices go (also a voice folder)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tts-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    _serve_flags(commands.add_parser("serve", help="run the HTTP server"))

    say = commands.add_parser("say", help="synthesize offline, no server")
    say.add_argument("text", help="text to speak ('-' reads standard input)")
    say.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    say.add_argument("--voice")
    say.add_argument("--speaker")
    say.add_argument("--length-scale", type=float)
    say.add_argument("--noise-scale", type=float)
    say.add_argument("--noise-w-scale", type=float)
    say.add_argument("--volume", type=float)
    say.add_argument("--sentence-silence", type=float)
    say.add_argument(
        "--normalization",
        choices=["loudness", "peak"],
        help="loudness (default): even loudness across sentences; peak: Piper's own",
    )
    say.add_argument(
        "--ssml",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the text is SSML (default: when it starts with <speak>)",
    )
    say.add_argument("--clean", action="store_true", help="drop Markdown, emoji and symbols")
    say.add_argument(
        "--normalize", action="store_true", help="spell out money, times, dates, units"
    )
    say.add_argument(
        "--captions", type=Path, help="also write captions: NAME.vtt (WebVTT) or NAME.srt"
    )
    _voice_flags(say)

    voices = commands.add_parser(
        "voices", help="list installed voices; download, list or refresh published ones"
    )
    _voice_flags(voices)
    add_voice_commands(voices)

    bench = commands.add_parser("bench", help="measure serial Piper vs fifo vs fair")
    bench.add_argument("--quick", action="store_true", help="smaller workload")
    bench.add_argument(
        "--ray", action="store_true", help="the Ray Serve path against the direct server"
    )
    bench.add_argument("--output", type=Path, default=Path("bench-results/bench.json"))
    bench.add_argument(
        "--no-memory", action="store_true", help="skip the memory rows (RSS, soak, start-up)"
    )
    bench.add_argument(
        "--sizing", action="store_true", help="only the sizing table: cores, workers, voices"
    )
    bench.add_argument(
        "--streams",
        metavar="N,N,...",
        help="only the concurrency sweep: throughput and first audio with N concurrent "
        "streams each, e.g. 1,8,32,128 (default targets fair:cpu,fair:cuda,fair:cuda+b8)",
    )
    bench.add_argument(
        "--latency",
        action="store_true",
        help="only the latency rows: a short request beside 1-32 long clients (HTTP and "
        "Wyoming), first audio and one sentence after 3 s idle, against the default service",
    )
    bench.add_argument(
        "--cache",
        dest="cache_phase",
        action="store_true",
        help="only the repeated-phrase rows: 200 requests from 20 phrases, the audio cache's "
        "hit rate and a hit's latency against a miss",
    )
    bench.add_argument("--workers", type=int)
    bench.add_argument("--threads-per-worker", type=int)
    bench.add_argument(
        "--policies",
        help="servers to measure, comma-separated (default fifo,fair,round_robin); "
        "POLICY[:DEVICE][@WxT][+bN]: :cuda or :auto runs it with --device (default cpu), "
        "@WxT its own workers x threads, +bN batches of up to N sentences, e.g. "
        "fair,fair@1x2,fair+b4,fair:cuda+b8 (with ratios to unbatched and to the CPU)",
    )
    _voice_flags(bench)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment first, then every flag that was given."""
    names = set(Settings.model_fields)
    overrides: dict[str, Any] = {
        key: value
        for key, value in vars(args).items()
        if key in names and value is not None and key not in ("noise_scale", "noise_w_scale")
    }
    if args.command == "serve":
        for key in ("noise_scale", "noise_w_scale"):
            if getattr(args, key, None) is not None:
                overrides[key] = getattr(args, key)
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"tts-service: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, json_lines=settings.log_json)
    try:
        if args.command == "serve" and args.ray:
            return _serve_on_ray(settings, args)
        if args.command == "serve":
            from tts_service.server import serve

            return serve(settings)
        if args.command == "say":
            return asyncio.run(_say(settings, args))
        if args.command == "voices":
            return run_voices(settings, args)
        if args.command == "bench" and args.ray:
            from tts_service.bench.ray import run_ray_bench

            return run_ray_bench(settings, args)
        if args.command == "bench":
            from tts_service.bench.main import run_bench

            return run_bench(settings, args)
    except ServiceError as error:
        print(f"tts-service: {error.message}", file=sys.stderr)
        return error.exit_code
    return 2


def _serve_on_ray(settings: Settings, args: argparse.Namespace) -> int:
    try:
        ray_settings = ray_settings_from(args)
    except ValidationError as exc:
        print(f"tts-service: invalid Ray configuration:\n{exc}", file=sys.stderr)
        return 2
    from tts_service.rayserve.launch import ray_environment

    ray_environment(settings, ray_settings)  # before Ray is imported: it reads some at import
    try:
        import ray.serve  # noqa: F401  (an optional extra)
    except ImportError as exc:
        print(
            f"tts-service: --ray needs Ray Serve ({exc}): pip install 'tts-service[ray]'",
            file=sys.stderr,
        )
        return 2
    from tts_service.rayserve.launch import serve_on_ray
    from tts_service.rayserve.plan import PlanError

    try:
        return serve_on_ray(settings, ray_settings)
    except PlanError as exc:
        print(f"tts-service: {exc}", file=sys.stderr)
        return 2


async def _say(settings: Settings, args: argparse.Namespace) -> int:
    from tts_service.api.captions import render
    from tts_service.service import SpeechRequest, TTSService
    from tts_service.text.options import TextOptions

    text = sys.stdin.read() if args.text == "-" else args.text
    fmt = _caption_format(args.captions)
    service = TTSService(
        settings.model_copy(update={"default_voice": args.voice or settings.default_voice})
    )
    service.scheduler.start()
    try:
        admitted = await service.submit(
            SpeechRequest(
                text=text,
                voice=args.voice,
                speaker=args.speaker,
                length_scale=args.length_scale,
                noise_scale=args.noise_scale,
                noise_w_scale=args.noise_w_scale,
                volume=args.volume,
                sentence_silence=args.sentence_silence,
                normalization=args.normalization,
                timestamps=fmt is not None,
                reading=TextOptions(ssml=args.ssml, clean=args.clean, normalize=args.normalize),
            )
        )
        pcm, sentences = await _spoken(service, admitted)
    finally:
        await service.stop()
    if fmt is not None:
        args.captions.write_text(render(fmt, sentences, text), encoding="utf-8")
    with wave.open(str(args.output), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(admitted.voice.sample_rate)
        wav.writeframes(pcm)
    seconds = len(pcm) / 2 / admitted.voice.sample_rate
    print(f"wrote {args.output} ({seconds:.2f} s, {admitted.sentences} sentences)")
    if fmt is not None:
        print(f"wrote {args.captions} ({sum(len(words) for words in sentences)} words)")
    return 0


def _caption_format(path: Path | None) -> str | None:
    if path is None:
        return None
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("vtt", "srt"):
        raise InvalidRequest(f"--captions: {path.name} must end in .vtt or .srt")
    return fmt


async def _spoken(service: TTSService, admitted: Admitted) -> tuple[bytes, list[list[Word]]]:
    """The request's PCM and, with timestamps, each sentence's words."""
    clock = admitted.word_clock()
    pcm: list[bytes] = []
    sentences: list[list[Word]] = []
    async for chunk in admitted.chunks():
        pcm.append(chunk.pcm)
        if clock is not None and chunk.first:
            ids = admitted.phoneme_ids(chunk.index)
            words = clock.sentence(chunk.index, chunk.samples, chunk.samples_per_id, ids)
            sentences.append(words)
    return b"".join(pcm), sentences
