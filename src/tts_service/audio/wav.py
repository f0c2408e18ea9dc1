"""WAV headers: the canonical 44-byte form (PCM, or G.711 with its format tag), with
unknown sizes while streaming and exact ones for a whole file."""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["HEADER_SIZE", "UNKNOWN_SIZE", "exact_sizes", "wav_bytes", "wav_header"]

# RIFF/data size used when the length is unknown (streaming). 0xFFFFFFFF is what streaming
# servers send; ffmpeg/PyAV, libsndfile and Python's wave module all read such a file to
# its real end. A size of 0 is *not* safe: libsndfile then decodes zero frames.
UNKNOWN_SIZE: Final = 0xFFFFFFFF
HEADER_SIZE: Final = 44
WAVE_FORMAT_PCM: Final = 1


def wav_header(
    sample_rate: int,
    channels: int = 1,
    sample_width: int = 2,
    data_size: int | None = None,
    format_tag: int = WAVE_FORMAT_PCM,
) -> bytes:
    """Return a canonical 44-byte WAV header.

    ``data_size=None`` means the length is not known yet (streaming); both RIFF sizes are
    then written as 0xFFFFFFFF, which decoders treat as "read until end of stream". G.711
    (format tags 6 and 7) keeps the same 16-byte fmt chunk: clients that cut 44 bytes off
    a WAV (Pipecat's Piper client does) then get the audio exactly.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if channels <= 0 or sample_width <= 0:
        raise ValueError("channels and sample_width must be positive")
    if data_size is None:
        riff_size = data_len = UNKNOWN_SIZE
    else:
        if data_size < 0 or data_size + HEADER_SIZE - 8 > UNKNOWN_SIZE:
            raise ValueError(f"data_size out of range for WAV: {data_size}")
        riff_size = data_size + HEADER_SIZE - 8
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
                16,  # fmt chunk size
                format_tag,
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


def exact_sizes(parts: list[bytes]) -> list[bytes]:
    """A streamed WAV (header with unknown sizes, then data), as parts, with the real sizes
    written into its header; only the first part is copied."""
    parts = [part for part in parts if part]
    total = sum(len(part) for part in parts)
    if not parts or len(parts[0]) < HEADER_SIZE or total - 8 > UNKNOWN_SIZE:
        return parts
    head = bytearray(parts[0])
    struct.pack_into("<I", head, 4, total - 8)
    struct.pack_into("<I", head, 40, total - HEADER_SIZE)
    return [bytes(head), *parts[1:]]
