"""Generate a tiny, fast, deterministic Piper-compatible voice for tests.

The generated voice is a real ONNX model with Piper's input/output signature and a
real Piper voice config (espeak ``en-us`` phonemes, the same phoneme id map as the
bundled ``en_US-joe-medium`` voice), so ``piper.PiperVoice.load()`` and every code path
around it work unchanged. Instead of speech it produces a sine tone:

* length: ``T = round(N * 256 * length_scale)`` samples, where ``N`` is the number of
  phoneme ids fed to the model (so ``length_scale=2.0`` doubles the duration, like a
  real voice; 256 is Piper's default hop length);
* frequency: ``200 Hz + 100 Hz * sid`` (``200 Hz`` for single-speaker voices);
* amplitude: ``0.5`` (deliberately not full scale, so normalisation is observable).

``noise_scale`` and ``noise_w_scale`` are accepted but ignored, so output is
bit-for-bit deterministic.

With ``alignments=True`` the model also has Piper's duration tensor (one ``Ceil`` node):
phoneme id ``i`` lasts ``ceil(length_scale * (1 + i % 3))`` frames of 256 samples, and the
tone lasts their sum, so the voice reports durations that add up to its audio exactly.
With ``batch=True`` (durations included) it takes Piper's batch axis as the real voices
do: ``input`` [B, N] padded, ``input_lengths`` [B], ``sid`` [B]; ids past a sentence's
length last 0 frames, and each row of ``output`` [B, 1, 1, T] holds its sentence's tone
followed by zeros up to the longest.
``espeak_voice`` picks the espeak-ng language (``en-us`` by default).

With ``vits=True`` the model has a VITS graph's shape instead of a tone, so it splits at
``z_p`` as Piper's voices do (engine/seam.py): a front end (id embedding, the durations'
``Ceil`` with duration noise before it, alignment of ids to frames, a frame mask, the
prior's ``RandomNormalLike -> Mul -> Mul -> Add`` giving ``z_p``; multi-speaker: a speaker
embedding ``g`` that shapes ``z_p`` and crosses the seam) and a convolutional decoder
(convolutions over the frames conditioned on ``g``, two transposed convolutions upsampling
by the hop length, 256 = 16 x 16). Random but fixed weights: noise-like audio, deterministic
at ``noise_scale`` = ``noise_w_scale`` = 0, with durations ``aligned_frames`` there.

Usage::

    python tests/voicegen.py OUTDIR [--name NAME] [--speakers K] [--sample-rate HZ]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "AMPLITUDE",
    "BASE_FREQUENCY_HZ",
    "FREQUENCY_STEP_HZ",
    "HOP_LENGTH",
    "SPEAKER_NAMES",
    "aligned_frames",
    "expected_frequency",
    "expected_num_samples",
    "speaker_names",
    "tiny_voice_config",
    "tiny_voice_model",
    "write_tiny_voice",
]

HOP_LENGTH = 256
"""Samples per phoneme id at ``length_scale`` 1.0 (Piper's default hop length)."""

BASE_FREQUENCY_HZ = 200.0
"""Tone frequency of speaker 0 (and of single-speaker voices)."""

FREQUENCY_STEP_HZ = 100.0
"""Frequency added per speaker id."""

AMPLITUDE = 0.5
"""Peak amplitude of the raw model output."""

SPEAKER_NAMES: tuple[str, ...] = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
)
"""Names for the first speakers; further speakers are called ``speaker_<id>``."""

# Phoneme symbols of the real en_US-joe-medium voice, in id order: the character at
# index i maps to id [i]. Escaped so the source stays ASCII.
_PHONEME_SYMBOLS = (
    "_^$ !'(),-.:;?abcdefhijklmnopqrstuvwxyz"
    "\xe6\xe7\xf0\xf8\u0127\u014b\u0153\u01c0\u01c1\u01c2\u01c3"
    "\u0250\u0251\u0252\u0253\u0254\u0255\u0256\u0257\u0258\u0259\u025a\u025b\u025c\u025e"
    "\u025f\u0260\u0261\u0262\u0263\u0264\u0265\u0266\u0267\u0268\u026a\u026b\u026c\u026d"
    "\u026e\u026f\u0270\u0271\u0272\u0273\u0274\u0275\u0276\u0278\u0279\u027a\u027b\u027d"
    "\u027e\u0280\u0281\u0282\u0283\u0284\u0288\u0289\u028a\u028b\u028c\u028d\u028e\u028f"
    "\u0290\u0291\u0292\u0294\u0295\u0298\u0299\u029b\u029c\u029d\u029f\u02a1\u02a2\u02b2"
    "\u02c8\u02cc\u02d0\u02d1\u02de\u03b2\u03b8\u03c7\u1d7b\u2c71"
    "0123456789"
    '\u0327\u0303\u032a\u032f\u0329\u02b0\u02e4\u03b5\u2193#"'
)

_NUM_SYMBOLS = 256
_OPSET = 13
_IR_VERSION = 8  # Loadable by any onnxruntime >= 1.10.


def phoneme_id_map() -> dict[str, list[int]]:
    """Return the phoneme id map of the real en_US-joe-medium voice."""
    return {symbol: [idx] for idx, symbol in enumerate(_PHONEME_SYMBOLS)}


def speaker_names(num_speakers: int) -> list[str]:
    """Return the speaker names used for a voice with ``num_speakers`` speakers."""
    return [
        SPEAKER_NAMES[sid] if sid < len(SPEAKER_NAMES) else f"speaker_{sid}"
        for sid in range(num_speakers)
    ]


def expected_num_samples(num_phoneme_ids: int, length_scale: float = 1.0) -> int:
    """Number of samples the model outputs for ``num_phoneme_ids`` ids."""
    return round(num_phoneme_ids * HOP_LENGTH * length_scale)


def expected_frequency(speaker_id: int | None) -> float:
    """Tone frequency (Hz) produced for ``speaker_id`` (``None``: single speaker)."""
    return BASE_FREQUENCY_HZ + FREQUENCY_STEP_HZ * (speaker_id or 0)


def aligned_frames(phoneme_ids: list[int], length_scale: float = 1.0) -> list[int]:
    """Frames each phoneme id lasts in a voice written with ``alignments=True``."""
    return [math.ceil(length_scale * (1 + i % 3)) for i in phoneme_ids]


def tiny_voice_config(
    name: str = "tiny-multi",
    num_speakers: int = 3,
    sample_rate: int = 16000,
    espeak_voice: str = "en-us",
) -> dict[str, Any]:
    """Build a Piper voice config (the ``.onnx.json`` content) for the tiny voice."""
    multi = num_speakers > 1
    english = espeak_voice == "en-us"
    return {
        "audio": {"sample_rate": sample_rate, "quality": "x_low"},
        "espeak": {"voice": espeak_voice},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": phoneme_id_map(),
        "num_symbols": _NUM_SYMBOLS,
        "num_speakers": num_speakers,
        "speaker_id_map": (
            {spk: sid for sid, spk in enumerate(speaker_names(num_speakers))} if multi else {}
        ),
        "piper_version": "1.0.0",
        "language": {
            "code": "en_US" if english else espeak_voice,
            "family": "en" if english else espeak_voice.split("-")[0],
            "region": "US" if english else "",
            "name_native": "English" if english else espeak_voice,
            "name_english": "English" if english else espeak_voice,
            "country_english": "United States" if english else "",
        },
        "dataset": name,
    }


def _const(name: str, value: float | int | list[int], dtype: int) -> onnx.NodeProto:
    """A Constant node holding a scalar (or 1-D list) of ``dtype``."""
    if isinstance(value, list):
        tensor = helper.make_tensor(name, dtype, [len(value)], value)
    else:
        tensor = helper.make_tensor(name, dtype, [], [value])
    return helper.make_node("Constant", [], [name], value=tensor)


def tiny_voice_model(
    name: str = "tiny-multi",
    num_speakers: int = 3,
    sample_rate: int = 16000,
    alignments: bool = False,
    batch: bool = False,
    vits: bool = False,
) -> onnx.ModelProto:
    """Build the tiny sine-tone ONNX model with Piper's input/output signature."""
    if num_speakers < 1:
        raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
    if vits:
        return _finish(_vits_graph(name, num_speakers))
    if batch:
        return _finish(_batched_graph(name, num_speakers, sample_rate))
    multi = num_speakers > 1
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64

    inputs = [
        helper.make_tensor_value_info("input", i64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", i64, [1]),
        helper.make_tensor_value_info("scales", f32, [3]),
    ]
    if multi:
        inputs.append(helper.make_tensor_value_info("sid", i64, [1]))
    outputs = [helper.make_tensor_value_info("output", f32, [1, 1, 1, "time"])]

    nodes = [
        _const("one_i", 1, i64),
        _const("zero_i", 0, i64),
        _const("hop_f", float(HOP_LENGTH), f32),
        _const("out_shape", [1, 1, 1, -1], i64),
        _const("amplitude", AMPLITUDE, f32),
        # N = input.shape[1]; length_scale = scales[1]
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Gather", ["in_shape", "one_i"], ["n_ids"], axis=0),
        helper.make_node("Cast", ["n_ids"], ["n_ids_f"], to=f32),
        helper.make_node("Gather", ["scales", "one_i"], ["length_scale"], axis=0),
        *(_durations() if alignments else _plain_length()),
        # t = [0, 1, ..., T - 1]
        helper.make_node("Range", ["zero_i", "num_samples", "one_i"], ["t_i"]),
        helper.make_node("Cast", ["t_i"], ["t_f"], to=f32),
    ]

    # Phase increment per sample: 2*pi*freq/sample_rate, freq = base + step * sid.
    omega = 2.0 * math.pi / sample_rate
    if multi:
        nodes += [
            _const("omega_base", omega * BASE_FREQUENCY_HZ, f32),
            _const("omega_step", omega * FREQUENCY_STEP_HZ, f32),
            helper.make_node("Cast", ["sid"], ["sid_f"], to=f32),
            helper.make_node("Mul", ["sid_f", "omega_step"], ["omega_extra"]),
            helper.make_node("Add", ["omega_extra", "omega_base"], ["omega"]),
        ]
    else:
        nodes.append(_const("omega", omega * BASE_FREQUENCY_HZ, f32))

    nodes += [
        helper.make_node("Mul", ["t_f", "omega"], ["phase"]),
        helper.make_node("Sin", ["phase"], ["wave"]),
        helper.make_node("Mul", ["wave", "amplitude"], ["audio"]),
        helper.make_node("Reshape", ["audio", "out_shape"], ["output"]),
    ]

    return _finish(helper.make_graph(nodes, name, inputs, outputs))


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        producer_name="tts_service-tests-voicegen",
        opset_imports=[helper.make_opsetid("", _OPSET)],
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _batched_graph(name: str, num_speakers: int, sample_rate: int) -> onnx.GraphProto:
    """The aligned tone model over a batch: every sentence as the one-sentence model makes
    it, padded with zeros to the longest."""
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [
        helper.make_tensor_value_info("input", i64, ["batch", "phonemes"]),
        helper.make_tensor_value_info("input_lengths", i64, ["batch"]),
        helper.make_tensor_value_info("scales", f32, [3]),
    ]
    if num_speakers > 1:
        inputs.append(helper.make_tensor_value_info("sid", i64, ["batch"]))
    outputs = [helper.make_tensor_value_info("output", f32, ["batch", 1, 1, "time"])]
    omega = 2.0 * math.pi / sample_rate
    node = helper.make_node
    nodes = [
        _const("one_i", 1, i64),
        _const("zero_i", 0, i64),
        _const("three_i", 3, i64),
        _const("one_f", 1.0, f32),
        _const("hop_f", float(HOP_LENGTH), f32),
        _const("amplitude", AMPLITUDE, f32),
        _const("axis0", [0], i64),
        _const("axis1", [1], i64),
        _const("axes12", [1, 2], i64),
        _const("axes12_out", [1, 2], i64),
        # mask[b, i] = i < input_lengths[b]
        node("Shape", ["input"], ["in_shape"]),
        node("Gather", ["in_shape", "one_i"], ["n_ids"], axis=0),
        node("Range", ["zero_i", "n_ids", "one_i"], ["positions"]),
        node("Unsqueeze", ["input_lengths", "axis1"], ["lengths_col"]),
        node("Less", ["positions", "lengths_col"], ["mask"]),
        node("Cast", ["mask"], ["mask_f"], to=f32),
        # w_ceil[b, 0, i] = ceil(length_scale * (1 + id % 3) * mask)
        node("Gather", ["scales", "one_i"], ["length_scale"], axis=0),
        node("Mod", ["input", "three_i"], ["id_mod"]),
        node("Cast", ["id_mod"], ["id_mod_f"], to=f32),
        node("Add", ["id_mod_f", "one_f"], ["width"]),
        node("Mul", ["width", "length_scale"], ["w_scaled"]),
        node("Mul", ["w_scaled", "mask_f"], ["w_masked"]),
        node("Unsqueeze", ["w_masked", "axis1"], ["w"]),
        node("Ceil", ["w"], ["w_ceil"]),
        # samples[b] = sum(w_ceil[b]) * hop; the output is as long as the longest
        node("ReduceSum", ["w_ceil", "axes12"], ["frames"], keepdims=0),
        node("Mul", ["frames", "hop_f"], ["len_f"]),
        node("Cast", ["len_f"], ["num_samples"], to=i64),
        node("ReduceMax", ["num_samples"], ["longest"], keepdims=0),
        node("Range", ["zero_i", "longest", "one_i"], ["t_i"]),
        node("Cast", ["t_i"], ["t_f"], to=f32),
        node("Unsqueeze", ["t_f", "axis0"], ["t_row"]),
        node("Unsqueeze", ["t_i", "axis0"], ["t_row_i"]),
        node("Unsqueeze", ["num_samples", "axis1"], ["samples_col"]),
        node("Less", ["t_row_i", "samples_col"], ["sounding"]),
        node("Cast", ["sounding"], ["sounding_f"], to=f32),
    ]
    if num_speakers > 1:
        nodes += [
            _const("omega_base", omega * BASE_FREQUENCY_HZ, f32),
            _const("omega_step", omega * FREQUENCY_STEP_HZ, f32),
            node("Cast", ["sid"], ["sid_f"], to=f32),
            node("Mul", ["sid_f", "omega_step"], ["omega_extra"]),
            node("Add", ["omega_extra", "omega_base"], ["omega_row"]),
            node("Unsqueeze", ["omega_row", "axis1"], ["omega"]),
        ]
    else:
        nodes.append(_const("omega", omega * BASE_FREQUENCY_HZ, f32))
    nodes += [
        node("Mul", ["t_row", "omega"], ["phase"]),
        node("Sin", ["phase"], ["wave"]),
        node("Mul", ["wave", "amplitude"], ["loud"]),
        node("Mul", ["loud", "sounding_f"], ["audio"]),
        node("Unsqueeze", ["audio", "axes12_out"], ["output"]),
    ]
    return helper.make_graph(nodes, name, inputs, outputs)


_VITS_CHANNELS = 8
_VITS_SPEAKER_CHANNELS = 4
_VITS_UPSAMPLE = (16, 16)  # their product is HOP_LENGTH


def _vits_graph(name: str, num_speakers: int) -> onnx.GraphProto:
    """A VITS-shaped graph (see the module's docstring); the weights come from a fixed
    seed."""
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    rng = np.random.default_rng(25)
    channels, multi = _VITS_CHANNELS, num_speakers > 1
    weights: list[onnx.TensorProto] = []

    def weight(wname: str, *shape: int, scale: float = 0.5) -> str:
        array = (rng.standard_normal(shape) * scale).astype(np.float32)
        weights.append(numpy_helper.from_array(array, wname))
        return wname

    node = helper.make_node
    inputs = [
        helper.make_tensor_value_info("input", i64, [1, "phonemes"]),
        helper.make_tensor_value_info("input_lengths", i64, [1]),
        helper.make_tensor_value_info("scales", f32, [3]),
    ]
    if multi:
        inputs.append(helper.make_tensor_value_info("sid", i64, [1]))
    nodes = [
        _const("zero_i", 0, i64),
        _const("one_i", 1, i64),
        _const("two_i", 2, i64),
        _const("three_i", 3, i64),
        _const("one_f", 1.0, f32),
        _const("quarter_f", 0.25, f32),
        _const("w_shape", [1, 1, -1], i64),
        _const("flat", [-1], i64),
        _const("axis0", [0], i64),
        _const("axis1", [1], i64),
        node("Gather", ["scales", "zero_i"], ["noise_scale"], axis=0),
        node("Gather", ["scales", "one_i"], ["length_scale"], axis=0),
        node("Gather", ["scales", "two_i"], ["noise_w"], axis=0),
        # durations: ceil(length_scale * (1 + id % 3) + noise_w * noise / 4)
        node("Mod", ["input", "three_i"], ["id_mod"]),
        node("Cast", ["id_mod"], ["id_mod_f"], to=f32),
        node("Add", ["id_mod_f", "one_f"], ["width"]),
        node("Mul", ["width", "length_scale"], ["w_scaled"]),
        node("RandomNormalLike", ["w_scaled"], ["w_noise"], dtype=f32),
        node("Mul", ["w_noise", "noise_w"], ["w_noise_scaled"]),
        node("Mul", ["w_noise_scaled", "quarter_f"], ["w_jitter"]),
        node("Add", ["w_scaled", "w_jitter"], ["w_noisy"]),
        node("Reshape", ["w_noisy", "w_shape"], ["w"]),
        node("Ceil", ["w"], ["w_ceil"]),
        # frames T = sum(w_ceil); frame t belongs to the id whose cumulative end passes t
        node("Reshape", ["w_ceil", "flat"], ["w_flat"]),
        node("CumSum", ["w_flat", "zero_i"], ["ends"]),
        node("ReduceSum", ["w_ceil"], ["frames_f"], keepdims=0),
        node("Cast", ["frames_f"], ["frames"], to=i64),
        node("Range", ["zero_i", "frames", "one_i"], ["t_i"]),
        node("Cast", ["t_i"], ["t_f"], to=f32),
        node("Unsqueeze", ["ends", "axis0"], ["ends_row"]),
        node("Unsqueeze", ["t_f", "axis1"], ["t_col"]),
        node("LessOrEqual", ["ends_row", "t_col"], ["passed"]),
        node("Cast", ["passed"], ["passed_i"], to=i64),
        node("ReduceSum", ["passed_i", "axis1"], ["frame_ids"], keepdims=0),
        # the frame mask [1, 1, T] (all ones: one sentence)
        node("Less", ["t_f", "frames_f"], ["sounding"]),
        node("Cast", ["sounding"], ["sounding_f"], to=f32),
        node("Reshape", ["sounding_f", "w_shape"], ["y_mask"]),
        # m_p [1, C, T]: each frame its id's embedding
        node("Reshape", ["input", "flat"], ["ids"]),
        node("Gather", [weight("emb", _NUM_SYMBOLS, channels), "ids"], ["x"], axis=0),
        node("Gather", ["x", "frame_ids"], ["x_frames"], axis=0),
        node("Transpose", ["x_frames"], ["x_t"], perm=[1, 0]),
        node("Unsqueeze", ["x_t", "axis0"], ["m_text"]),
    ]
    m_p = "m_text"
    if multi:
        nodes += [
            _const("axis2", [2], i64),
            node("Gather", [weight("emb_g", num_speakers, _VITS_SPEAKER_CHANNELS), "sid"], ["g0"]),
            node("Unsqueeze", ["g0", "axis2"], ["g"]),  # [1, G, 1]
            node("Conv", ["g", weight("g_proj", channels, _VITS_SPEAKER_CHANNELS, 1)], ["g_c"]),
            node("Add", ["m_text", "g_c"], ["m_speaker"]),
        ]
        m_p = "m_speaker"
    nodes += [
        node("Mul", [m_p, "y_mask"], ["m_p"]),
        node("RandomNormalLike", ["m_p"], ["eps"], dtype=f32),
        node("Mul", ["eps", weight("exp_logs", 1, channels, 1, scale=0.1)], ["eps_scaled"]),
        node("Mul", ["eps_scaled", "noise_scale"], ["prior_noise"]),
        node("Add", ["m_p", "prior_noise"], ["z_p"]),
        # decoder: a flow-like step conditioned on g, then HiFi-GAN-like upsampling
        node("Mul", ["z_p", "y_mask"], ["z_masked"]),
        node("Conv", ["z_masked", weight("flow_w", channels, channels, 5)], ["h0"], pads=[2, 2]),
    ]
    h = "h0"
    if multi:
        cond = weight("cond_w", channels, _VITS_SPEAKER_CHANNELS, 1)
        nodes += [node("Conv", ["g", cond], ["cond"]), node("Add", ["h0", "cond"], ["h0g"])]
        h = "h0g"
    nodes += [
        node("Tanh", [h], ["h1"]),
        node("Mul", ["h1", "y_mask"], ["z"]),
        node("Conv", ["z", weight("pre_w", channels, channels, 3)], ["u0"], pads=[1, 1]),
    ]
    width = channels
    for stage, rate in enumerate(_VITS_UPSAMPLE):
        kernel, out = 2 * rate, max(2, width // 2)
        nodes += [
            node("LeakyRelu", [f"u{stage}"], [f"a{stage}"], alpha=0.1),
            node(
                "ConvTranspose",
                [f"a{stage}", weight(f"ups_{stage}", width, out, kernel, scale=0.3)],
                [f"u{stage + 1}"],
                strides=[rate],
                pads=[rate // 2, rate // 2],
            ),
        ]
        width = out
    last = f"u{len(_VITS_UPSAMPLE)}"
    nodes += [
        node("LeakyRelu", [last], ["a_post"], alpha=0.1),
        node("Conv", ["a_post", weight("post_w", 1, width, 7, scale=0.1)], ["wave"], pads=[3, 3]),
        node("Tanh", ["wave"], ["audio"]),
        node("Unsqueeze", ["audio", "axis0"], ["output"]),
    ]
    outputs = [helper.make_tensor_value_info("output", f32, [1, 1, 1, "time"])]
    return helper.make_graph(nodes, name, inputs, outputs, initializer=weights)


def _plain_length() -> list[onnx.NodeProto]:
    """T = round(N * hop * length_scale)."""
    return [
        helper.make_node("Mul", ["n_ids_f", "hop_f"], ["base_len_f"]),
        helper.make_node("Mul", ["base_len_f", "length_scale"], ["len_f"]),
        helper.make_node("Round", ["len_f"], ["len_round"]),
        helper.make_node("Cast", ["len_round"], ["num_samples"], to=TensorProto.INT64),
    ]


def _durations() -> list[onnx.NodeProto]:
    """Per-id frames w_ceil = Ceil(length_scale * (1 + id % 3)) shaped [1, 1, N] as in
    Piper's models, and T = sum(w_ceil) * hop."""
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    return [
        _const("three_i", 3, i64),
        _const("one_f", 1.0, f32),
        _const("w_shape", [1, 1, -1], i64),
        helper.make_node("Mod", ["input", "three_i"], ["id_mod"]),
        helper.make_node("Cast", ["id_mod"], ["id_mod_f"], to=f32),
        helper.make_node("Add", ["id_mod_f", "one_f"], ["width"]),
        helper.make_node("Mul", ["width", "length_scale"], ["w_scaled"]),
        helper.make_node("Reshape", ["w_scaled", "w_shape"], ["w"]),
        helper.make_node("Ceil", ["w"], ["w_ceil"]),
        helper.make_node("ReduceSum", ["w_ceil"], ["frames"], keepdims=0),
        helper.make_node("Mul", ["frames", "hop_f"], ["len_f"]),
        helper.make_node("Cast", ["len_f"], ["num_samples"], to=i64),
    ]


def write_tiny_voice(
    folder: pathlib.Path,
    name: str = "tiny-multi",
    num_speakers: int = 3,
    sample_rate: int = 16000,
    espeak_voice: str = "en-us",
    alignments: bool = False,
    batch: bool = False,
    vits: bool = False,
) -> pathlib.Path:
    """Write ``folder/NAME.onnx`` and ``folder/NAME.onnx.json``; return the .onnx path.

    ``num_speakers=1`` writes a single-speaker voice (no ``sid`` model input, empty
    ``speaker_id_map``). ``folder`` is created if needed.
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / f"{name}.onnx"
    config_path = folder / f"{name}.onnx.json"

    model = tiny_voice_model(name, num_speakers, sample_rate, alignments, batch, vits)
    model_path.write_bytes(model.SerializeToString())
    config = tiny_voice_config(name, num_speakers, sample_rate, espeak_voice)
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return model_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a tiny deterministic Piper test voice.")
    parser.add_argument("outdir", type=pathlib.Path, help="folder to write the voice into")
    parser.add_argument("--name", default="tiny-multi", help="voice name (file stem)")
    parser.add_argument("--speakers", type=int, default=3, help="number of speakers")
    parser.add_argument("--sample-rate", type=int, default=16000, help="sample rate in Hz")
    args = parser.parse_args(argv)
    path = write_tiny_voice(args.outdir, args.name, args.speakers, args.sample_rate)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
