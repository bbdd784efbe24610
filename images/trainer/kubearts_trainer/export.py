"""Artifacts under ``--output``, at the paths the gallery's ``outputs`` declare.

* ``saved_model/``: a TensorFlow SavedModel whose ``serving_default`` signature takes
  ``images`` (float32 [batch, height, width, 3], RGB 0-255) and returns ``logits``
  (float32 [batch, classes]);
* ``frozen_graph.pb``: the same function with its variables folded into constants
  (``convert_variables_to_constants_v2``), a GraphDef whose input node is ``images`` and
  output node ``logits`` (tensors ``images:0`` and ``logits:0``), as ATC and tf2onnx want;
* ``labels.txt``: the class names in logit order, one per line, UTF-8;
* ``model.json``: the model card (see README.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

import keras
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

SAVED_MODEL: Final = "saved_model"
FROZEN_GRAPH: Final = "frozen_graph.pb"
LABELS: Final = "labels.txt"
MODEL_CARD: Final = "model.json"
INPUT: Final = "images"
OUTPUT: Final = "logits"

IMAGES_SPEC: Final = tf.TensorSpec([None, None, None, 3], tf.float32, name=INPUT)


def _logits(model: keras.Model, images: Any) -> Any:
    return tf.identity(tf.cast(model(images, training=False), tf.float32), name=OUTPUT)


def save_saved_model(model: keras.Model, path: Path) -> None:
    """Write the SavedModel with the ``serving_default`` signature images → logits."""
    module = tf.Module()
    # Only the weights: the model object would also drag the optimizer's slots along.
    module.weights = list(model.weights)

    @tf.function(input_signature=[IMAGES_SPEC])
    def serve(images: Any) -> dict[str, Any]:
        return {OUTPUT: _logits(model, images)}

    module.serve = serve
    if path.exists():
        shutil.rmtree(path)
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def frozen_graph(model: keras.Model) -> Any:
    """The GraphDef of images → logits with every variable a constant."""

    @tf.function(input_signature=[IMAGES_SPEC])
    def infer(images: Any) -> Any:
        return _logits(model, images)

    frozen = convert_variables_to_constants_v2(infer.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    names = {node.name for node in graph_def.node}
    missing = [name for name in (INPUT, OUTPUT) if name not in names]
    if missing:
        raise RuntimeError(f"the frozen graph lacks the node(s) {', '.join(missing)}")
    return graph_def


def save_frozen_graph(model: keras.Model, path: Path) -> int:
    """Write ``frozen_graph.pb``; returns its node count."""
    graph_def = frozen_graph(model)
    path.write_bytes(graph_def.SerializeToString())
    return len(graph_def.node)


def save_labels(classes: list[str], path: Path) -> None:
    """One class name per line in logit order."""
    path.write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
