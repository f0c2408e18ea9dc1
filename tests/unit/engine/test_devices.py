"""Choosing where voices run. The decisions are tested with the provider list and the
CUDA probe handed in (this machine has no GPU); the probe model and the session check run
on the real onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest

from tts_service.engine.devices import (
    CPU,
    CPU_PROVIDER,
    CUDA_PROVIDER,
    Device,
    check_session,
    choose_device,
    probe_cuda,
    probe_model,
)
from tts_service.errors import DeviceUnavailable

CPU_ONLY = [CPU_PROVIDER]
WITH_CUDA = [CUDA_PROVIDER, CPU_PROVIDER]


def works() -> str | None:
    return None


def fails() -> str | None:
    return "libcudnn.so.9: cannot open shared object file"


def never_probed() -> str | None:
    raise AssertionError("the probe ran although the choice was already clear")


def test_cpu_is_chosen_without_looking_for_cuda() -> None:
    assert choose_device("cpu", available=lambda: WITH_CUDA, probe=never_probed) == CPU
    assert CPU.providers == [CPU_PROVIDER]


def test_cuda_without_a_cuda_provider_stops_with_what_to_install() -> None:
    with pytest.raises(DeviceUnavailable) as refused:
        choose_device("cuda", available=lambda: CPU_ONLY, probe=never_probed)
    message = refused.value.message
    assert "no CUDA provider" in message and "GPU build of onnxruntime" in message
    assert refused.value.exit_code != 0


def test_cuda_whose_provider_cannot_be_created_stops_with_the_reason() -> None:
    with pytest.raises(DeviceUnavailable, match="libcudnn"):
        choose_device("cuda", available=lambda: WITH_CUDA, probe=fails)


def test_auto_falls_back_to_the_cpu_and_says_why() -> None:
    no_provider = choose_device("auto", available=lambda: CPU_ONLY, probe=never_probed)
    assert (no_provider.requested, no_provider.active) == ("auto", "cpu")
    assert "no CUDA provider" in no_provider.reason
    broken = choose_device("auto", available=lambda: WITH_CUDA, probe=fails)
    assert broken.active == "cpu" and "libcudnn" in broken.reason
    assert broken.providers == [CPU_PROVIDER]


def test_working_cuda_is_taken_with_heuristic_convolution_search() -> None:
    for requested in ("cuda", "auto"):
        device = choose_device(requested, available=lambda: WITH_CUDA, probe=works)
        assert device.active == "cuda" and device.provider == CUDA_PROVIDER
        first, fallback = device.providers
        assert first == (CUDA_PROVIDER, {"cudnn_conv_algo_search": "HEURISTIC"})
        assert fallback == CPU_PROVIDER
    assert device.to_dict() == {
        "requested": "auto",
        "active": "cuda",
        "reason": "the CUDA provider works",
    }


def test_the_probe_model_is_a_valid_onnx_identity() -> None:
    session = onnxruntime.InferenceSession(probe_model(), providers=[CPU_PROVIDER])
    (out,) = session.run(None, {"x": np.array([2.5], dtype=np.float32)})
    assert out.tolist() == [2.5]


def test_a_session_that_landed_on_the_cpu_fails_the_cuda_check() -> None:
    session = onnxruntime.InferenceSession(probe_model(), providers=[CPU_PROVIDER])
    check_session(session, CPU)  # what was asked
    with pytest.raises(DeviceUnavailable, match="without the CUDA provider"):
        check_session(session, Device("cuda", "cuda", "the CUDA provider works"))


def test_the_real_probe_agrees_with_the_installed_onnxruntime() -> None:
    """This machine's onnxruntime: the probe finds CUDA exactly when it offers a provider
    that then works; with the CPU build it must report a problem, never None."""
    if CUDA_PROVIDER not in onnxruntime.get_available_providers():
        assert probe_cuda() is not None
        assert choose_device("auto").active == "cpu"
    else:  # a GPU build: the probe's answer decides, and choose_device follows it
        expected = "cuda" if probe_cuda() is None else "cpu"
        assert choose_device("auto").active == expected
