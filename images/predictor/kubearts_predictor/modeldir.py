"""The model version folder, as the model registry lays it out.

``models/<model>/<version>/`` holds one of

* ``model.onnx`` (ONNX, served by ONNX Runtime),
* ``saved_model/`` (a TensorFlow SavedModel whose ``serving_default`` signature maps
  ``images`` float32 [N, H, W, 3] RGB 0-255 to ``logits`` [N, classes]),
* ``*.om`` and ``config.json`` (an Ascend offline model, served by AscendCL),

and next to it ``labels.txt`` (one class name per line in logit order, UTF-8) and
``model.json`` (the model card: ``inputs[0].imageSize`` [H, W], ``inputs[0].layout`` NHWC or
NCHW, ``labels``). The card is optional for ONNX and SavedModel folders (the size is then read
from the graph); labels default to the card's ``labels``, then to class indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubearts_predictor.errors import PredictorError

RUNTIMES: Final = ("onnxruntime", "tensorflow", "ascend")
ONNX: Final = "model.onnx"
SAVED_MODEL: Final = "saved_model"
LABELS: Final = "labels.txt"
MODEL_CARD: Final = "model.json"


@dataclass(frozen=True)
class ModelDir:
    """What the folder holds and how its model wants its input."""

    path: Path
    runtime: str
    labels: tuple[str, ...]
    image_size: tuple[int, int] | None
    """[H, W] from the model card, None when the card does not say."""
    layout: str
    """``NHWC`` or ``NCHW``: how the model's input tensor is laid out."""
    card: dict[str, Any]


def default_runtime(path: Path) -> str:
    """The runtime the folder's files call for."""
    if (path / ONNX).is_file():
        return "onnxruntime"
    if (path / SAVED_MODEL / "saved_model.pb").is_file():
        return "tensorflow"
    if any(path.glob("*.om")):
        return "ascend"
    raise PredictorError(
        "ModelLoadFailed",
        f"{path} holds no model: expected {ONNX}, {SAVED_MODEL}/saved_model.pb or an .om file",
    )


def read(path: Path, runtime: str | None = None) -> ModelDir:
    """Read the folder's card and labels; the runtime is the one asked for or the default."""
    if not path.is_dir():
        raise PredictorError("ModelLoadFailed", f"the model folder {path} does not exist")
    runtime = runtime or default_runtime(path)
    card = _card(path / MODEL_CARD)
    inputs = card.get("inputs") or [{}]
    first = inputs[0] if isinstance(inputs[0], dict) else {}
    size = first.get("imageSize")
    image_size = None
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(_positive(v) for v in size)):
            raise PredictorError(
                "ModelLoadFailed", f"{path / MODEL_CARD}: inputs[0].imageSize must be [H, W]"
            )
        image_size = (int(size[0]), int(size[1]))
    layout = str(first.get("layout", "NHWC")).upper()
    if layout not in ("NHWC", "NCHW"):
        raise PredictorError(
            "ModelLoadFailed", f"{path / MODEL_CARD}: inputs[0].layout must be NHWC or NCHW"
        )
    return ModelDir(path, runtime, _labels(path, card), image_size, layout, card)


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorError(
            "ModelLoadFailed", f"cannot read the model card {path}: {exc}"
        ) from exc
    if not isinstance(card, dict):
        raise PredictorError("ModelLoadFailed", f"the model card {path} is not a JSON object")
    return card


def _labels(path: Path, card: dict[str, Any]) -> tuple[str, ...]:
    labels_file = path / LABELS
    if labels_file.is_file():
        try:
            text = labels_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PredictorError("ModelLoadFailed", f"cannot read {labels_file}: {exc}") from exc
        return tuple(line.rstrip("\r") for line in text.split("\n") if line.strip())
    labels = card.get("labels")
    if isinstance(labels, list) and all(isinstance(label, str) for label in labels):
        return tuple(labels)
    return ()
