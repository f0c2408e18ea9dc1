"""The wire-format helpers against protobuf's own encoding examples and each other."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tts_service.engine.protowire import (
    LEN,
    VARINT,
    WireError,
    encode_varint,
    fields,
    length_field,
    read_varint,
    varint_field,
)


def test_varints_as_the_encoding_guide_writes_them() -> None:
    assert encode_varint(1) == b"\x01"
    assert encode_varint(150) == b"\x96\x01"
    assert read_varint(b"\x96\x01", 0) == (150, 2)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_a_varint_reads_back(value: int) -> None:
    data = encode_varint(value)
    assert read_varint(data + b"\x00", 0) == (value, len(data))


def test_fields_give_positions_and_values_without_reading_payloads() -> None:
    message = varint_field(1, 150) + length_field(2, "testing") + length_field(3, b"\x08\x01")
    found = list(fields(message, 0, len(message)))
    assert [(f.number, f.wire) for f in found] == [(1, VARINT), (2, LEN), (3, LEN)]
    assert found[0].value == 150
    assert message[found[1].value : found[1].end] == b"testing"
    assert found[1].start == found[0].end and found[2].end == len(message)
    (inner,) = fields(message, found[2].value, found[2].end)  # an embedded message
    assert (inner.number, inner.value) == (1, 1)


def test_malformed_messages_are_wire_errors() -> None:
    with pytest.raises(WireError):
        read_varint(b"\x96", 0)  # continuation bit, then nothing
    cut = length_field(2, "testing")[:-1]
    with pytest.raises(WireError):
        list(fields(cut, 0, len(cut)))
    with pytest.raises(WireError):
        list(fields(b"\x0b", 0, 1))  # wire type 3 (groups) is not supported
