"""`tts-service serve | say | voices | bench`. Flags override `TTS_*` environment variables."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import wave
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tts_service.config import Settings
from tts_service.errors import ServiceError
from tts_service.logs import setup_logging


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default 127.0.0.1; 0.0.0.0 to expose)")
    parser.add_argument("--port", type=int, help="port (default 3002)")
    _voice_flags(parser)
    parser.add_argument(
        "--memory-budget", help="most memory for loaded voices, e.g. 600M or 1.5G (default: none)"
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
    parser.add_argument("--api-key", action="append", help="require this bearer key (repeatable)")
    parser.add_argument("--cors-origin", dest="cors_origins", action="append")
    parser.add_argument(
        "--allowed-host", dest="allowed_hosts", action="append", help="extra Host name"
    )
    parser.add_argument("--log-level")
    parser.add_argument("--log-json", action="store_true", default=None)
    parser.add_argument("--no-ui", dest="ui", action="store_false", default=None)
    parser.add_argument("--wyoming-uri", help="also serve Wyoming, e.g. tcp://127.0.0.1:10200")


def _voice_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voices-dir", action="append", type=Path, help="voice folder")
    parser.add_argument("--default-voice", help="voice used when a request names none")


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
    say.add_argument("--volume", type=float, default=1.0)
    say.add_argument("--sentence-silence", type=float, default=0.0)
    _voice_flags(say)

    voices = commands.add_parser("voices", help="list installed voices")
    voices.add_argument("--json", action="store_true")
    _voice_flags(voices)

    bench = commands.add_parser("bench", help="measure serial Piper vs fifo vs fair")
    bench.add_argument("--quick", action="store_true", help="smaller workload")
    bench.add_argument("--output", type=Path, default=Path("bench-results/bench.json"))
    bench.add_argument(
        "--no-memory", action="store_true", help="skip the memory rows (RSS, soak, start-up)"
    )
    bench.add_argument(
        "--sizing", action="store_true", help="only the sizing table: cores, workers, voices"
    )
    bench.add_argument("--workers", type=int)
    bench.add_argument("--threads-per-worker", type=int)
    bench.add_argument(
        "--policies",
        help="servers to measure, comma-separated (default fifo,fair,round_robin); "
        "POLICY@WxT gives one its own workers x threads, e.g. fair,fair@1x2",
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
        if args.command == "serve":
            from tts_service.server import serve

            return serve(settings)
        if args.command == "say":
            return asyncio.run(_say(settings, args))
        if args.command == "voices":
            return _voices(settings, args.json)
        if args.command == "bench":
            from tts_service.bench import run_bench

            return run_bench(settings, args)
    except ServiceError as error:
        print(f"tts-service: {error.message}", file=sys.stderr)
        return error.exit_code
    return 2


async def _say(settings: Settings, args: argparse.Namespace) -> int:
    from tts_service.service import SpeechRequest, TTSService

    text = sys.stdin.read() if args.text == "-" else args.text
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
            )
        )
        pcm = await service.scheduler.collect(admitted.job)
    finally:
        await service.stop()
    with wave.open(str(args.output), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(admitted.voice.sample_rate)
        wav.writeframes(pcm)
    seconds = len(pcm) / 2 / admitted.voice.sample_rate
    print(f"wrote {args.output} ({seconds:.2f} s, {admitted.sentences} sentences)")
    return 0


def _voices(settings: Settings, as_json: bool) -> int:
    from tts_service.voices import VoiceCatalog, discover

    catalog = VoiceCatalog(discover(settings.voices_dir), 1, 1)
    infos = catalog.infos()
    if as_json:
        print(json.dumps([info.to_dict() for info in infos], indent=2))
        return 0
    for info in infos:
        marker = "*" if info.name == settings.default_voice else " "
        speakers = f", {info.num_speakers} speakers" if info.num_speakers > 1 else ""
        details = f"{info.language}, {info.sample_rate} Hz, {info.quality}{speakers}"
        print(f"{marker} {info.name}  ({details})")
    return 0
