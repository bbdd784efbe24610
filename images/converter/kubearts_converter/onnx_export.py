"""The ONNX templates: tf2onnx, then ONNX Runtime's offline graph optimisation.

* The batch dimension (and any other dynamic one) stays dynamic unless ``inputShape`` fixes
  it (tf2onnx's ``shape_override``).
* ``inputFormat: NCHW`` gives the ONNX model an NCHW input (tf2onnx's ``inputs_as_nchw``
  inserts the transpose); the source graph stays NHWC.
* Tensor names lose their ``:0`` (``images`` → ``logits``), so clients see the same
  signature as the SavedModel's.
* The saved ``model.onnx`` is ONNX Runtime's ``ORT_ENABLE_BASIC`` optimisation of tf2onnx's
  output (``SessionOptions.optimized_model_filepath``). Basic optimisations (constant
  folding, redundant node elimination, semantics-preserving node fusions) run before graph
  partitioning and use standard ONNX operators only, so the file stays portable across
  execution providers (CPU, CUDA, CANN). ``ORT_ENABLE_EXTENDED`` and above fuse into
  ``com.microsoft`` contrib operators chosen for the execution provider that did the
  optimisation; ONNX Runtime's documentation warns that such an offline-optimised model may
  not run elsewhere. Extended fusions still happen online, when a server loads the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import tf2onnx
from tf2onnx import tf_loader

from kubearts_converter.errors import ConverterError
from kubearts_converter.graphs import SIGNATURE
from kubearts_converter.options import Options, OutputNode, Tensor

MODEL_NAME: Final = "model.onnx"
PROVIDERS: Final = ["CPUExecutionProvider"]


def output_name(node: OutputNode) -> str:
    """The ONNX name of an output node: ``logits:0`` → ``logits``; ``feat:1`` stays."""
    return _renamed(node.tensor)


def _renamed(tensor: str) -> str:
    return tensor[:-2] if tensor.endswith(":0") else tensor


def _dims_or_none(dims: tuple[int, ...]) -> list[int | None]:
    """tf2onnx's ``shape_override`` marks a dynamic dimension with None."""
    return [None if d == -1 else d for d in dims]


def from_frozen_graph(
    graph_def: Any, inputs: list[Tensor], outputs: list[OutputNode], options: Options
) -> Any:
    """tf2onnx's ModelProto of a frozen graph."""
    input_names = [f"{t.name}:0" for t in inputs]
    output_names = [n.tensor for n in outputs]
    fixed = {
        s.name if ":" in s.name else f"{s.name}:0": _dims_or_none(s.dims)
        for s in options.input_shapes
    }
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=input_names,
            output_names=output_names,
            opset=options.opset,
            inputs_as_nchw=input_names if options.input_format == "NCHW" else None,
            shape_override=fixed or None,
            tensors_to_rename={n: _renamed(n) for n in (*input_names, *output_names)},
        )
    except Exception as exc:
        raise ConverterError(
            "ConversionFailed", f"tf2onnx cannot convert the graph: {exc}"
        ) from exc
    return model


def from_saved_model(path: Path, outputs: list[OutputNode], options: Options) -> Any:
    """tf2onnx's ModelProto of the SavedModel's ``serving_default`` signature."""
    try:
        graph_def, graph_inputs, graph_outputs, renames = tf_loader.from_saved_model(
            str(path),
            None,
            None,
            signatures=[SIGNATURE],
            return_tensors_to_rename=True,
        )
    except Exception as exc:
        raise ConverterError(
            "ConversionFailed", f"tf2onnx cannot read the SavedModel {path}: {exc}"
        ) from exc
    wanted = {n.name for n in outputs}
    chosen = [name for name in graph_outputs if renames.get(name) in wanted]
    by_key = {renames.get(name, name): name for name in graph_inputs}
    fixed = {by_key[s.name.split(":")[0]]: _dims_or_none(s.dims) for s in options.input_shapes}
    try:
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=graph_inputs,
            output_names=chosen,
            opset=options.opset,
            inputs_as_nchw=list(graph_inputs) if options.input_format == "NCHW" else None,
            shape_override=fixed or None,
            tensors_to_rename=renames,
        )
    except Exception as exc:
        raise ConverterError(
            "ConversionFailed", f"tf2onnx cannot convert the SavedModel: {exc}"
        ) from exc
    return model


def optimize(model: Any, raw: Path, target: Path) -> None:
    """Write tf2onnx's ``model`` to ``raw``, and its ORT_ENABLE_BASIC optimisation to
    ``target`` (see the module docstring for the level)."""
    onnx.save(model, str(raw))
    settings = ort.SessionOptions()
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    settings.optimized_model_filepath = str(target)
    try:
        ort.InferenceSession(str(raw), settings, providers=PROVIDERS)
    except Exception as exc:
        raise ConverterError(
            "ConversionFailed", f"ONNX Runtime cannot load the converted model: {exc}"
        ) from exc
    if not target.is_file():
        raise ConverterError("ConversionFailed", f"ONNX Runtime wrote no {target.name}")


class OnnxRunner:
    """Runs the converted model with ONNX Runtime on the CPU."""

    def __init__(self, path: Path, outputs: list[str] | None = None, threads: int = 0) -> None:
        settings = ort.SessionOptions()
        if threads:
            settings.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), settings, providers=PROVIDERS)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = outputs or [o.name for o in self.session.get_outputs()]

    def __call__(self, feeds: list[npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        results = self.session.run(self.outputs, dict(zip(self.inputs, feeds, strict=True)))
        return [np.asarray(r) for r in results]


def versions() -> dict[str, str]:
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "tf2onnx": tf2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }
