"""One copy of a voice's weights, shared by all of its ONNX sessions.

onnxruntime copies every initializer of a model into each session it builds, so a voice
with a worker session and an all-cores session held its ~60 MB of weights twice. Here the
model file is read once: its large tensors go into numpy arrays handed to every session
with `SessionOptions.add_initializer` (onnxruntime then uses that memory in place), and the
model the sessions parse is the same graph with those tensors marked external, so nobody
parses or copies the weights again.

The ONNX file is a protobuf; only the few fields needed are read here (by hand, so no
`onnx` package is needed at run time): ModelProto.graph (7) -> GraphProto.initializer (5)
-> TensorProto dims (1), data_type (2), name (8), raw_data (9), external_data (13),
data_location (14). Anything unusual (a tensor without raw_data, a type numpy cannot
view, a big-endian host) is simply left inside the model, unshared.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from tts_service.engine.devices import Provider
from tts_service.engine.onnxgraph import initializer_names
from tts_service.engine.protowire import (
    LEN,
    VARINT,
    Field,
    WireError,
    fields,
    length_field,
    read_varint,
    varint_field,
)

# Smaller tensors stay in the graph: onnxruntime reads shape constants while it optimizes.
MIN_SHARED_BYTES = 4096

# ONNX TensorProto.DataType -> numpy, little-endian as raw_data is stored.
_DTYPES: dict[int, str] = {
    1: "<f4",
    2: "u1",
    3: "i1",
    4: "<u2",
    5: "<i2",
    6: "<i4",
    7: "<i8",
    9: "?",
    10: "<f2",
    11: "<f8",
    12: "<u4",
    13: "<u8",
}

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5
_DIMS, _DATA_TYPE, _NAME, _RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION = 1, 2, 8, 9, 13, 14
_EXTERNAL = 1
# Where a model loaded from bytes finds its external data: the model file's own folder.
_EXTERNAL_FOLDER = "session.model_external_initializers_file_folder_path"


class ModelFormatError(WireError):
    """The file is not a protobuf this module can walk."""


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    dims: tuple[int, ...]
    offset: int
    """Where its raw bytes begin in the file."""
    length: int


def _dims(data: bytes | mmap.mmap, field: Field) -> list[int]:
    if field.wire == VARINT:
        return [field.value]
    dims, pos = [], field.value  # packed
    while pos < field.end:
        dim, pos = read_varint(data, pos)
        dims.append(dim)
    return dims


def _shareable(data: bytes | mmap.mmap, message: Field) -> _Tensor | None:
    """The tensor in `message` if it can be shared: raw little-endian data of a known
    type, large enough, stored in the file itself."""
    name, dtype, raw, dims = None, None, None, []
    for field in fields(data, message.value, message.end):
        if field.number == _NAME and field.wire == LEN:
            name = bytes(data[field.value : field.end]).decode("utf-8", "replace")
        elif field.number == _DATA_TYPE and field.wire == VARINT:
            dtype = _DTYPES.get(field.value)
        elif field.number == _RAW_DATA and field.wire == LEN:
            raw = field
        elif field.number == _DIMS:
            dims.extend(_dims(data, field))
        elif field.number == _DATA_LOCATION and field.value == _EXTERNAL:
            return None
    if name is None or dtype is None or raw is None:
        return None
    length = raw.end - raw.value
    if length < MIN_SHARED_BYTES or length != int(np.prod(dims)) * np.dtype(dtype).itemsize:
        return None
    return _Tensor(name, dtype, tuple(dims), raw.value, length)


def _external(data: bytes | mmap.mmap, message: Field, tensor: _Tensor, location: str) -> bytes:
    """The TensorProto of `message` with its raw data replaced by a reference to it."""
    kept = b"".join(
        bytes(data[field.start : field.end])
        for field in fields(data, message.value, message.end)
        if field.number not in (_RAW_DATA, _EXTERNAL_DATA, _DATA_LOCATION)
    )
    entries = {"location": location, "offset": str(tensor.offset), "length": str(tensor.length)}
    for key, value in entries.items():
        entry = length_field(1, key.encode()) + length_field(2, value.encode())
        kept += length_field(_EXTERNAL_DATA, entry)
    kept += varint_field(_DATA_LOCATION, _EXTERNAL)
    return length_field(_GRAPH_INITIALIZER, kept)


def _split_graph(
    data: bytes | mmap.mmap, graph: Field, location: str
) -> tuple[bytes, list[_Tensor]]:
    """The graph's bytes with its shareable tensors made external, and those tensors."""
    parts: list[bytes] = []
    tensors: list[_Tensor] = []
    for field in fields(data, graph.value, graph.end):
        tensor = None
        if field.number == _GRAPH_INITIALIZER and field.wire == LEN:
            tensor = _shareable(data, field)
        if tensor is None:
            parts.append(bytes(data[field.start : field.end]))
        else:
            tensors.append(tensor)
            parts.append(_external(data, field, tensor, location))
    return length_field(_MODEL_GRAPH, b"".join(parts)), tensors


def split_model(data: bytes | mmap.mmap, location: str) -> tuple[bytes, list[_Tensor]]:
    """The model with its large tensors referring to `location` (the file itself, at
    their own offsets), and those tensors. Raises ModelFormatError on a malformed file."""
    parts: list[bytes] = []
    tensors: list[_Tensor] = []
    try:
        for field in fields(data, 0, len(data)):
            if field.number == _MODEL_GRAPH and field.wire == LEN:
                graph, tensors = _split_graph(data, field, location)
                parts.append(graph)
            else:
                parts.append(bytes(data[field.start : field.end]))
    except WireError as error:
        raise ModelFormatError(str(error)) from error
    return b"".join(parts), tensors


class SharedWeights:
    """A model file's large tensors, read once, and the graph that refers to them.

    A file this module cannot walk (or a big-endian host) shares nothing: its sessions load
    the file as onnxruntime would, and onnxruntime's own error tells what is wrong."""

    def __init__(self, model_path: Path) -> None:
        self.path = model_path
        # onnxruntime resolves links and refuses external data outside the model's folder:
        # name the file where it really lies (a voice folder may link to models elsewhere).
        self._real = model_path.resolve()
        self.location = self._real.name
        self.model: bytes | None = None
        self._arrays: dict[str, np.ndarray] = {}
        if sys.byteorder == "little":
            self._split()
        self._values = {
            name: onnxruntime.OrtValue.ortvalue_from_numpy(array)
            for name, array in self._arrays.items()
        }

    def _split(self) -> None:
        with open(self.path, "rb") as handle:
            try:
                with _mapped(handle.fileno()) as data:
                    model, tensors = split_model(data, self.location)
            except (ModelFormatError, ValueError, OSError):
                return  # an empty or malformed file: onnxruntime will say what is wrong
            self._arrays = {tensor.name: _read(handle.fileno(), tensor) for tensor in tensors}
            self.model = model

    def graph(self) -> bytes:
        """The model its sessions parse: the graph with the shared tensors external, or the
        whole file when nothing is shared."""
        return self.model if self.model is not None else self.path.read_bytes()

    def use_graph(self, model: bytes) -> None:
        """Sessions parse `model` from now on: `graph()` with outputs added (alignment.py's
        durations), its tensors left as they were, so they are still the shared ones."""
        self.model = model

    @property
    def shared_bytes(self) -> int:
        """Bytes of weights held once for all sessions."""
        return sum(array.nbytes for array in self._arrays.values())

    def session(
        self,
        options: onnxruntime.SessionOptions,
        providers: Sequence[Provider],
        graph: bytes | None = None,
    ) -> onnxruntime.InferenceSession:
        """A session on the shared tensors. onnxruntime checks (and may read a few of) the
        external tensors while it optimizes the graph: it finds them in the model file.

        `graph`: parse this model instead of `graph()`, one cut from it (seam.py: the
        front end, the decoder) whose tensors are still the shared ones; each is handed
        only the tensors it reads."""
        if self.model is None:
            if graph is not None:
                raise ValueError("a model whose weights are not shared has no cut graphs")
            return onnxruntime.InferenceSession(
                str(self.path), sess_options=options, providers=providers
            )
        model = self.model if graph is None else graph
        used = None if graph is None else initializer_names(graph)
        for name, value in self._values.items():
            if used is None or name in used:
                options.add_initializer(name, value)
        options.add_session_config_entry(_EXTERNAL_FOLDER, str(self._real.parent))
        return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)


def _mapped(fileno: int) -> mmap.mmap:
    return mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)


def _read(fileno: int, tensor: _Tensor) -> np.ndarray:
    """The tensor's bytes, read into an aligned array of its type."""
    array = np.empty(tensor.dims, dtype=np.dtype(tensor.dtype))
    if os.preadv(fileno, [array.data.cast("B")], tensor.offset) != tensor.length:
        raise ModelFormatError(f"tensor {tensor.name!r} is cut short in the file")
    return array
