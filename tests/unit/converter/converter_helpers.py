"""Helpers of the converter's tests: a tiny Keras classifier (two convolutions, four classes)
exported with the trainer's own export functions into a directory shaped like a trainer
output, a few PNG evaluation images with their ``eval.jsonl``, and the command line run in
this process."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CLASSES = ["cat", "dog", "fish", "bird"]
IMAGE_SIZE = 32


@dataclass(frozen=True)
class Exported:
    """A trainer-shaped output directory and an evaluation split for verification."""

    root: Path
    dataset: Path
    manifest: Path


@dataclass(frozen=True)
class Run:
    code: int
    events: list[dict[str, Any]]
    result: dict[str, Any]
    result_file: dict[str, Any] | None


def _model() -> Any:
    import keras

    keras.utils.set_random_seed(7)
    images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(len(CLASSES))(x)
    return keras.Model(images, logits)


def _card() -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "task": "image_classification",
        "algorithm": "tiny",
        "framework": "TensorFlow",
        "inputs": [
            {
                "name": "images",
                "dtype": "float32",
                "shape": [-1, -1, -1, 3],
                "layout": "NHWC",
                "colorOrder": "RGB",
                "range": [0, 255],
                "imageSize": [IMAGE_SIZE, IMAGE_SIZE],
                "graphTensor": "images:0",
            }
        ],
        "outputs": [
            {
                "name": "logits",
                "dtype": "float32",
                "shape": [-1, len(CLASSES)],
                "kind": "logits",
                "graphTensor": "logits:0",
            }
        ],
        "labels": CLASSES,
        "labelsFile": "labels.txt",
        "metrics": {"evaluation": {"accuracy": 0.75, "loss": 0.5, "samples": 6}},
    }


def make_exported(root: Path, dataset: Path) -> Exported:
    """Export the tiny classifier into ``root`` and write the evaluation split into ``dataset``."""
    from kubearts_trainer import export

    model = _model()
    export.save_saved_model(model, root / export.SAVED_MODEL)
    export.save_frozen_graph(model, root / export.FROZEN_GRAPH)
    export.save_labels(CLASSES, root / export.LABELS)
    (root / export.MODEL_CARD).write_text(json.dumps(_card()), encoding="utf-8")
    rng = np.random.default_rng(3)
    lines = []
    for i in range(6):
        label = CLASSES[i % len(CLASSES)]
        folder = dataset / "pictures" / label
        folder.mkdir(parents=True, exist_ok=True)
        # Not the model's size, and one grey image: the pipeline resizes and makes RGB.
        size = (40 + 3 * i, 36 + i)
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if i == 5:
            image = image.convert("L")
        image.save(folder / f"{i}.png")
        record = {
            "source": f"pictures/{label}/{i}.png",
            "usage": "EVAL",
            "annotation": [{"type": "modelarts/image_classification", "name": label}],
        }
        lines.append(json.dumps(record))
    manifest = dataset / "eval.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Exported(root, dataset, manifest)


def run_main(args: list[str], result: Path | None = None) -> Run:
    """The command line in this process: exit code, JSON lines, result file."""
    from kubearts_converter.cli import main
    from kubearts_converter.progress import Events

    stream = io.StringIO()
    with redirect_stdout(io.StringIO()):
        code = main([*args, *(["--result", str(result)] if result else [])], Events(stream))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    final = events[-1]
    assert final["event"] == "result"
    written = json.loads(result.read_text(encoding="utf-8")) if result else None
    return Run(code, events, final, written)
