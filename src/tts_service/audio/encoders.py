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

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final, Protocol

import av
import numpy as np
from av.audio.stream import AudioStream

from tts_service.audio.g711 import G711_RATE, G711Encoder
from tts_service.audio.resample import Int16Array, ResampledSamples, resample_pcm
from tts_service.audio.wav import exact_sizes, wav_bytes, wav_header

__all__ = [
    "AUDIO_FORMATS",
    "CONTENT_TYPES",
    "PCM_RATE",
    "SAMPLE_RATES",
    "WAV_FORMATS",
    "AvEncoder",
    "PcmEncoder",
    "StreamEncoder",
    "WavEncoder",
    "check_output",
    "content_type",
    "exact_sizes",
    "make_encoder",
    "output_rate",
    "resample_pcm",
    "wav_bytes",
    "wav_header",
]

AUDIO_FORMATS: Final[tuple[str, ...]] = (
    "mp3",
    "opus",
    "aac",
    "flac",
    "wav",
    "pcm",
    "ulaw",
    "alaw",
    "ulaw_wav",
    "alaw_wav",
)

CONTENT_TYPES: Final[dict[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",  # Ogg Opus container, what browsers and OpenAI clients expect
    "aac": "audio/aac",  # raw ADTS stream
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "ulaw": "audio/basic",  # RFC 2046: 8 kHz mono μ-law, no header
    "alaw": "audio/x-alaw-basic",
    "ulaw_wav": "audio/wav",
    "alaw_wav": "audio/wav",
}

# OpenAI defines response_format="pcm" as raw s16le mono at 24 kHz, whatever the voice.
PCM_RATE: Final = 24000
# libopus only takes 8/12/16/24/48 kHz, and Opus decoders output 48 kHz regardless of the
# rate that was encoded, so encoding at 48 kHz keeps output_rate() equal to what players
# actually decode.
OPUS_RATE: Final = 48000

SAMPLE_RATES: Final[tuple[int, ...]] = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
"""The output rates a request may ask for (`sample_rate`), where its format allows."""

WAV_FORMATS: Final = ("wav", "ulaw_wav", "alaw_wav")
"""Formats with a WAV header, whose sizes a whole file gets exact (wav.exact_sizes)."""


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
    """Streaming WAV: an unknown-size header, then raw PCM at the voice's rate (or at
    `rate`, resampled as one continuous stream)."""

    def __init__(self, input_rate: int, rate: int | None = None) -> None:
        _check_rate(input_rate)
        self.rate = rate or input_rate
        self._samples = ResampledSamples(input_rate, self.rate)
        self._header_sent = False
        self._done = False

    def _out(self, samples: Int16Array) -> bytes:
        data = samples.astype("<i2").tobytes()
        if self._header_sent or not data:
            # Hold the header back until there is audio, so an empty stream can still
            # get an exact (zero-length) header from flush().
            return data
        self._header_sent = True
        return wav_header(self.rate) + data

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise _FlushedError
        return self._out(self._samples.take(pcm))

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        # A dangling odd byte cannot form a sample; dropping it keeps the file valid.
        tail = self._out(self._samples.drain())
        return tail if self._header_sent else wav_header(self.rate, data_size=0)


class PcmEncoder:
    """Raw s16le mono, by default at 24 kHz (OpenAI's "pcm"), resampled as a continuous
    stream."""

    def __init__(self, input_rate: int, rate: int = PCM_RATE) -> None:
        _check_rate(input_rate)
        self.rate = rate
        self._samples = ResampledSamples(input_rate, rate)
        self._done = False

    def encode(self, pcm: bytes) -> bytes:
        if self._done:
            raise _FlushedError
        return self._samples.take(pcm).astype("<i2").tobytes()

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self._samples.drain().astype("<i2").tobytes()


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


def _rates(fmt: str) -> tuple[int, ...]:
    """The choices of SAMPLE_RATES that `fmt` can be made at."""
    if fmt in ("ulaw", "alaw", "ulaw_wav", "alaw_wav"):
        return (G711_RATE,)
    spec = _AV_SPECS.get(fmt)
    codec_rates = _supported_rates(spec.codec) if spec is not None else None
    return tuple(r for r in SAMPLE_RATES if codec_rates is None or r in codec_rates)


def check_output(fmt: str, rate: int | None) -> None:
    """Refuse (ValueError) a sample rate the format cannot be made at."""
    _check_format(fmt)
    if rate is not None and rate not in (allowed := _rates(fmt)):
        choices = ", ".join(str(r) for r in allowed)
        raise ValueError(f"{fmt} cannot be made at {rate} Hz; it takes {choices}")


def output_rate(fmt: str, input_rate: int, rate: int | None = None) -> int:
    """Sample rate of the audio that ``make_encoder(fmt, input_rate, rate)`` produces."""
    _check_rate(input_rate)
    check_output(fmt, rate)
    if rate is not None:
        return rate
    if fmt == "pcm":
        return PCM_RATE
    if fmt == "wav":
        return input_rate
    if fmt not in _AV_SPECS:
        return G711_RATE
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

    def __init__(self, fmt: str, input_rate: int, rate: int | None = None) -> None:
        spec = _AV_SPECS[fmt]
        self.rate = output_rate(fmt, input_rate, rate)
        self._samples = ResampledSamples(input_rate, self.rate)
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

    def _encode_samples(self, samples: Int16Array) -> None:
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
        self._encode_samples(self._samples.take(pcm))
        return self._sink.drain()

    def flush(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        try:
            self._encode_samples(self._samples.drain())
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


def make_encoder(fmt: str, input_rate: int, rate: int | None = None) -> StreamEncoder:
    """Create a fresh, independent streaming encoder for ``fmt``.

    ``input_rate`` is the rate of the int16 mono PCM that will be passed to encode();
    ``rate`` the one asked for (None: the format's default); ``output_rate(fmt,
    input_rate, rate)`` tells the rate of the encoded audio.
    """
    _check_rate(input_rate)
    check_output(fmt, rate)
    if fmt == "wav":
        return WavEncoder(input_rate, rate)
    if fmt == "pcm":
        return PcmEncoder(input_rate, rate or PCM_RATE)
    if fmt in ("ulaw", "alaw", "ulaw_wav", "alaw_wav"):
        return G711Encoder(fmt[:4], input_rate, wav=fmt.endswith("_wav"))
    return AvEncoder(fmt, input_rate, rate)
