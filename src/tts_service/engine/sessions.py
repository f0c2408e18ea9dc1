"""One ONNX session of a voice, set up as the service runs them."""

from __future__ import annotations

from pathlib import Path

import onnxruntime

from tts_service.engine.devices import CPU, Device, check_session
from tts_service.engine.weights import SharedWeights


def make_session(
    model: Path | bytes,
    threads: int,
    spin: bool = True,
    weights: SharedWeights | None = None,
    arena: bool = True,
    device: Device = CPU,
    graph: bytes | None = None,
) -> onnxruntime.InferenceSession:
    """One ONNX session; thread counts set explicitly because onnxruntime's default ignores
    container CPU limits. `spin=False` stops idle intra-op threads from busy-waiting, which
    matters when workers x threads > cores. With `weights`, the session uses that one copy
    of the model's tensors (a voice's sessions share it) instead of its own.

    `arena=False` turns onnxruntime's memory arena off: it keeps, per session and for good,
    the most memory its runs ever needed at once (~35 MB per second of the longest
    sentence's audio); the server's heap instead goes back to the system when it is idle
    (memory.py). Neither setting changes a single output bit.

    On CUDA, a session onnxruntime could only put on the CPU is a DeviceUnavailable.
    `graph`: a graph cut from the model's (seam.py), on the same `weights`."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.enable_cpu_mem_arena = arena
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if weights is not None:
        session = weights.session(options, providers=device.providers, graph=graph)
    else:
        source = model if isinstance(model, bytes) else str(model)
        session = onnxruntime.InferenceSession(
            source, sess_options=options, providers=device.providers
        )
    check_session(session, device)
    return session
