"""Where a Piper VITS graph splits into a front end and a frame-wise decoder.

VITS computes, once per sentence, `z_p = m_p + randn_like(m_p) * exp(logs_p) * noise_scale`
after the text encoder, the duration predictor and the alignment (and all of its noise);
after `z_p` come the flow and HiFi-GAN, convolutions over the frame axis with a finite
receptive field. The seam is found by structure, not by node names (they differ between
Piper's exporters): `z_p` is the first `Add` downstream of the last `RandomNormalLike` (the
prior's noise; the earlier one is the duration predictor's), as streaming-vits 0.4.2 finds
it. Everything the decoder reads from the front end then follows from the graph:

- the front end is every node `z_p` (and the durations tensor, alignment.py) depends on;
- the decoder is every node the audio `output` depends on, walking back until a tensor the
  front end makes from the graph's inputs: those tensors cross the seam. One that depends
  on the phoneme ids (`z_p`, the frame mask) runs along the frame axis and is cut with the
  frames; one that depends only on the speaker or the scales (the speaker embedding `g` of
  a multi-speaker voice) is handed to every chunk whole. Constants both halves use are
  simply in both.

A graph where this does not hold (no prior noise, a decoder that reads the phoneme ids or
draws noise itself, control flow) has no seam: its voice decodes whole sentences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tts_service.engine.onnxgraph import Graph, Node, graph_input

AUDIO_OUTPUT = "output"
# The graph inputs along the phoneme axis: what depends on them is frame-wise after the
# alignment (Piper's exports: input, input_lengths, scales, sid).
_PHONEME_INPUTS = frozenset({"input", "input_lengths"})


class NoSeam(ValueError):
    """The graph cannot be split (the message says why)."""


@dataclass(frozen=True)
class Crossing:
    """A tensor the front end hands to the decoder."""

    name: str
    framewise: bool
    """Its last axis is the frame axis (cut per chunk); else passed whole."""


@dataclass(frozen=True)
class Seam:
    z_p: str
    crossings: tuple[Crossing, ...]
    """What the decoder takes, `z_p` first, in the decoder's input order."""
    durations: str | None
    """The per-id frames tensor the front end also outputs (alignment.py), if any."""
    frontend_nodes: tuple[int, ...]
    decoder_nodes: tuple[int, ...]

    @property
    def frontend_outputs(self) -> list[str]:
        names = [crossing.name for crossing in self.crossings]
        return names + ([self.durations] if self.durations else [])


def find_seam(graph: Graph, durations: str | None) -> Seam:
    """The seam of `graph`; NoSeam with the reason when it has none."""
    nodes = graph.nodes
    if any(node.has_subgraph for node in nodes):
        raise NoSeam("the graph has control flow (If/Loop/Scan)")
    producer = {name: index for index, node in enumerate(nodes) for name in node.outputs}
    z_p = _z_p(nodes)
    if AUDIO_OUTPUT not in producer:
        raise NoSeam(f"the graph has no {AUDIO_OUTPUT!r} tensor")
    front = _ancestors(nodes, producer, [z_p] + ([durations] if durations else []), set())
    depends = _input_dependencies(graph, producer)
    crossing: dict[str, Crossing] = {}
    stop = {
        name
        for index in front
        for name in nodes[index].outputs
        if depends.get(name) and name != AUDIO_OUTPUT
    }
    decoder = _ancestors(nodes, producer, [AUDIO_OUTPUT], stop)
    for index in sorted(decoder):
        node = nodes[index]
        if node.op_type.startswith("Random"):
            raise NoSeam("the decoder draws noise of its own")
        for name in node.inputs:
            if name in graph.inputs and name not in graph.initializers:
                raise NoSeam(f"the decoder reads the graph input {name!r}")
            if name in stop and name not in crossing:
                framewise = bool(depends[name] & _PHONEME_INPUTS)
                crossing[name] = Crossing(name, framewise)
    if z_p not in crossing:
        raise NoSeam("the audio does not depend on z_p")
    ordered = (crossing[z_p], *(c for n, c in crossing.items() if n != z_p))
    outputs = [c.name for c in ordered] + ([durations] if durations else [])
    frontend = _ancestors(nodes, producer, outputs, set())
    return Seam(z_p, ordered, durations, tuple(sorted(frontend)), tuple(sorted(decoder)))


def _z_p(nodes: list[Node]) -> str:
    noise = [index for index, node in enumerate(nodes) if node.op_type == "RandomNormalLike"]
    if not noise:
        raise NoSeam("the graph draws no prior noise (no RandomNormalLike): not a VITS graph")
    frontier = set(nodes[noise[-1]].outputs)
    for node in nodes[noise[-1] + 1 :]:
        if not frontier.intersection(node.inputs):
            continue
        if node.op_type == "Add":
            return node.outputs[0]
        frontier.update(node.outputs)
    raise NoSeam("no Add follows the prior noise (z_p not found)")


def _ancestors(
    nodes: list[Node], producer: dict[str, int], targets: Iterable[str], stop: set[str]
) -> set[int]:
    """The nodes the `targets` depend on, not walking past the tensors in `stop`."""
    found: set[int] = set()
    pending = [name for name in targets]
    while pending:
        name = pending.pop()
        index = producer.get(name)
        if index is None or index in found:
            continue
        found.add(index)
        pending.extend(tensor for tensor in nodes[index].inputs if tensor and tensor not in stop)
    return found


def _input_dependencies(graph: Graph, producer: dict[str, int]) -> dict[str, frozenset[str]]:
    """Each tensor -> the graph inputs it depends on (nodes come in topological order, as
    ONNX requires)."""
    depends: dict[str, frozenset[str]] = {
        name: frozenset({name}) for name in graph.inputs if name not in graph.initializers
    }
    for node in graph.nodes:
        sources = frozenset().union(*(depends.get(name, frozenset()) for name in node.inputs))
        for name in node.outputs:
            depends[name] = sources
    return depends


def frontend_model(graph: Graph, seam: Seam) -> bytes:
    """The front end: the model's inputs to what crosses the seam and the durations."""
    nodes = [graph.nodes[index] for index in seam.frontend_nodes]
    return graph.model(nodes, list(graph.inputs.values()), seam.frontend_outputs)


def decoder_model(graph: Graph, seam: Seam, types: dict[str, tuple[int, int | None]]) -> bytes:
    """The decoder: what crosses the seam to the audio. `types`: each crossing tensor's
    element type (TensorProto.DataType) and rank, as the front-end session reports them."""
    nodes = [graph.nodes[index] for index in seam.decoder_nodes]
    inputs = [graph_input(c.name, *types[c.name]) for c in seam.crossings]
    return graph.model(nodes, inputs, [AUDIO_OUTPUT])
