"""Where the voices run: the CPU, or a GPU through onnxruntime's CUDA provider.

onnxruntime asked for CUDA where it cannot create the CUDA provider (the CPU package is
installed, or CUDA/cuDNN libraries are missing) logs a warning and runs on the CPU; a
server that believed it ran on a GPU would then be slow without saying why. So the choice
is checked once, at start: `cuda` that cannot be had stops the server with the reason,
`auto` takes CUDA when a probe session really gets it and says which it took.

The probe is a one-node model (Identity) built here: creating its session with the CUDA
provider loads the same provider libraries a voice's session needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tts_service.engine.protowire import length_field, varint_field
from tts_service.errors import DeviceUnavailable

log = logging.getLogger(__name__)

DeviceName = Literal["cpu", "cuda", "auto"]
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
# Piper's own CUDA set-up: the exhaustive cuDNN convolution search costs more at every new
# sentence length than it ever saves.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
GPU_INSTALL_HINT = (
    "install the GPU build of onnxruntime in place of the CPU one (both install the same "
    "module; see the README's GPU section, or build the image with DEVICE=cuda)"
)

Provider = str | tuple[str, dict[str, str]]


@dataclass(frozen=True)
class Device:
    """The device in use, and why: what `/health` reports."""

    requested: DeviceName
    active: Literal["cpu", "cuda"]
    reason: str

    @property
    def providers(self) -> list[Provider]:
        """onnxruntime's providers for a voice session, in order of preference."""
        if self.active == "cuda":
            return [(CUDA_PROVIDER, dict(CUDA_OPTIONS)), CPU_PROVIDER]
        return [CPU_PROVIDER]

    @property
    def provider(self) -> str:
        return CUDA_PROVIDER if self.active == "cuda" else CPU_PROVIDER

    def to_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "active": self.active, "reason": self.reason}


CPU = Device("cpu", "cpu", "asked for the CPU")


def choose_device(
    requested: DeviceName,
    available: Callable[[], Sequence[str]] | None = None,
    probe: Callable[[], str | None] | None = None,
) -> Device:
    """The device to run on. `available` lists onnxruntime's providers; `probe` tries a
    CUDA session and returns why it failed, or None when it worked (both injectable so the
    decisions can be tested without a GPU). DeviceUnavailable when `cuda` cannot be had."""
    if requested == "cpu":
        return CPU
    offered = (available or _available_providers)()
    problem: str | None
    if CUDA_PROVIDER not in offered:
        problem = (
            f"this onnxruntime has no CUDA provider (it offers {', '.join(offered)}); "
            + GPU_INSTALL_HINT
        )
    else:
        problem = (probe or probe_cuda)()
    if problem is None:
        return Device(requested, "cuda", "the CUDA provider works")
    if requested == "cuda":
        raise DeviceUnavailable(f"--device cuda: {problem}")
    log.warning("--device auto: running on the CPU because %s", problem)
    return Device(requested, "cpu", problem)


def check_session(session: Any, device: Device) -> None:
    """A session made for CUDA that onnxruntime quietly put on the CPU is an error."""
    if device.active == "cuda" and CUDA_PROVIDER not in session.get_providers():
        raise DeviceUnavailable(
            "onnxruntime created the voice's session without the CUDA provider "
            "(see its warning above for the library it could not load)"
        )


def _available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def probe_cuda() -> str | None:
    """Create a session on CUDA for a one-node model; why it failed, or None."""
    import onnxruntime

    try:
        # CUDA and cuDNN from NVIDIA's pip wheels (the gpu extra), where no system-wide
        # copy is on the library path; a no-op where they are not installed.
        onnxruntime.preload_dlls()
    except Exception as exc:
        log.debug("onnxruntime.preload_dlls: %s", exc)
    try:
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # its fallback warning is what this function reports
        session = onnxruntime.InferenceSession(
            probe_model(),
            sess_options=options,
            providers=Device("cuda", "cuda", "probe").providers,
        )
    except Exception as exc:  # onnxruntime raises its own, unexported, error types
        return f"onnxruntime could not create a CUDA session: {exc}"
    if CUDA_PROVIDER not in session.get_providers():
        return (
            "onnxruntime could not create the CUDA provider (a CUDA or cuDNN library it "
            "needs is missing or does not match; run with TTS_LOG_LEVEL=debug, or see "
            "onnxruntime's CUDA requirements)"
        )
    return None


# --- a minimal ONNX model, written in protobuf's wire format (field numbers: onnx.proto)


def _float_vector(name: str) -> bytes:
    """ValueInfoProto: `name`, a float32 tensor of shape [1]."""
    shape = length_field(1, varint_field(1, 1))  # TensorShapeProto.dim { dim_value: 1 }
    tensor = varint_field(1, 1) + length_field(2, shape)  # elem_type FLOAT, shape
    return length_field(1, name) + length_field(2, length_field(1, tensor))  # type.tensor_type


def probe_model() -> bytes:
    """`y = Identity(x)` on one float: ir_version 7, opset 13."""
    node = length_field(1, "x") + length_field(2, "y") + length_field(4, "Identity")
    graph = length_field(1, node) + length_field(2, "probe")
    graph += length_field(11, _float_vector("x")) + length_field(12, _float_vector("y"))
    opset = length_field(1, "") + varint_field(2, 13)
    return varint_field(1, 7) + length_field(8, opset) + length_field(7, graph)
