"""Protobuf's wire format, the little of it that reading and editing ONNX models needs.

ONNX models are protobuf messages; the `onnx` package would parse a whole model (its
weights included) to read a few names. These helpers walk a message's fields by position,
payloads unread, and write the few fields the service appends or builds (alignment.py,
weights.py, devices.py). Wire types and encodings: protobuf's encoding guide.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass

VARINT, I64, LEN, I32 = 0, 1, 2, 5

Buffer = bytes | memoryview | mmap.mmap


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass(frozen=True)
class Field:
    number: int
    wire: int
    start: int
    """Where the field's key begins."""
    end: int
    """Where the field ends."""
    value: int
    """A varint's value, or where a length-delimited payload begins."""


def read_varint(data: Buffer, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def fields(data: Buffer, start: int, end: int) -> Iterator[Field]:
    """The fields of the message that lies in data[start:end], payloads not parsed."""
    pos = start
    while pos < end:
        key, after_key = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, stop = read_varint(data, after_key)
        elif wire == LEN:
            length, value = read_varint(data, after_key)
            stop = value + length
        elif wire in (I64, I32):
            value, stop = after_key, after_key + (8 if wire == I64 else 4)
        else:
            raise WireError(f"unsupported protobuf wire type {wire}")
        if stop > end:
            raise WireError("a field runs past its message")
        yield Field(number, wire, pos, stop, value)
        pos = stop


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | VARINT) + encode_varint(value)


def length_field(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field: bytes, a string (UTF-8) or an embedded message."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return encode_varint(number << 3 | LEN) + encode_varint(len(data)) + data
