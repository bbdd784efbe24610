"""The TensorFlow side: the source artifacts, what their graphs declare, and running them.

* A frozen graph (``frozen_graph.pb``, a GraphDef with constants for variables): its inputs
  are its ``Placeholder`` nodes; its candidate outputs are the tensors no other node reads
  (constants and control-flow bookkeeping left out); any ``node:index`` of the graph may be
  named as an output.
* A SavedModel: its ``serving_default`` signature; inputs and outputs are the signature's
  keys (``images`` → ``logits`` for the trainer's models); an output node ``logits:0`` names
  the signature output ``logits``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import tensorflow as tf

from kubearts_converter.errors import ConverterError
from kubearts_converter.options import GraphInterface, OutputNode, Tensor

FROZEN_GRAPH: Final = "frozen_graph.pb"
SAVED_MODEL: Final = "saved_model"
SAVED_MODEL_PB: Final = "saved_model.pb"
LABELS: Final = "labels.txt"
MODEL_CARD: Final = "model.json"
SIGNATURE: Final = "serving_default"
_NOT_OUTPUTS: Final = frozenset({"Const", "NoOp", "Placeholder", "Assert", "VarHandleOp"})


@dataclass(frozen=True)
class Source:
    """The artifact a template converts, and the model card and labels next to it."""

    artifact: Path
    kind: str  # "frozen-graph" | "saved-model"
    card: dict[str, Any] | None
    labels: list[str] | None
    labels_file: Path | None


def _listing(path: Path) -> str:
    if not path.exists():
        return f"{path} does not exist"
    if path.is_file():
        return f"{path} is a file"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return f"{path} holds: {shown or 'nothing'}"


def locate(source: Path, kind: str) -> Source:
    """The ``kind`` artifact ("frozen-graph" or "saved-model") of ``source``: a trainer output
    directory, or the frozen ``.pb`` file / SavedModel directory itself."""
    artifact: Path | None = None
    if kind == "frozen-graph":
        if source.is_file():
            artifact = source
        elif (source / FROZEN_GRAPH).is_file():
            artifact = source / FROZEN_GRAPH
        wanted = f"a frozen graph ({FROZEN_GRAPH} in a trainer output directory, or a .pb file)"
    else:
        if (source / SAVED_MODEL_PB).is_file():
            artifact = source
        elif (source / SAVED_MODEL / SAVED_MODEL_PB).is_file():
            artifact = source / SAVED_MODEL
        wanted = (
            f"a SavedModel ({SAVED_MODEL}/ in a trainer output directory, or a directory "
            f"with {SAVED_MODEL_PB})"
        )
    if artifact is None:
        raise ConverterError(
            "SourceUnavailable",
            f"--source {source}: the template needs {wanted}, but {_listing(source)}",
        )
    home = source if source.is_dir() and artifact != source else artifact.parent
    card = read_card(home / MODEL_CARD)
    labels_file = home / LABELS if (home / LABELS).is_file() else None
    labels = read_labels(labels_file) if labels_file else None
    if labels is None and card and isinstance(card.get("labels"), list):
        labels = [str(x) for x in card["labels"]]
    return Source(artifact, kind, card, labels, labels_file)


def read_card(path: Path) -> dict[str, Any] | None:
    """A model card, or None when there is none or it is not a JSON object."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def read_labels(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_graph_def(path: Path) -> Any:
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf's DecodeError and OSError
        raise ConverterError(
            "SourceUnavailable", f"--source {path} is not a readable frozen GraphDef: {exc}"
        ) from exc
    return graph_def


def _shape(shape: Any) -> tuple[int, ...] | None:
    if shape.rank is None:
        return None
    return tuple(-1 if d is None else int(d) for d in shape.as_list())


def frozen_interface(graph_def: Any) -> GraphInterface:
    """Inputs (Placeholders), candidate outputs (tensors nobody reads) and every tensor."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    operations = graph.get_operations()
    consumed = {t.name for op in operations for t in op.inputs}
    inputs = tuple(
        Tensor(op.name, op.outputs[0].dtype.name, _shape(op.outputs[0].shape))
        for op in operations
        if op.type == "Placeholder"
    )
    outputs = tuple(
        Tensor(t.name, t.dtype.name, _shape(t.shape))
        for op in operations
        if op.type not in _NOT_OUTPUTS
        for t in op.outputs
        if t.name not in consumed
    )
    tensors = frozenset(t.name for op in operations for t in op.outputs)
    return GraphInterface("frozen graph", inputs, outputs, tensors)


def tensors_of(graph_def: Any, names: Sequence[str]) -> list[Tensor]:
    """The dtype and shape of the named tensors (``node:index``) of a frozen graph."""
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    found = [graph.get_tensor_by_name(name) for name in names]
    return [Tensor(t.name, t.dtype.name, _shape(t.shape)) for t in found]


def load_saved_model(path: Path) -> Any:
    """The SavedModel's ``serving_default`` function."""
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise ConverterError(
            "SourceUnavailable", f"--source {path} is not a loadable SavedModel: {exc}"
        ) from exc
    signatures = dict(loaded.signatures)
    if SIGNATURE not in signatures:
        raise ConverterError(
            "SourceUnavailable",
            f"--source {path}: the SavedModel has no {SIGNATURE} signature "
            f"(it has: {', '.join(signatures) or 'none'})",
        )
    return signatures[SIGNATURE]


def saved_model_interface(function: Any) -> GraphInterface:
    specs = function.structured_input_signature[1]
    inputs = tuple(
        Tensor(key, spec.dtype.name, _shape(spec.shape)) for key, spec in sorted(specs.items())
    )
    outputs = tuple(
        Tensor(f"{key}:0", spec.dtype.name, _shape(spec.shape))
        for key, spec in sorted(function.structured_outputs.items())
    )
    return GraphInterface(
        f"SavedModel signature {SIGNATURE}",
        inputs,
        outputs,
        frozenset(t.name for t in outputs),
    )


def default_outputs(graph: GraphInterface, card: dict[str, Any] | None) -> list[OutputNode]:
    """Output nodes when the options name none: the model card's ``graphTensor``s, else
    ``logits:0`` when the graph has it, else every candidate output."""
    names: list[str] = []
    if card and isinstance(card.get("outputs"), list):
        names = [
            str(o.get("graphTensor") or f"{o.get('name')}:0")
            for o in card["outputs"]
            if isinstance(o, dict)
        ]
    names = [n for n in names if n in graph.tensors]
    if not names:
        names = ["logits:0"] if "logits:0" in graph.tensors else [t.name for t in graph.outputs]
    nodes = []
    for name in names:
        node, _, index = name.rpartition(":")
        nodes.append(OutputNode(node, int(index)))
    return nodes


def with_candidates(graph: GraphInterface, nodes: list[OutputNode]) -> GraphInterface:
    """``graph`` with the declared output nodes first among its candidate outputs."""
    listed = {t.name for t in graph.outputs}
    extra = tuple(
        Tensor(n.tensor, "", None)
        for n in nodes
        if n.tensor not in listed and n.tensor in graph.tensors
    )
    return GraphInterface(graph.kind, graph.inputs, extra + graph.outputs, graph.tensors)


class FrozenRunner:
    """Runs a frozen graph from its input tensors to the chosen outputs."""

    def __init__(self, graph_def: Any, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        def imports() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(imports, [])
        self._function = wrapped.prune(
            feeds=[wrapped.graph.get_tensor_by_name(f"{name}:0") for name in inputs],
            fetches=[wrapped.graph.get_tensor_by_name(name) for name in outputs],
        )

    def __call__(self, feeds: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        results = self._function(*[tf.constant(x) for x in feeds])
        return [np.asarray(r) for r in results]


class SavedModelRunner:
    """Runs the ``serving_default`` signature, returning the chosen output keys."""

    def __init__(self, function: Any, inputs: Sequence[str], outputs: Sequence[str]) -> None:
        self._function = function
        self._inputs = list(inputs)
        self._outputs = list(outputs)

    def __call__(self, feeds: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        results = self._function(
            **{name: tf.constant(x) for name, x in zip(self._inputs, feeds, strict=True)}
        )
        return [np.asarray(results[key]) for key in self._outputs]
