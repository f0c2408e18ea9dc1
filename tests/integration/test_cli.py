"""The `tts-service` command line, run as a real subprocess with the real voice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from audiocheck import DEFAULT_VOICE, RATE, piper_pcm, seconds, wav_pcm
from captioncheck import parse_srt
from conftest import ROOT


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    # Byte comparisons need one thread count throughout (see conftest.ServerProcess).
    env["TTS_SOLO_FIRST_SENTENCE"] = "false"
    return subprocess.run(
        [sys.executable, "-m", "tts_service", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_say_writes_a_wav_equal_to_piper(tmp_path: Path) -> None:
    text = "Hello from the command line. Two sentences."
    out = tmp_path / "out.wav"
    quiet = ("--noise-scale", "0", "--noise-w-scale", "0")
    result = run_cli("say", text, "-o", str(out), *quiet, "--normalization", "peak")
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "2 sentences" in result.stdout
    pcm = wav_pcm(out.read_bytes(), rate=RATE)
    assert seconds(pcm) > 1.0
    assert pcm == piper_pcm(text)  # the CLI's default: one onnxruntime thread per worker
    leveled = tmp_path / "leveled.wav"
    assert run_cli("say", text, "-o", str(leveled), *quiet).returncode == 0
    default = wav_pcm(leveled.read_bytes(), rate=RATE)  # loudness, Piper's length
    assert len(default) == len(pcm) and default != pcm


def test_say_writes_captions_beside_the_audio(tmp_path: Path) -> None:
    text = "Captions from the command line. In 1984, they cost $3.50!"
    out, captions = tmp_path / "out.wav", tmp_path / "out.srt"
    result = run_cli("say", text, "-o", str(out), "--captions", str(captions))
    assert result.returncode == 0, result.stderr
    assert f"wrote {captions} (10 words)" in result.stdout
    cues = parse_srt(captions.read_text(encoding="utf-8"))
    assert [cue.text for cue in cues] == [
        "Captions from the command line.",
        "In 1984, they cost $3.50!",
    ]
    assert cues[-1].end <= seconds(wav_pcm(out.read_bytes(), rate=RATE))
    refused = run_cli("say", text, "-o", str(out), "--captions", str(tmp_path / "out.txt"))
    assert refused.returncode == 2 and "must end in .vtt or .srt" in refused.stderr


def test_say_cleans_normalises_and_reads_ssml(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    quiet = ("--noise-scale", "0", "--noise-w-scale", "0", "--normalization", "peak")
    result = run_cli("say", "**It** is $3.50.", "-o", str(out), "--clean", "--normalize", *quiet)
    assert result.returncode == 0, result.stderr
    assert wav_pcm(out.read_bytes(), rate=RATE) == piper_pcm("It is three dollars, fifty cents.")
    result = run_cli("say", "Hi <shout>there</shout>.", "-o", str(out), "--ssml", *quiet)
    assert result.returncode == 0, result.stderr
    assert wav_pcm(out.read_bytes(), rate=RATE) == piper_pcm("Hi there.")
    broken = run_cli("say", "<speak>Hi <b>x</speak>", "-o", str(tmp_path / "never.wav"))
    assert broken.returncode == 2 and "line 1, column 17" in broken.stderr


def test_say_reads_standard_input_and_uses_a_folder_voice(
    tmp_path: Path, tiny_voices: Path
) -> None:
    out = tmp_path / "tiny.wav"
    result = run_cli(
        "say",
        "-",
        "-o",
        str(out),
        "--voices-dir",
        str(tiny_voices),
        "--voice",
        "tiny-multi",
        "--speaker",
        "carol",
        stdin="From standard input.",
    )
    assert result.returncode == 0, result.stderr
    assert seconds(wav_pcm(out.read_bytes(), rate=16000), rate=16000) > 0.1


def test_say_with_an_unknown_voice_fails_with_its_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "never.wav"
    result = run_cli("say", "Hi.", "-o", str(out), "--voice", "nope")
    assert result.returncode == 3  # VoiceNotFound
    assert "nope" in result.stderr
    assert not out.exists()


def test_voices_lists_the_default_and_a_folder_voice(tiny_voices: Path) -> None:
    result = run_cli("voices", "--voices-dir", str(tiny_voices))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    default = next(line for line in lines if DEFAULT_VOICE in line)
    assert default.startswith("*") and "22050 Hz" in default
    multi = next(line for line in lines if "tiny-multi" in line)
    assert "3 speakers" in multi and "16000 Hz" in multi
    assert any("tiny-single" in line for line in lines)

    listed = json.loads(run_cli("voices", "--json", "--voices-dir", str(tiny_voices)).stdout)
    names = {voice["name"] for voice in listed}
    assert {DEFAULT_VOICE, "tiny-multi", "tiny-single"} <= names


def test_invalid_configuration_exits_2() -> None:
    flag = run_cli("serve", "--port", "70000")  # refused before anything starts
    assert flag.returncode == 2 and "invalid configuration" in flag.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTS_")}
    from_env = subprocess.run(
        [sys.executable, "-m", "tts_service", "voices"],
        capture_output=True,
        text=True,
        env={**env, "TTS_MAX_LOADED_VOICES": "0"},
        cwd=ROOT,
        timeout=60,
    )
    assert from_env.returncode == 2 and "max_loaded_voices" in from_env.stderr
