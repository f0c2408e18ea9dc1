"""Tests for tts_service.audio.encoders: every format is encoded in uneven, sentence-like pieces and
decoded again with an independent decoder (libsndfile via soundfile, FFmpeg via PyAV)."""

from __future__ import annotations

import io
import itertools
import struct
import wave
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr

from tts_service.audio.encoders import (
    AUDIO_FORMATS,
    CONTENT_TYPES,
    AvEncoder,
    content_type,
    make_encoder,
    output_rate,
    resample_pcm,
    wav_bytes,
    wav_header,
)

SR = 22050
DURATION = 2.5
FREQ = 220.0
AMPLITUDE = 0.5  # of full scale
N = int(SR * DURATION)
# Uneven split like sentences: includes a 1-sample piece and an empty piece.
CUTS = (0, 9000, 9001, 9001, 21000, 21500, 40000, N)

EXPECTED_RATE = {
    "mp3": SR,
    "opus": 48000,
    "aac": SR,
    "flac": SR,
    "wav": SR,
    "pcm": 24000,
    "ulaw": 8000,
    "alaw": 8000,
    "ulaw_wav": 8000,
    "alaw_wav": 8000,
}
COMPRESSED = ("mp3", "opus", "aac", "flac")

Int16Array = npt.NDArray[np.int16]


def sine(n: int = N, rate: int = SR, freq: float = FREQ) -> Int16Array:
    t = np.arange(n) / rate
    return np.round(AMPLITUDE * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


SIGNAL = sine()


def chunks(signal: Int16Array = SIGNAL) -> list[bytes]:
    return [signal[a:b].tobytes() for a, b in itertools.pairwise(CUTS)]


def encode_all(fmt: str, pieces: list[bytes], rate: int = SR) -> tuple[list[bytes], bytes]:
    enc = make_encoder(fmt, rate)
    streamed = [enc.encode(p) for p in pieces]
    return streamed, enc.flush()


def decode_av(data: bytes) -> tuple[npt.NDArray[np.float64], int, int]:
    """Decode with FFmpeg; returns mono float samples in [-1, 1], rate, channels."""
    frames: list[npt.NDArray[np.float64]] = []
    rate = channels = 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            channels = frame.layout.nb_channels
            arr = frame.to_ndarray()
            if frame.format.name.startswith("s16"):
                arr = arr / 32768.0
            elif frame.format.name.startswith("s32"):
                arr = arr / 2147483648.0
            frames.append(np.asarray(arr, dtype=np.float64).reshape(-1))
    return np.concatenate(frames) if frames else np.zeros(0), rate, channels


def dominant_freq(x: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


def assert_is_the_sine(x: npt.NDArray[np.float64], rate: int) -> None:
    """The decoded audio is really our tone, not silence or garbage."""
    middle = x[len(x) // 4 : 3 * len(x) // 4]
    assert abs(dominant_freq(middle, rate) - FREQ) < 3.0
    rms = float(np.sqrt(np.mean(middle**2)))
    assert rms == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.1)


def assert_duration(n_samples: int, rate: int, expected: float = DURATION) -> None:
    got = n_samples / rate
    # Codecs add priming/padding (MP3 without a Xing frame ~ +60 ms, AAC +1024 samples),
    # so allow 3 % plus a little absolute slack for short clips — but never lose the tail.
    assert got >= expected - 0.005, f"lost audio: {got:.4f}s < {expected}s"
    assert got <= expected * 1.03 + 0.1, f"too long: {got:.4f}s > {expected}s"


# ------------------------------------------------------------------- constants


def test_formats_and_content_types() -> None:
    assert AUDIO_FORMATS[:6] == ("mp3", "opus", "aac", "flac", "wav", "pcm")
    assert AUDIO_FORMATS[6:] == ("ulaw", "alaw", "ulaw_wav", "alaw_wav")
    assert set(CONTENT_TYPES) == set(AUDIO_FORMATS)
    assert content_type("mp3") == "audio/mpeg"
    assert content_type("opus") == "audio/ogg"
    assert content_type("aac") == "audio/aac"
    assert content_type("flac") == "audio/flac"
    assert content_type("wav") == "audio/wav"
    assert content_type("pcm") == "audio/pcm"
    assert content_type("ulaw") == "audio/basic"
    assert content_type("alaw_wav") == "audio/wav"


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_output_rate_for_voice_rate(fmt: str) -> None:
    assert output_rate(fmt, SR) == EXPECTED_RATE[fmt]


def test_output_rate_falls_back_to_supported_rate() -> None:
    # 20 kHz is not an MP3/AAC rate: go up to the next one rather than lose bandwidth.
    assert output_rate("mp3", 20000) == 22050
    assert output_rate("aac", 20000) == 22050
    assert output_rate("flac", 20000) == 20000
    assert output_rate("wav", 20000) == 20000
    assert output_rate("opus", 16000) == 48000
    assert output_rate("pcm", 16000) == 24000


@pytest.mark.parametrize("bad", ["ogg", "MP3", "", "wave"])
def test_unknown_format_raises(bad: str) -> None:
    with pytest.raises(ValueError):
        make_encoder(bad, SR)
    with pytest.raises(ValueError):
        content_type(bad)
    with pytest.raises(ValueError):
        output_rate(bad, SR)


def test_bad_rate_raises() -> None:
    with pytest.raises(ValueError):
        make_encoder("wav", 0)
    with pytest.raises(ValueError):
        resample_pcm(b"\0\0", -1, 24000)


# ------------------------------------------------------------------------- WAV


def test_wav_header_layout() -> None:
    h = wav_header(SR, data_size=1000)
    assert len(h) == 44
    assert h[:4] == b"RIFF" and h[8:16] == b"WAVEfmt " and h[36:40] == b"data"
    (riff,) = struct.unpack("<I", h[4:8])
    fmt_fields = struct.unpack("<IHHIIHH", h[16:36])
    (data,) = struct.unpack("<I", h[40:44])
    assert riff == 1036 and data == 1000
    assert fmt_fields == (16, 1, 1, SR, SR * 2, 2, 16)

    streaming = wav_header(SR)
    assert len(streaming) == 44
    assert streaming[4:8] == b"\xff\xff\xff\xff" and streaming[40:44] == b"\xff\xff\xff\xff"


def test_wav_bytes_roundtrip_exact() -> None:
    pcm = SIGNAL.tobytes()
    with wave.open(io.BytesIO(wav_bytes(pcm, SR))) as w:
        assert w.getframerate() == SR
        assert w.getnchannels() == 1
        assert w.getsampwidth() == 2
        assert w.getnframes() == N
        assert w.readframes(N + 10) == pcm


def test_streamed_wav_unknown_size_decodes_fully() -> None:
    streamed, tail = encode_all("wav", chunks())
    data = b"".join(streamed) + tail
    assert streamed[0][:44] == wav_header(SR)  # header goes out with the first audio
    assert data[44:] == SIGNAL.tobytes()

    x, rate = sf.read(io.BytesIO(data), dtype="int16")
    assert rate == SR and x.ndim == 1
    np.testing.assert_array_equal(x, SIGNAL)

    decoded, rate, channels = decode_av(data)
    assert (rate, channels, len(decoded)) == (SR, 1, N)

    with wave.open(io.BytesIO(data)) as w:
        assert w.readframes(10**9) == SIGNAL.tobytes()


def test_wav_encoder_handles_odd_byte_splits() -> None:
    raw = SIGNAL.tobytes()
    pieces = [raw[:3], raw[3:4], raw[4:1001], raw[1001:]]
    streamed, tail = encode_all("wav", pieces)
    assert (b"".join(streamed) + tail)[44:] == raw


# ------------------------------------------------------------------------- PCM


def test_pcm_is_24k_with_expected_length_and_matches_one_shot() -> None:
    streamed, tail = encode_all("pcm", chunks())
    out = np.frombuffer(b"".join(streamed) + tail, dtype="<i2")
    assert abs(len(out) - N * 24000 / SR) <= 2

    one_shot = np.frombuffer(resample_pcm(SIGNAL.tobytes(), SR, 24000), dtype="<i2")
    m = min(len(out), len(one_shot))
    # The streaming resampler must agree with resampling the whole signal at once:
    # per-chunk resampling differs by thousands at the joins.
    assert int(np.abs(out[:m].astype(np.int32) - one_shot[:m]).max()) <= 4

    # No clicks: sample-to-sample steps never exceed the sine's own steepest slope.
    max_step = AMPLITUDE * 32767 * 2 * np.pi * FREQ / 24000
    steps = np.abs(np.diff(out.astype(np.int32)))[100:-100]  # skip filter edge ringing
    assert steps.max() <= max_step * 1.05


def test_pcm_click_check_can_fail() -> None:
    """The no-click criterion above catches naive per-chunk resampling."""
    naive = np.concatenate(
        [soxr.resample(SIGNAL[a:b], SR, 24000) for a, b in itertools.pairwise(CUTS)]
    )
    max_step = AMPLITUDE * 32767 * 2 * np.pi * FREQ / 24000
    assert np.abs(np.diff(naive.astype(np.int32)))[100:-100].max() > max_step * 1.05


def test_pcm_streams_before_flush() -> None:
    streamed, _ = encode_all("pcm", chunks())
    assert len(streamed[0]) > 0
    assert sum(map(len, streamed)) > 0.95 * N * 24000 / SR * 2


def test_pcm_passthrough_at_24k() -> None:
    x = sine(24000, 24000)
    enc = make_encoder("pcm", 24000)
    assert enc.encode(x.tobytes()) + enc.flush() == x.tobytes()


def test_resample_pcm_length_and_identity() -> None:
    out = resample_pcm(SIGNAL.tobytes(), SR, 48000)
    assert abs(len(out) // 2 - N * 48000 / SR) <= 2
    assert resample_pcm(b"abcd", SR, SR) == b"abcd"


# ------------------------------------------------------------ compressed formats


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_compressed_roundtrip_decodes_with_ffmpeg(fmt: str) -> None:
    streamed, tail = encode_all(fmt, chunks())
    data = b"".join(streamed) + tail
    decoded, rate, channels = decode_av(data)
    assert rate == EXPECTED_RATE[fmt] == output_rate(fmt, SR)
    assert channels == 1
    assert_duration(len(decoded), rate)
    assert_is_the_sine(decoded, rate)


def test_flac_is_lossless() -> None:
    streamed, tail = encode_all("flac", chunks())
    decoded, _, _ = decode_av(b"".join(streamed) + tail)
    np.testing.assert_array_equal(np.round(decoded * 32768).astype(np.int16), SIGNAL)


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
def test_decodes_with_libsndfile(fmt: str) -> None:
    # libsndfile has no AAC, and it rejects streamed FLAC (STREAMINFO total_samples=0
    # makes it report 2**63-1 frames), so only MP3 and Ogg Opus are checked here.
    streamed, tail = encode_all(fmt, chunks())
    x, rate = sf.read(io.BytesIO(b"".join(streamed) + tail), dtype="float64")
    assert rate == EXPECTED_RATE[fmt]
    assert x.ndim == 1
    assert_duration(len(x), rate)
    assert_is_the_sine(x, rate)


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_compressed_streams_before_flush(fmt: str) -> None:
    streamed, tail = encode_all(fmt, chunks())
    assert len(streamed[0]) > 0  # header and/or first audio go out with the first piece
    prefix = b"".join(streamed)
    # Bytes handed out before flush() are a decodable prefix holding nearly all the
    # audio; only the codec's look-ahead / last partial frame or page waits for flush().
    decoded, rate, _ = decode_av(prefix)
    assert len(decoded) / rate >= DURATION - 0.35
    assert len(tail) > 0


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_other_input_rate(fmt: str) -> None:
    rate_in = 16000
    x = sine(rate_in * 2, rate_in)
    streamed, tail = encode_all(fmt, [x[:5000].tobytes(), x[5000:].tobytes()], rate_in)
    decoded, rate, channels = decode_av(b"".join(streamed) + tail)
    assert rate == output_rate(fmt, rate_in) and channels == 1
    assert_duration(len(decoded), rate, expected=2.0)


# -------------------------------------------------------------- encoder contract


@pytest.mark.parametrize("fmt", AUDIO_FORMATS)
def test_encode_after_flush_raises_and_flush_is_idempotent(fmt: str) -> None:
    enc = make_encoder(fmt, SR)
    enc.encode(SIGNAL[:4000].tobytes())
    enc.flush()
    assert enc.flush() == b""
    with pytest.raises(RuntimeError):
        enc.encode(SIGNAL[:10].tobytes())


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_abandoned_encoder_can_be_closed(fmt: str) -> None:
    enc = make_encoder(fmt, SR)
    assert isinstance(enc, AvEncoder)
    enc.encode(SIGNAL[:5000].tobytes())
    enc.close()  # client went away: free the codec, no output needed
    assert enc.flush() == b""
    with pytest.raises(RuntimeError):
        enc.encode(SIGNAL[:10].tobytes())


def test_empty_input_wav_and_pcm() -> None:
    wav = make_encoder("wav", SR)
    assert wav.encode(b"") == b""
    assert wav.flush() == wav_header(SR, data_size=0)  # known length by now: exact header
    pcm = make_encoder("pcm", SR)
    assert pcm.encode(b"") + pcm.flush() == b""


@pytest.mark.parametrize("fmt", COMPRESSED)
def test_empty_input_gives_decodable_stream(fmt: str) -> None:
    enc = make_encoder(fmt, SR)
    data = enc.encode(b"") + enc.flush()
    # A stream without any audio packet cannot be opened, so a few ms of silence is sent.
    decoded, rate, channels = decode_av(data)
    assert rate == EXPECTED_RATE[fmt] and channels == 1
    assert 0 < len(decoded) / rate < 0.2
    assert np.abs(decoded).max() < 1e-3


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "pcm", "wav"])
def test_encoders_share_no_state(fmt: str) -> None:
    """Concurrent encoders of different signals give the same bytes as solo runs."""
    signals = [sine(N // 2, SR, f) for f in (220.0, 330.0, 440.0, 550.0)]

    def run(signal: Int16Array) -> bytes:
        streamed, tail = encode_all(fmt, chunks(signal))
        data = b"".join(streamed) + tail
        # Ogg picks a random stream serial number, so compare Opus by its decoded audio.
        return decode_av(data)[0].tobytes() if fmt == "opus" else data

    solo = [run(s) for s in signals]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(run, signals * 2))
    assert concurrent == solo * 2
