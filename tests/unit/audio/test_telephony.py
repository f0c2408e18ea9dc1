"""Output rates and G.711: every format at every rate it allows, decoded by FFmpeg (PyAV) at
that rate and length; μ-law and A-law bytes checked against an independent coder (audioop,
or audioop-lts from Python 3.13) and decoded by FFmpeg's own G.711 decoders."""

from __future__ import annotations

import io
import itertools
import warnings

import av
import numpy as np
import numpy.typing as npt
import pytest

from tts_service.audio.encoders import (
    AUDIO_FORMATS,
    SAMPLE_RATES,
    check_output,
    exact_sizes,
    make_encoder,
    output_rate,
)
from tts_service.audio.g711 import alaw, ulaw

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

SR = 22050
N = int(SR * 1.5)
CUTS = (0, 5000, 5001, 14000, 20000, N)  # uneven, sentence-like pieces
FREQ = 300.0
Floats = npt.NDArray[np.float64]


def sine(n: int = N, rate: int = SR) -> npt.NDArray[np.int16]:
    t = np.arange(n) / rate
    return np.round(0.5 * 32767 * np.sin(2 * np.pi * FREQ * t)).astype(np.int16)


SIGNAL = sine()


def encode(fmt: str, rate: int | None) -> bytes:
    encoder = make_encoder(fmt, SR, rate)
    pieces = [encoder.encode(SIGNAL[a:b].tobytes()) for a, b in itertools.pairwise(CUTS)]
    return b"".join(pieces) + encoder.flush()


def decode(data: bytes, fmt: str | None = None) -> tuple[Floats, int]:
    options = {"sample_rate": "8000", "ac": "1"} if fmt else {}
    frames: list[Floats] = []
    rate = 0
    with av.open(io.BytesIO(data), format=fmt, options=options) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            array = frame.to_ndarray().astype(np.float64).reshape(-1)
            if frame.format.name.startswith("s16"):
                array /= 32768.0
            frames.append(array)
    return np.concatenate(frames), rate


def frequency(x: Floats, rate: int) -> float:
    middle = x[len(x) // 4 : 3 * len(x) // 4]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    return float(np.fft.rfftfreq(len(middle), 1 / rate)[np.argmax(spectrum)])


ALLOWED = [
    (fmt, rate)
    for fmt in ("wav", "pcm", "mp3", "aac", "flac", "opus")
    for rate in SAMPLE_RATES
    if not (fmt == "opus" and rate in (22050, 32000, 44100))
]


@pytest.mark.parametrize(("fmt", "rate"), ALLOWED)
def test_every_allowed_rate_decodes_at_that_rate(fmt: str, rate: int) -> None:
    data = encode(fmt, rate)
    assert output_rate(fmt, SR, rate) == rate
    if fmt == "pcm":
        samples = np.frombuffer(data, dtype="<i2") / 32768.0
        got_rate = rate
    else:
        samples, got_rate = decode(data)
    # Opus decoders always answer 48 kHz, whatever was encoded.
    assert got_rate == (48000 if fmt == "opus" else rate)
    seconds = len(samples) / got_rate
    # Codecs add priming and padding: at 8 kHz an MP3 frame alone is 72 ms.
    assert 1.5 - 0.01 <= seconds <= 1.5 * 1.03 + 0.2
    assert abs(frequency(samples, got_rate) - FREQ) < 5


@pytest.mark.parametrize(("fmt", "rate"), [("opus", 22050), ("opus", 44100), ("ulaw", 16000)])
def test_a_rate_the_codec_cannot_take_is_refused(fmt: str, rate: int) -> None:
    with pytest.raises(ValueError, match=f"{fmt} cannot be made at {rate} Hz"):
        check_output(fmt, rate)
    with pytest.raises(ValueError):
        make_encoder(fmt, SR, rate)


def test_every_format_takes_its_default_rate() -> None:
    for fmt in AUDIO_FORMATS:
        check_output(fmt, None)


def test_ulaw_and_alaw_match_an_independent_coder_on_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert ulaw(every) == audioop.lin2ulaw(every.tobytes(), 2)
    assert alaw(every) == audioop.lin2alaw(every.tobytes(), 2)


def test_the_coder_check_can_fail() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert ulaw(every) != audioop.lin2alaw(every.tobytes(), 2)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_raw_g711_is_8k_one_byte_a_sample_and_decodes_to_the_tone(law: str) -> None:
    data = encode(law, None)
    assert abs(len(data) - 1.5 * 8000) <= 2  # one byte per 8 kHz sample
    samples, rate = decode(data, "mulaw" if law == "ulaw" else "alaw")
    assert rate == 8000
    assert len(samples) == len(data)
    assert abs(frequency(samples, rate) - FREQ) < 5
    # Streamed in pieces, the same bytes as the whole signal coded at once: no seam.
    reference = make_encoder("pcm", SR, 8000)
    pcm = reference.encode(SIGNAL.tobytes()) + reference.flush()
    whole = np.frombuffer(pcm, dtype="<i2")
    coded = ulaw(whole) if law == "ulaw" else alaw(whole)
    assert abs(len(coded) - len(data)) <= 1
    m = min(len(coded), len(data))
    mismatch = np.frombuffer(coded[:m], np.uint8) != np.frombuffer(data[:m], np.uint8)
    assert mismatch.mean() < 0.01


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_in_wav_decodes_to_the_same_audio_as_raw(law: str) -> None:
    raw = encode(law, None)
    wav = encode(f"{law}_wav", None)
    assert wav[:4] == b"RIFF" and wav[20] == (7 if law == "ulaw" else 6)
    assert wav[44:] == raw
    from_wav, rate = decode(wav)
    from_raw, _ = decode(raw, "mulaw" if law == "ulaw" else "alaw")
    assert rate == 8000
    np.testing.assert_array_equal(from_wav, from_raw)


def test_exact_sizes_rewrites_a_streamed_header() -> None:
    encoder = make_encoder("ulaw_wav", SR)
    parts = [b"", encoder.encode(SIGNAL.tobytes()), encoder.flush()]
    fixed = b"".join(exact_sizes(parts))
    total = len(fixed)
    assert int.from_bytes(fixed[4:8], "little") == total - 8
    assert int.from_bytes(fixed[40:44], "little") == total - 44
    assert fixed[44:] == b"".join(parts)[44:]
