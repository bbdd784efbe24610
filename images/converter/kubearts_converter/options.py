"""Conversion options: their syntax (the same as the ModelConversion CRD's ``spec.options``)
and their check against the real graph. Pure: no TensorFlow here.

* ``inputShape``: ``name:d1,d2,...``, several separated by ``;``; ``-1`` is a dynamic
  dimension. The name may itself hold ``:`` (``images:0:1,224,224,3``): the dimensions follow
  the last one. The shape is the source graph's tensor, in the source's layout (as ATC reads it).
* ``outputNodes``: ``name:index``, several separated by ``;``; the index defaults to 0.
* ``inputFormat`` (``NHWC``/``NCHW``), ``precision`` (``FP32``/``FP16``), ``socVersion``,
  ``opset``.

:func:`check` compares the options with a :class:`GraphInterface` (what the source graph
declares) and reports every problem at once, each naming the option both as the
ModelConversion field and as the worker's flag, and lists the graph's real inputs and
candidate outputs so that the fix is one copy away.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from kubearts_converter.errors import ConverterError

Template = Literal[
    "TF-FrozenGraph-To-ONNX", "TF-SavedModel-To-ONNX", "TF-FrozenGraph-To-Ascend-C32"
]
TEMPLATES: Final[tuple[Template, ...]] = (
    "TF-FrozenGraph-To-ONNX",
    "TF-SavedModel-To-ONNX",
    "TF-FrozenGraph-To-Ascend-C32",
)
ATC_TEMPLATE: Final = "TF-FrozenGraph-To-Ascend-C32"
FORMATS: Final = ("NHWC", "NCHW")
PRECISIONS: Final = ("FP32", "FP16")
#: The opsets tf2onnx 1.17 writes (tf2onnx.constants.OPSET_TO_IR_VERSION); the CRD allows 9-21.
OPSET_RANGE: Final = (9, 18)

#: Each option as the ModelConversion field and as the worker's flag, for messages.
OPTION_NAMES: Final[dict[str, str]] = {
    "inputShape": "spec.options.inputShape (--input-shape)",
    "inputFormat": "spec.options.inputFormat (--input-format)",
    "outputNodes": "spec.options.outputNodes (--output-nodes)",
    "precision": "spec.options.precision (--precision)",
    "socVersion": "spec.options.socVersion (--soc-version)",
    "opset": "spec.options.opset (--opset)",
}

_NAME: Final = re.compile(r"^[A-Za-z0-9_/.:-]+$")
_SOC: Final = re.compile(r"^Ascend[A-Za-z0-9]+$")


@dataclass(frozen=True)
class InputShape:
    """One input's shape as the user fixed it; -1 = dynamic."""

    name: str
    dims: tuple[int, ...]

    def text(self) -> str:
        return f"{self.name}:{','.join(str(d) for d in self.dims)}"


@dataclass(frozen=True)
class OutputNode:
    """One output tensor: the node's name and which of its outputs."""

    name: str
    index: int = 0

    @property
    def tensor(self) -> str:
        return f"{self.name}:{self.index}"


@dataclass(frozen=True)
class Options:
    """The conversion options, parsed. Empty ``input_shapes``/``output_nodes`` mean the
    graph's own inputs and the source's declared outputs."""

    input_shapes: tuple[InputShape, ...] = ()
    input_format: str = "NHWC"
    output_nodes: tuple[OutputNode, ...] = ()
    precision: str = "FP32"
    soc_version: str = "Ascend310"
    opset: int = 13


@dataclass(frozen=True)
class Tensor:
    """A tensor the graph declares: name (without ``:0`` for inputs), dtype, shape (-1 for an
    unknown dimension; None for an unknown rank)."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None

    def text(self) -> str:
        if not self.dtype:
            return self.name
        dims = "?" if self.shape is None else ",".join(str(d) for d in self.shape)
        return f"{self.name} {self.dtype}[{dims}]"


@dataclass(frozen=True)
class GraphInterface:
    """What a source graph declares: its inputs (a frozen graph's Placeholder nodes, or a
    SavedModel signature's inputs), candidate outputs to list in messages, and every output
    name that exists (``node:index`` for a frozen graph; the signature's keys as ``key:0``)."""

    kind: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    tensors: frozenset[str] = field(default_factory=frozenset)

    def input(self, name: str) -> Tensor | None:
        bare = strip_index(name)
        return next((t for t in self.inputs if t.name == bare), None)

    def has_output(self, node: OutputNode) -> bool:
        return node.tensor in self.tensors


def strip_index(name: str) -> str:
    """``images:0`` → ``images``; other names unchanged."""
    return name[:-2] if name.endswith(":0") else name


def _invalid(option: str, problem: str) -> ConverterError:
    return ConverterError("InvalidOptions", f"{OPTION_NAMES[option]}: {problem}")


def parse_input_shape(text: str) -> tuple[InputShape, ...]:
    """``images:1,224,224,3;mask:-1,224,224`` → the shapes; bad syntax is InvalidOptions."""
    shapes: list[InputShape] = []
    for part in text.split(";"):
        name, colon, dims_text = part.strip().rpartition(":")
        if not colon or not name or not _NAME.match(name):
            raise _invalid(
                "inputShape",
                f"{part!r} is not name:d1,d2,... (e.g. images:1,224,224,3; several separated "
                "by ';')",
            )
        try:
            dims = tuple(int(d) for d in dims_text.split(","))
        except ValueError:
            raise _invalid(
                "inputShape",
                f"{part!r}: the dimensions must be integers separated by ',' (-1 = dynamic)",
            ) from None
        bad = [d for d in dims if d < -1 or d == 0]
        if bad:
            raise _invalid(
                "inputShape", f"{part!r}: dimensions must be positive or -1 (dynamic), not {bad}"
            )
        if any(strip_index(s.name) == strip_index(name) for s in shapes):
            raise _invalid("inputShape", f"the input {name!r} is named twice")
        shapes.append(InputShape(name, dims))
    return tuple(shapes)


def parse_output_nodes(text: str) -> tuple[OutputNode, ...]:
    """``logits:0;probs:1`` → the nodes; ``logits`` alone means ``logits:0``."""
    nodes: list[OutputNode] = []
    for part in text.split(";"):
        item = part.strip()
        name, colon, index = item.rpartition(":")
        if not colon:
            name, index = item, "0"
        if not name or not _NAME.match(name) or not index.isdigit():
            raise _invalid(
                "outputNodes",
                f"{part!r} is not name:index (e.g. logits:0; several separated by ';')",
            )
        node = OutputNode(name, int(index))
        if node in nodes:
            raise _invalid("outputNodes", f"{node.tensor} is named twice")
        nodes.append(node)
    return tuple(nodes)


def parse(
    *,
    input_shape: str | None = None,
    input_format: str = "NHWC",
    output_nodes: str | None = None,
    precision: str = "FP32",
    soc_version: str = "Ascend310",
    opset: int = 13,
) -> Options:
    """All options from their text form (as the flags and the CRD give them)."""
    if input_format not in FORMATS:
        raise _invalid("inputFormat", f"{input_format!r} is not one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise _invalid("precision", f"{precision!r} is not one of {', '.join(PRECISIONS)}")
    if not _SOC.match(soc_version):
        raise _invalid("socVersion", f"{soc_version!r} is not an Ascend chip such as Ascend310")
    low, high = OPSET_RANGE
    if not low <= opset <= high:
        raise _invalid("opset", f"{opset} is outside the opsets tf2onnx writes ({low}-{high})")
    return Options(
        input_shapes=parse_input_shape(input_shape) if input_shape else (),
        input_format=input_format,
        output_nodes=parse_output_nodes(output_nodes) if output_nodes else (),
        precision=precision,
        soc_version=soc_version,
        opset=opset,
    )


def resolved_inputs(options: Options, graph: GraphInterface) -> list[Tensor]:
    """The inputs the conversion uses: the graph's, with the user's shapes where given."""
    fixed = {strip_index(s.name): s.dims for s in options.input_shapes}
    return [Tensor(t.name, t.dtype, fixed.get(t.name, t.shape)) for t in graph.inputs]


def check(
    options: Options,
    graph: GraphInterface,
    template: str,
    outputs: Sequence[OutputNode],
) -> None:
    """Every problem of ``options`` against ``graph`` at once, as one InvalidOptions.

    ``outputs`` are the output nodes the conversion will use (the options' or the source's
    declared ones).
    """
    problems: list[str] = []
    for shape in options.input_shapes:
        tensor = graph.input(shape.name)
        if tensor is None:
            problems.append(f"{OPTION_NAMES['inputShape']}: the graph has no input {shape.name!r}")
            continue
        if tensor.shape is None:
            continue
        if len(tensor.shape) != len(shape.dims):
            problems.append(
                f"{OPTION_NAMES['inputShape']}: {shape.text()} has rank {len(shape.dims)} but "
                f"the input {tensor.name} has rank {len(tensor.shape)} ({tensor.text()})"
            )
            continue
        clashes = [
            f"dimension {i} is {want}, the graph fixes {have}"
            for i, (want, have) in enumerate(zip(shape.dims, tensor.shape, strict=True))
            if have != -1 and want != have
        ]
        if clashes:
            problems.append(f"{OPTION_NAMES['inputShape']}: {shape.text()}: {'; '.join(clashes)}")
    missing = [node.tensor for node in outputs if not graph.has_output(node)]
    if missing:
        problems.append(
            f"{OPTION_NAMES['outputNodes']}: the graph has no output {', '.join(missing)}"
        )
    inputs = resolved_inputs(options, graph)
    if not problems:
        wrong_rank = [t for t in inputs if t.shape is not None and len(t.shape) != 4]
        if wrong_rank:
            problems.append(
                f"{OPTION_NAMES['inputFormat']}: {options.input_format} needs rank-4 image "
                f"inputs, but {', '.join(t.text() for t in wrong_rank)}"
            )
    if template == ATC_TEMPLATE:
        dynamic = [t for t in inputs if t.shape is None or -1 in t.shape]
        if dynamic:
            problems.append(
                f"{OPTION_NAMES['inputShape']}: ATC needs every input dimension fixed; "
                f"{', '.join(t.text() for t in dynamic)} is dynamic: set it, e.g. "
                f"{dynamic[0].name}:1,224,224,3"
            )
    elif options.precision != "FP32":
        problems.append(
            f"{OPTION_NAMES['precision']}: {template} converts at FP32 only; FP16 is for the "
            f"{ATC_TEMPLATE} template"
        )
    if problems:
        raise ConverterError(
            "InvalidOptions",
            "; ".join(problems) + ". " + describe(graph),
            graph={
                "inputs": [t.text() for t in graph.inputs],
                "outputs": [t.text() for t in graph.outputs][:20],
            },
        )


def describe(graph: GraphInterface, limit: int = 10) -> str:
    """The graph's inputs and candidate outputs, for messages."""
    outputs = [t.text() for t in graph.outputs]
    shown = ", ".join(outputs[:limit]) + (
        f" and {len(outputs) - limit} more" if len(outputs) > limit else ""
    )
    inputs = ", ".join(t.text() for t in graph.inputs) or "none"
    return f"The {graph.kind} has inputs: {inputs}; candidate outputs: {shown or 'none'}"
