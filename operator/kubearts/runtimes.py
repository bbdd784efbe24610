"""What serves a model format, and where (pure): the one table Model and InferenceService use.

| format                    | runtime       | pools                                  |
|---------------------------|---------------|----------------------------------------|
| saved-model               | tensorflow    | cpu, gpu                               |
| frozen-graph              | (not served)  | kept for conversion (ATC, tf2onnx)     |
| onnx                      | onnxruntime   | cpu, gpu (CUDA), ascend310 (CANN EP)   |
| om                        | ascend        | ascend310 (AscendCL)                   |

Every mismatch has its own reason and a message that names the field and what would fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from kubearts.constants import POOL_ASCEND310, POOL_CPU, POOL_GPU

__all__ = [
    "FORMAT_RUNTIMES",
    "PROVIDERS",
    "RUNTIME_POOLS",
    "Mismatch",
    "default_runtime",
    "servable",
    "serving_mismatch",
]

#: The runtimes that can load each format; the first is the default. A frozen graph is
#: the input of conversions: it carries no signature a server could expose, so it is
#: served through its SavedModel or its ONNX conversion instead.
FORMAT_RUNTIMES: Final[Mapping[str, tuple[str, ...]]] = {
    "saved-model": ("tensorflow",),
    "frozen-graph": ("tensorflow",),
    "onnx": ("onnxruntime",),
    "om": ("ascend",),
}
#: The pools each runtime serves on.
RUNTIME_POOLS: Final[Mapping[str, tuple[str, ...]]] = {
    "tensorflow": (POOL_CPU, POOL_GPU),
    "onnxruntime": (POOL_CPU, POOL_GPU, POOL_ASCEND310),
    "ascend": (POOL_ASCEND310,),
}
#: What a runtime runs on in a pool: the ONNX Runtime execution provider, TensorFlow's
#: device, AscendCL.
PROVIDERS: Final[Mapping[tuple[str, str], str]] = {
    ("onnxruntime", POOL_CPU): "CPUExecutionProvider",
    ("onnxruntime", POOL_GPU): "CUDAExecutionProvider",
    ("onnxruntime", POOL_ASCEND310): "CANNExecutionProvider",
    ("tensorflow", POOL_CPU): "TensorFlow:CPU",
    ("tensorflow", POOL_GPU): "TensorFlow:GPU",
    ("ascend", POOL_ASCEND310): "AscendCL",
}

REASON_RUNTIME_MISMATCH: Final = "RuntimeMismatch"
REASON_POOL_MISMATCH: Final = "PoolMismatch"
REASON_FORMAT_NOT_SERVED: Final = "FormatNotServed"
#: Formats a predictor loads.
SERVED_FORMATS: Final = frozenset({"saved-model", "onnx", "om"})


@dataclass(frozen=True)
class Mismatch:
    """Why a format, runtime and pool do not go together."""

    reason: str
    message: str


def default_runtime(model_format: str) -> str:
    """The runtime a format is served with when none is named."""
    return FORMAT_RUNTIMES[model_format][0]


def runtime_mismatch(model_format: str, runtime: str) -> Mismatch | None:
    """None when ``runtime`` can load ``model_format``."""
    runtimes = FORMAT_RUNTIMES[model_format]
    if runtime in runtimes:
        return None
    return Mismatch(
        REASON_RUNTIME_MISMATCH,
        f"runtime {runtime!r} cannot load a {model_format!r} model; "
        f"use {' or '.join(repr(r) for r in runtimes)}",
    )


def serving_mismatch(model_format: str, runtime: str, pool: str) -> Mismatch | None:
    """None when a ``model_format`` model can be served with ``runtime`` on ``pool``."""
    if model_format not in SERVED_FORMATS:
        return Mismatch(
            REASON_FORMAT_NOT_SERVED,
            f"a {model_format!r} model is not served; serve the training job's saved-model, "
            "or convert it to ONNX (TF-FrozenGraph-To-ONNX) and serve that",
        )
    wrong_runtime = runtime_mismatch(model_format, runtime)
    if wrong_runtime is not None:
        return wrong_runtime
    pools = RUNTIME_POOLS[runtime]
    if pool in pools:
        return None
    where = [f"{p} ({r})" for r in FORMAT_RUNTIMES[model_format] for p in RUNTIME_POOLS[r]]
    return Mismatch(
        REASON_POOL_MISMATCH,
        f"a {model_format!r} model served with {runtime!r} cannot run on pool {pool!r}; "
        f"it runs on {', '.join(where)}"
        + ("; convert it to ONNX to serve it elsewhere" if model_format != "onnx" else ""),
    )


def servable(model_format: str) -> list[dict[str, Sequence[str] | str]]:
    """``status.versions[].runtimes``: each runtime of the format with its pools."""
    if model_format not in SERVED_FORMATS:
        return []
    return [
        {"runtime": runtime, "pools": list(RUNTIME_POOLS[runtime])}
        for runtime in FORMAT_RUNTIMES[model_format]
    ]
