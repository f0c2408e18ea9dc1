"""Turn mono 16-bit PCM from the synthesis engine into streamable audio formats.

The engine yields int16 mono little-endian PCM one sentence at a time, at the voice's
rate (usually 22050 Hz). Every encoder here is a small synchronous state machine:
``encode()`` takes the next piece of PCM and returns whatever output bytes are ready
now, ``flush()`` returns the rest. The concatenation of everything returned is one
complete, decodable file, so a server can send each piece to the client as soon as it
exists. Encoders are plain CPU code (callers run them in a worker thread) and never
share state, so any number of them can run at once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final, Protocol

import av
import numpy as np
import numpy.typing as npt
import soxr
from av.audio.stream import AudioStream

__all__ = [
    "AUDIO_FORMATS",
    "CONTENT_TYPES",
    "PCM_RATE",
    "AvEncoder",
    "PcmEncoder",
    "StreamEncoder",
    "WavEncoder",
    "content_type",
    "make_encoder",
    "output_rate",
    "resample_pcm",
    "wav_bytes",
    "wav_header",
]

AUDIO_FORMATS: Final[tuple[str, ...]] = ("mp3", "opus", "aac", "flac", "wav", "pcm")

CONTENT_TYPES: Final[dict[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",  # Ogg Opus container, what browsers and OpenAI clients expect
    "aac": "audio/aac",  # raw ADTS stream
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

# OpenAI defines response_format="pcm" as raw s16le mono at 24 kHz, whatever the voice.
PCM_RATE: Final = 24000
# libopus only takes 8/12/16/24/48 kHz, and Opus decoders output 48 kHz regardless of the
# rate that was encoded, so encoding at 48 kHz keeps output_rate() equal to what players
# actually decode.
OPUS_RATE: Final = 48000

# RIFF/data size used when the length is unknown (streaming). 0xFFFFFFFF is what streaming
# servers send; ffmpeg/PyAV, libsndfile and Python's wave module all read such a file to
# its real end. A size of 0 is *not* safe: libsndfile then decodes zero frames.
_UNKNOWN_SIZE: Final = 0xFFFFFFFF
_WAV_HEADER_SIZE: Final = 44
_SAMPLE_WIDTH: Final = 2  # int16

_Int16Array = npt.NDArray[np.int16]
_Float32Array = npt.NDArray[np.float32]


def _check_format(fmt: str) -> None:
    if fmt not in AUDIO_FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {AUDIO_FORMATS}")


def _check_rate(rate: int) -> None:
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")


def content_type(fmt: str) -> str:
    """Return the HTTP Content-Type for an audio format."""
    _check_format(fmt)
    return CONTENT_TYPES[fmt]


# --------------------------------------------------------------------------- WAV


def wav_header(
    sample_rate: int,
    channels: int = 1,
    sample_width: int = 2,
    data_size: int | None = None,
) -> bytes:
    """Return a canonical 44-byte PCM WAV header.

    ``data_size=None`` means the length is not known yet (streaming); both RIFF sizes are
    then written as 0xFFFFFFFF, which decoders treat as "read until end of stream".
    """
    _check_rate(sample_rate)
    if channels <= 0 or sample_width <= 0:
        raise ValueError("channels and sample_width must be positive")
    if data_size is None:
        riff_size = data_len = _UNKNOWN_SIZE
    else:
        if data_size < 0 or data_size + _WAV_HEADER_SIZE - 8 > _UNKNOWN_SIZE:
            raise ValueError(f"data_size out of range for WAV: {data_size}")
        riff_size = data_size + _WAV_HEADER_SIZE - 8
        data_len = data_size
    block_align = channels * sample_width
    return b"".join(
        (
            b"RIFF",
            struct.pack("<I", riff_size),
            b"WAVE",
            b"fmt ",
            struct.pack(
                "<IHHIIHH",
                16,  # fmt chunk size for plain PCM
                1,  # WAVE_FORMAT_PCM
                channels,
                sample_rate,
                sample_rate * block_align,  # byte rate
                block_align,
                sample_width * 8,  # bits per sample
            ),
            b"data",
            struct.pack("<I", data_len),
        )
    )


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """Wrap mono int16 PCM in a complete WAV file with exact sizes."""
    return wav_header(sample_rate, data_size=len(pcm)) + pcm


# --------------------------------------------------------------------- resampling


def _to_float(samples: _Int16Array) -> _Float32Array:
    return samples.astype(np.float32) / np.float32(32768.0)


def _to_int16(samples: _Float32Array) -> _Int16Array:
    # Resampling can overshoot full scale slightly (filter ringing), so clip, don't wrap.
    scaled: _Float32Array = np.rint(samples * np.float32(32768.0))
    clipped: _Float32Array = np.clip(scaled, -32768.0, 32767.0)
    return clipped.astype(np.int16)


# soxr is run in float32 rather than int16 on purpose: for int16 output libsoxr adds
# random TPDF dither, which makes the output differ from run to run.


def resample_pcm(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """One-shot resample of a whole mono int16 PCM buffer (soxr, high quality)."""
    _check_rate(from_rate)
    _check_rate(to_rate)
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % _SAMPLE_WIDTH], dtype="<i2")
    out: _Float32Array = soxr.resample(_to_float(samples), from_rate, to_rate, quality="HQ")
    return _to_int16(out).astype("<i2").tobytes()


class _Resampler:
    """Stateful streaming resampler: no clicks or lost samples at chunk joins.

    Resampling each chunk on its own would restart the filter at every sentence
    boundary; soxr's ResampleStream keeps the filter history across calls instead.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: _Int16Array) -> _Int16Array:
        out: _Float32Array = self._stream.resample_chunk(_to_float(samples))
        return _to_int16(out)

    def drain(self) -> _Int16Array:
        # last=True releases the samples still held back by the filter's delay line.
        out: _Float32Array = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return _to_int16(out)


class _SampleAligner:
    """Turn arbitrary byte pieces into whole int16 samples.

    The engine normally hands over whole samples, but a stray odd byte must not shift
    every later sample by one byte, so it is carried over to the next call.
    """

    def __init__(self) -> None:
        self._carry = b""

    def samples(self, pcm: bytes) -> _Int16Array:
        data = self._carry + pcm if self._carry else pcm
        usable = len(data) - (len(data) % _SAMPLE_WIDTH)
        self._carry = data[usable:]
        # Copy: frombuffer() views are read-only and tied to the caller's buffer.
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)


# ---------------------------------------------------------------------- encoders


class StreamEncoder(Protocol):
    """Incremental encoder from mono int16 PCM at the input rate to one output format."""

    def encode(self, pcm: bytes) -> bytes:
        """Consume one piece of PCM; return the output bytes ready so far (maybe b"")."""
        ...

    def flush(self) -> bytes:
        """Finish the stream and return the remaining bytes."""
        ...


class _FlushedError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("encoder was already flushed")


class WavEncoder:
    """Streaming WAV: an unknown-size header, then raw PCM at the voice's rate."""

    def __init__(self, input_rate: int) -> None:
        _check_rate(input_rate)
        self.rate = input_rate
        self._aligner = _SampleAligner()
        self._header_sent = False
        self._done = False

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise _FlushedError
        data = self._aligner.samples(pcm).astype("<i2").tobytes()
        if self._header_sent:
            return data
        if not data:
            # Hold the header back until there is audio, so an empty stream can still
            # get an exact (zero-length) header from flush().
            return b""
        self._header_sent = True
        return wav_header(self.rate) + data

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        # A dangling odd byte cannot form a sample; dropping it keeps the file valid.
        return b"" if self._header_sent else wav_header(self.rate, data_size=0)


class PcmEncoder:
    """Raw s16le mono at 24 kHz (OpenAI's "pcm"), resampled as a continuous stream."""

    def __init__(self, input_rate: int) -> None:
        _check_rate(input_rate)
        self.rate = PCM_RATE
        self._aligner = _SampleAligner()
        self._resampler = _Resampler(input_rate, PCM_RATE) if input_rate != PCM_RATE else None
        self._done = False

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise _FlushedError
        samples = self._aligner.samples(pcm)
        if self._resampler is not None and samples.size:
            samples = self._resampler.process(samples)
        return samples.astype("<i2").tobytes()

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        if self._resampler is None:
            return b""
        return self._resampler.drain().astype("<i2").tobytes()


class _ChunkSink:
    """Write-only file object that collects what the muxer writes until drained.

    It deliberately has no seek()/tell(): PyAV then tells FFmpeg the output is not
    seekable, so muxers never try to go back and patch a header (FLAC STREAMINFO, the
    MP3 Xing frame) in bytes that were already sent to the client.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


@dataclass(frozen=True)
class _CodecSpec:
    container: str  # FFmpeg muxer name
    codec: str  # FFmpeg encoder name
    bit_rate: int | None  # None for lossless
    container_options: dict[str, str] = field(default_factory=dict)
    fixed_rate: int | None = None  # forced encoder rate (opus)
    codec_options: dict[str, str] = field(default_factory=dict)
    sample_format: str | None = None  # encoder input format, when it can take ours as is


_AV_SPECS: Final[dict[str, _CodecSpec]] = {
    # 64 kbps mono MP3 is plenty for 22 kHz speech. LAME's quality level 7 (of 0-9)
    # encodes ~1.7x faster than its default at the same bitrate; for speech the
    # difference is not audible, and the encoder must stay well under synthesis cost.
    # For mono, planar s16 is laid out exactly like our s16, so LAME takes the samples
    # without the per-frame conversion to its default s32p.
    "mp3": _CodecSpec(
        "mp3",
        "libmp3lame",
        64_000,
        codec_options={"compression_level": "7"},
        sample_format="s16p",
    ),
    # Ogg's default page duration is 1 s, so nothing after the headers would reach the
    # client until a second of audio had been encoded; 100 ms pages stream promptly for
    # ~1 kbps of extra page overhead.
    # libopus's complexity 5 (of 10) halves encode time; at 48 kbps speech stays clean.
    # Bit-exact: the Ogg stream's serial number is otherwise random, and the same speech
    # (a cache hit, issue 21) must encode to the same bytes.
    "opus": _CodecSpec(
        "ogg",
        "libopus",
        48_000,
        {"page_duration": "100000", "fflags": "+bitexact"},
        fixed_rate=OPUS_RATE,
        codec_options={"compression_level": "5"},
    ),
    "aac": _CodecSpec("adts", "aac", 64_000, codec_options={"aac_coder": "fast"}),
    "flac": _CodecSpec("flac", "flac", None),
}


def _supported_rates(codec: str) -> tuple[int, ...] | None:
    rates = av.codec.Codec(codec, "w").audio_rates
    return tuple(rates) if rates else None


def output_rate(fmt: str, input_rate: int) -> int:
    """Sample rate of the audio that ``make_encoder(fmt, input_rate)`` produces."""
    _check_format(fmt)
    _check_rate(input_rate)
    if fmt == "pcm":
        return PCM_RATE
    if fmt == "wav":
        return input_rate
    spec = _AV_SPECS[fmt]
    if spec.fixed_rate is not None:
        return spec.fixed_rate
    rates = _supported_rates(spec.codec)
    if rates is None or input_rate in rates:
        return input_rate
    # Upsample to the nearest supported rate (never throw away bandwidth); only fall
    # back to the highest one if the voice is faster than anything the codec takes.
    higher = [r for r in rates if r >= input_rate]
    return min(higher) if higher else max(rates)


class AvEncoder:
    """Codec + muxer from PyAV, writing into an in-memory sink drained after each call."""

    def __init__(self, fmt: str, input_rate: int) -> None:
        spec = _AV_SPECS[fmt]
        self.rate = output_rate(fmt, input_rate)
        self._aligner = _SampleAligner()
        self._resampler = _Resampler(input_rate, self.rate) if input_rate != self.rate else None
        self._sink = _ChunkSink()
        self._container = av.open(
            self._sink, mode="w", format=spec.container, options=spec.container_options
        )
        try:
            stream = self._container.add_stream(spec.codec, rate=self.rate)
            # add_stream() is typed for any media kind; narrow it for the type checker.
            if not isinstance(stream, AudioStream):
                raise TypeError(f"{spec.codec} is not an audio encoder")
            stream.layout = "mono"
            if spec.bit_rate is not None:
                stream.bit_rate = spec.bit_rate
            if spec.codec_options:
                stream.codec_context.options = dict(spec.codec_options)
            if spec.sample_format is not None:
                stream.format = spec.sample_format
            self._frame_format = spec.sample_format or "s16"
            self._stream = stream
            # Open the codec and write the container header now: bad settings fail in
            # make_encoder() rather than mid-stream, and even an empty input yields a
            # proper header on flush().
            self._container.start_encoding()
        except BaseException:
            self._container.close()
            raise
        self._time_base = Fraction(1, self.rate)
        self._pts = 0
        self._done = False

    def _encode_samples(self, samples: _Int16Array) -> None:
        if not samples.size:
            return
        # PyAV's codec context re-chunks frames to the codec's frame size (1152 for MP3,
        # 1024 for AAC, 960 for Opus at 48 kHz) and converts s16 to the codec's sample
        # format, buffering the remainder until the next frame or the final flush.
        frame = av.AudioFrame.from_ndarray(
            samples.reshape(1, -1), format=self._frame_format, layout="mono"
        )
        frame.sample_rate = self.rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += int(samples.size)
        self._container.mux(self._stream.encode(frame))

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise _FlushedError
        samples = self._aligner.samples(pcm)
        if self._resampler is not None and samples.size:
            samples = self._resampler.process(samples)
        self._encode_samples(samples)
        return self._sink.drain()

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        try:
            if self._resampler is not None:
                self._encode_samples(self._resampler.drain())
            if self._pts == 0:
                # No audio at all (e.g. nothing speakable): emit 10 ms of silence, since
                # an Ogg/MP3/ADTS stream without a single audio packet is not a file
                # players can open.
                self._encode_samples(np.zeros(self.rate // 100, dtype=np.int16))
            # encode(None) drains the codec's look-ahead and the partial last frame;
            # close() then writes the muxer trailer (the final Ogg page with the
            # end-of-stream flag). Skipping either loses the tail of the audio.
            self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
        return self._sink.drain()

    def close(self) -> None:
        """Abandon the stream (e.g. client went away) and free the codec without output."""
        if not self._done:
            self._done = True
            self._container.close()
            self._sink.drain()


def make_encoder(fmt: str, input_rate: int) -> StreamEncoder:
    """Create a fresh, independent streaming encoder for ``fmt``.

    ``input_rate`` is the rate of the int16 mono PCM that will be passed to encode();
    ``output_rate(fmt, input_rate)`` tells the rate of the encoded audio.
    """
    _check_format(fmt)
    _check_rate(input_rate)
    if fmt == "wav":
        return WavEncoder(input_rate)
    if fmt == "pcm":
        return PcmEncoder(input_rate)
    return AvEncoder(fmt, input_rate)
