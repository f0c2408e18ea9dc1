"""A voice's front-end and decoder sessions: the split found (or taken from the cache),
built on the voice's shared weights, and checked once before it is used."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

from tts_service.engine.alignment import duration_tensor
from tts_service.engine.chunked import ChunkedDecoder, ChunkPlan
from tts_service.engine.onnxgraph import GraphFormatError, read_graph
from tts_service.engine.seam import NoSeam, Seam, decoder_model, find_seam, frontend_model
from tts_service.engine.sessions import make_session
from tts_service.engine.splitcache import SplitCache, StoredSplit, voice_key
from tts_service.engine.weights import SharedWeights

log = logging.getLogger(__name__)

SessionFactory = Callable[[bytes], onnxruntime.InferenceSession]
"""A session on the voice's shared weights that parses the given graph."""

# onnxruntime's names of tensor types -> ONNX TensorProto.DataType.
_ELEM_TYPES = {
    "tensor(float)": 1,
    "tensor(int32)": 6,
    "tensor(int64)": 7,
    "tensor(bool)": 9,
    "tensor(float16)": 10,
    "tensor(double)": 11,
}


@dataclass(frozen=True)
class ChunkSupport:
    """Whether a voice decodes in chunks: its decoder, or why it has none."""

    decoder: ChunkedDecoder | None
    reason: str = ""


@dataclass(frozen=True)
class ChunkSetup:
    """How a voice's chunk sessions are made."""

    plan: ChunkPlan
    cache_dir: Path | None
    """Where splits are kept (None: split at every load)."""
    threads: int
    spin: bool = True


def chunk_support(
    weights: SharedWeights | None,
    durations: bool,
    hop: int,
    setup: ChunkSetup,
    probe: dict[str, np.ndarray],
) -> ChunkSupport:
    """Split the graph the voice's sessions parse (`durations`: it reports them, see
    alignment.py), or take the split from the cache; build both sessions on the voice's
    `weights` and check them on `probe` (one sentence's model inputs): the decoder's audio
    must be `hop` samples a frame. Whatever fails, the voice decodes whole sentences."""
    if weights is None or weights.model is None:
        return ChunkSupport(None, "its weights are not shared (a GPU, or an unusual file)")
    graph = weights.graph()

    def session(cut: bytes) -> onnxruntime.InferenceSession:
        return make_session(weights.path, setup.threads, setup.spin, weights, False, graph=cut)

    try:
        return _support(weights.path, graph, durations, hop, setup, session, probe)
    except (RuntimeError, ValueError) as error:  # onnxruntime refused a cut graph
        log.warning("voice model %s decodes whole sentences: %s", weights.path.name, error)
        return ChunkSupport(None, f"its split graphs could not be loaded ({error})")


def _support(
    model_path: Path,
    graph: bytes,
    durations: bool,
    hop: int,
    setup: ChunkSetup,
    session: SessionFactory,
    probe: dict[str, np.ndarray],
) -> ChunkSupport:
    tensor = duration_tensor(graph)[0] if durations else None
    cache = SplitCache(setup.cache_dir) if setup.cache_dir is not None else None
    key = voice_key(model_path, "durations" if tensor else "plain")
    stored = cache.load(key) if cache is not None else None
    frontend = None
    if stored is None:
        stored, frontend = _split(graph, tensor, session)
        if cache is not None:
            cache.store(key, stored)
    if stored.seam is None:
        log.info("voice model %s decodes whole sentences: %s", model_path.name, stored.reason)
        return ChunkSupport(None, stored.reason)
    if frontend is None:
        frontend = session(stored.frontend)
    decoder = ChunkedDecoder(frontend, session(stored.decoder), stored.seam, hop, setup.plan)
    problem = _check(decoder, probe)
    if problem:
        log.warning("voice model %s decodes whole sentences: %s", model_path.name, problem)
        return ChunkSupport(None, problem)
    return ChunkSupport(decoder)


def _split(
    graph: bytes, durations: str | None, session: SessionFactory
) -> tuple[StoredSplit, onnxruntime.InferenceSession | None]:
    """The split of `graph`, and the front-end session built on the way (the decoder's
    inputs take their types from it)."""
    try:
        parsed = read_graph(graph)
        seam = find_seam(parsed, durations)
    except (NoSeam, GraphFormatError) as error:
        return StoredSplit(None, reason=str(error)), None
    frontend = frontend_model(parsed, seam)
    frontend_session = session(frontend)
    types = _output_types(frontend_session)
    if isinstance(types, str):
        return StoredSplit(None, reason=types), None
    decoder = decoder_model(parsed, seam, types)
    return StoredSplit(_named(seam), frontend, decoder), frontend_session


def _output_types(
    frontend: onnxruntime.InferenceSession,
) -> dict[str, tuple[int, int | None]] | str:
    """Each crossing tensor's element type and rank, as onnxruntime infers them."""
    types: dict[str, tuple[int, int | None]] = {}
    for output in frontend.get_outputs():
        elem = _ELEM_TYPES.get(output.type)
        if elem is None:
            return f"the seam tensor {output.name!r} has the unsupported type {output.type}"
        types[output.name] = (elem, None if output.shape is None else len(output.shape))
    return types


def _named(seam: Seam) -> Seam:
    """The seam without its node lists: the stored graphs hold the nodes."""
    return Seam(seam.z_p, seam.crossings, seam.durations, (), ())


def _check(decoder: ChunkedDecoder, probe: dict[str, np.ndarray]) -> str:
    """Why the split cannot be used, or "" (this also makes both sessions' first runs,
    whose one-time allocations then count in the memory the load is measured to add)."""
    seam = decoder.seam
    outputs = dict(zip(seam.frontend_outputs, decoder.frontend.run(None, probe), strict=True))
    frames = int(outputs[seam.z_p].shape[-1])
    for crossing in seam.crossings:
        if crossing.framewise and outputs[crossing.name].shape[-1] != frames:
            return f"the seam tensor {crossing.name!r} does not run along the frames"
    audio = decoder.decode_whole({c.name: outputs[c.name] for c in seam.crossings})
    if audio.size != frames * decoder.hop:
        return f"the decoder made {audio.size} samples of {frames} frames, not {decoder.hop} each"
    return ""
