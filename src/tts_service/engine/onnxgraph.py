"""An ONNX model's graph as nodes and names, read and rebuilt with protowire.

Enough to cut a model into two (seam.py): each node's op type, inputs and outputs, the
graph's inputs, outputs and initializers, all kept as their original bytes so a new model
is the old one's fields copied, never re-encoded. A model whose weights are external
(weights.py) stays small here: its tensors are references into the voice file.

The `onnx` package would parse every weight to read these names (about a second and a
second copy of a medium voice's 60 MB); it is a test dependency only, and the container
image does without it.

Field numbers are those of onnx.proto (stable since ONNX 1.0). A model that repeats its
graph field (alignment.py appends one; protobuf merges them) reads as one graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tts_service.engine.protowire import LEN, Buffer, WireError, fields, length_field, varint_field

_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INITIALIZER = 1, 2, 5
_GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE_INITIALIZER = 11, 12, 15
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP_TYPE, _NODE_ATTRIBUTE = 1, 2, 4, 5
_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS = 6, 11
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2
_TENSOR_NAME = 8
_TYPE_TENSOR, _TENSOR_ELEM_TYPE, _TENSOR_SHAPE, _SHAPE_DIM, _DIM_PARAM = 1, 1, 2, 1, 2
_SPARSE_VALUES = 1


class GraphFormatError(WireError):
    """The model is not an ONNX graph this module can take apart."""


@dataclass(frozen=True)
class Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    raw: bytes
    """The NodeProto's bytes."""
    has_subgraph: bool
    """An If, Loop or Scan body: it may read outer tensors no input names."""


@dataclass
class Graph:
    """The parts of a ModelProto that splitting needs, each as its own bytes."""

    model_fields: list[bytes] = field(default_factory=list)
    """Every field of the model but its graph (opset, IR version, metadata)."""
    name: bytes = b""
    nodes: list[Node] = field(default_factory=list)
    initializers: dict[str, bytes] = field(default_factory=dict)
    """Name -> the TensorProto field (a GraphProto.initializer or sparse_initializer)."""
    inputs: dict[str, bytes] = field(default_factory=dict)
    """Name -> the ValueInfoProto field."""
    outputs: list[str] = field(default_factory=list)

    def model(self, nodes: list[Node], inputs: list[bytes], outputs: list[str]) -> bytes:
        """A model of these nodes (in their order), `inputs` (GraphProto.input fields, see
        `graph_input`), the named outputs, and the initializers the nodes read."""
        used = {name for node in nodes for name in node.inputs}
        parts = [self.name]
        parts += [length_field(_GRAPH_NODE, node.raw) for node in nodes]
        parts += [raw for name, raw in self.initializers.items() if name in used]
        parts += inputs
        for name in outputs:
            value_info = length_field(_VALUE_INFO_NAME, name)
            parts.append(length_field(_GRAPH_OUTPUT, value_info))
        return b"".join(self.model_fields) + length_field(_MODEL_GRAPH, b"".join(parts))


def graph_input(name: str, elem_type: int, rank: int | None) -> bytes:
    """A GraphProto.input field: a tensor of `elem_type` (TensorProto.DataType) and
    `rank` dimensions of free size (None: any rank)."""
    tensor = varint_field(_TENSOR_ELEM_TYPE, elem_type)
    if rank is not None:
        dims = b"".join(
            length_field(_SHAPE_DIM, length_field(_DIM_PARAM, f"{name}_{axis}"))
            for axis in range(rank)
        )
        tensor += length_field(_TENSOR_SHAPE, dims)
    value_info = length_field(_VALUE_INFO_NAME, name)
    value_info += length_field(_VALUE_INFO_TYPE, length_field(_TYPE_TENSOR, tensor))
    return length_field(_GRAPH_INPUT, value_info)


def read_graph(model: Buffer) -> Graph:
    """The model's graph; GraphFormatError when it is not one."""
    graph = Graph()
    try:
        for part in fields(model, 0, len(model)):
            if part.number == _MODEL_GRAPH and part.wire == LEN:
                _read_graph_fields(model, part.value, part.end, graph)
            else:
                graph.model_fields.append(bytes(model[part.start : part.end]))
    except (WireError, UnicodeDecodeError) as error:
        raise GraphFormatError(f"its graph could not be read ({error})") from error
    return graph


def _read_graph_fields(data: Buffer, start: int, end: int, graph: Graph) -> None:
    for part in fields(data, start, end):
        if part.wire != LEN:
            continue
        raw = bytes(data[part.start : part.end])
        if part.number == _GRAPH_NODE:
            graph.nodes.append(_node(data, part.value, part.end))
        elif part.number == _GRAPH_NAME and not graph.name:
            graph.name = raw
        elif part.number == _GRAPH_INITIALIZER:
            graph.initializers[_string(data, part.value, part.end, _TENSOR_NAME)] = raw
        elif part.number == _GRAPH_SPARSE_INITIALIZER:
            values = _first(data, part.value, part.end, _SPARSE_VALUES)
            name = _string(data, values[0], values[1], _TENSOR_NAME) if values else ""
            graph.initializers[name] = raw
        elif part.number == _GRAPH_INPUT:
            graph.inputs[_string(data, part.value, part.end, _VALUE_INFO_NAME)] = raw
        elif part.number == _GRAPH_OUTPUT:
            graph.outputs.append(_string(data, part.value, part.end, _VALUE_INFO_NAME))


def _node(data: Buffer, start: int, end: int) -> Node:
    inputs: list[str] = []
    outputs: list[str] = []
    op_type = ""
    subgraph = False
    for part in fields(data, start, end):
        if part.wire != LEN:
            continue
        if part.number == _NODE_INPUT:
            inputs.append(_text(data, part.value, part.end))
        elif part.number == _NODE_OUTPUT:
            outputs.append(_text(data, part.value, part.end))
        elif part.number == _NODE_OP_TYPE:
            op_type = _text(data, part.value, part.end)
        elif part.number == _NODE_ATTRIBUTE:
            subgraph = subgraph or any(
                attribute.number in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS)
                for attribute in fields(data, part.value, part.end)
            )
    raw = bytes(data[start:end])
    return Node(op_type, tuple(inputs), tuple(outputs), raw, subgraph)


def _text(data: Buffer, start: int, end: int) -> str:
    return bytes(data[start:end]).decode("utf-8")


def _first(data: Buffer, start: int, end: int, number: int) -> tuple[int, int] | None:
    for part in fields(data, start, end):
        if part.number == number and part.wire == LEN:
            return part.value, part.end
    return None


def _string(data: Buffer, start: int, end: int, number: int) -> str:
    found = _first(data, start, end, number)
    return "" if found is None else _text(data, *found)


def initializer_names(model: Buffer) -> set[str]:
    """The names of the model's initializers (its nodes left unread)."""
    names: set[str] = set()
    try:
        for part in fields(model, 0, len(model)):
            if part.number != _MODEL_GRAPH or part.wire != LEN:
                continue
            for inner in fields(model, part.value, part.end):
                if inner.number == _GRAPH_INITIALIZER and inner.wire == LEN:
                    names.add(_string(model, inner.value, inner.end, _TENSOR_NAME))
    except (WireError, UnicodeDecodeError) as error:
        raise GraphFormatError(f"its graph could not be read ({error})") from error
    return names
