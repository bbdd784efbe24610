"""An ONNX model's inputs and outputs, read with the ``onnx`` package alone (no TensorFlow,
no ONNX Runtime), for model cards and registry signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx


def _dims(value_info: Any) -> list[int]:
    return [
        d.dim_value if d.HasField("dim_value") else -1
        for d in value_info.type.tensor_type.shape.dim
    ]


def _dtype(value_info: Any) -> str:
    elem = value_info.type.tensor_type.elem_type
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)))
    except (KeyError, TypeError, ValueError):
        return str(onnx.TensorProto.DataType.Name(elem)).lower()


def interface(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ONNX model's inputs and outputs as ``{name, dtype, shape}`` (-1 = dynamic)."""
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [
        {"name": v.name, "dtype": _dtype(v), "shape": _dims(v)}
        for v in model.graph.input
        if v.name not in initializers
    ]
    outputs = [{"name": v.name, "dtype": _dtype(v), "shape": _dims(v)} for v in model.graph.output]
    return inputs, outputs
