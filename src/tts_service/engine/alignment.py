"""Load a Piper model so that it also says how many audio frames each phoneme id took.

Piper's VITS models compute per-id durations (the output of their one `Ceil` node) and
throw them away; marking that tensor as a graph output makes onnxruntime return it next to
the audio, which it does not change. Piper's own patch parses the whole model with the
`onnx` package (about a second and a second copy of the weights for a medium voice). This
module reads the protobuf wire format instead, skipping the weights unread, finds the
tensor's name, and appends a three-field message to the model's bytes: protobuf merges a
repeated embedded message field that appears again, so the result is the model with one
more graph output.

Field numbers are those of onnx.proto (stable since ONNX 1.0).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tts_service.engine.protowire import LEN, VARINT, WireError, fields, length_field

log = logging.getLogger(__name__)

_MODEL_GRAPH = 7
_GRAPH_NODE = 1
_GRAPH_OUTPUT = 12
_NODE_OUTPUT = 2
_NODE_OP_TYPE = 4
_VALUE_INFO_NAME = 1


@dataclass(frozen=True)
class AlignedModel:
    """A model ready for an inference session, and whether it reports durations."""

    source: bytes
    """The model's bytes, patched when it reports durations."""
    durations: bool
    reason: str = ""
    """Why it cannot report durations (empty when it can)."""


def _fields(data: memoryview) -> Iterator[tuple[int, int, memoryview | int]]:
    """(field number, wire type, value) of one message; length-delimited values are views,
    so a 60 MB weight tensor is skipped, not copied."""
    for field in fields(data, 0, len(data)):
        if field.wire == VARINT:
            yield field.number, field.wire, field.value
        elif field.wire == LEN:
            yield field.number, field.wire, data[field.value : field.end]


def _strings(message: memoryview, number: int) -> list[str]:
    return [
        bytes(value).decode("utf-8")
        for field, wire, value in _fields(message)
        if field == number and wire == LEN and isinstance(value, memoryview)
    ]


def _submessages(message: memoryview, number: int) -> Iterator[memoryview]:
    for field, wire, value in _fields(message):
        if field == number and wire == LEN and isinstance(value, memoryview):
            yield value


def duration_tensor(model: bytes) -> tuple[str | None, bool, str]:
    """The name of the model's `Ceil` output, whether it is already a graph output, and
    (when there is no single one) why not."""
    view = memoryview(model)
    ceil: list[str] = []
    outputs: list[str] = []
    for graph in _submessages(view, _MODEL_GRAPH):
        for node in _submessages(graph, _GRAPH_NODE):
            if "Ceil" in _strings(node, _NODE_OP_TYPE):
                ceil.extend(_strings(node, _NODE_OUTPUT))
        for output in _submessages(graph, _GRAPH_OUTPUT):
            outputs.extend(_strings(output, _VALUE_INFO_NAME))
    if len(set(ceil)) != 1:
        found = "no" if not ceil else f"{len(set(ceil))}"
        return None, False, f"the model has {found} Ceil tensors, not the one Piper's have"
    name = ceil[0]
    return name, name in outputs, ""


def with_output(model: bytes, tensor: str) -> bytes:
    """`model` with `tensor` added to its graph outputs (protobuf merges the appended graph
    into the first one)."""
    value_info = length_field(_VALUE_INFO_NAME, tensor.encode("utf-8"))
    graph = length_field(_GRAPH_OUTPUT, value_info)
    return model + length_field(_MODEL_GRAPH, graph)


def load_aligned(model_path: Path) -> AlignedModel:
    """The model, patched to report per-id durations when it can be; a model that cannot
    (not a Piper VITS graph, unreadable as protobuf) is loaded as it is and says why."""
    return aligned(model_path.read_bytes(), model_path.name)


def aligned(data: bytes, name: str) -> AlignedModel:
    """`load_aligned` for a model already read (`name` is for the log). Only the graph's
    nodes and outputs are read: a model whose weights are external (weights.py) works the
    same, and the patch leaves its tensors as they are."""
    try:
        tensor, present, reason = duration_tensor(data)
    except (WireError, UnicodeDecodeError) as error:
        reason = f"its graph could not be read ({error})"
        log.warning("voice model %s: no word timestamps: %s", name, reason)
        return AlignedModel(data, False, reason)
    if tensor is None:
        log.info("voice model %s: no word timestamps: %s", name, reason)
        return AlignedModel(data, False, reason)
    return AlignedModel(data if present else with_output(data, tensor), True)
