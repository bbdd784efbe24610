"""Helpers for the predictor's tests: a tiny classifier exported the way the trainer exports
it (SavedModel, frozen graph, labels, model card) plus its ONNX conversion, a predictor
server as a subprocess on free ports, and test images."""

from __future__ import annotations

import io
import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SIZE = 32
#: Labels in logit order; UTF-8 names on purpose.
LABELS = ["猫", "dog", "ñandú", "bird", "Ёж", "fish", "cow"]


def build_model_dirs(root: Path) -> dict[str, Path]:
    """``onnx/`` and ``saved_model/`` model version folders of one tiny classifier."""
    import keras
    import tensorflow as tf
    import tf2onnx

    from kubearts_trainer import export

    keras.utils.set_random_seed(7)
    images = keras.Input(shape=(None, None, 3), dtype="float32", name="images")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    logits = keras.layers.Dense(len(LABELS), name="logits")(x)
    model = keras.Model(images, logits)

    card = {
        "schemaVersion": 1,
        "task": "image_classification",
        "inputs": [
            {
                "name": "images",
                "dtype": "float32",
                "shape": [-1, -1, -1, 3],
                "layout": "NHWC",
                "imageSize": [IMAGE_SIZE, IMAGE_SIZE],
            }
        ],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, len(LABELS)]}],
        "labels": LABELS,
    }
    dirs = {name: root / name for name in ("onnx", "saved_model", "om")}
    for folder in dirs.values():
        folder.mkdir(parents=True)
        export.save_labels(LABELS, folder / "labels.txt")
        (folder / "model.json").write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
    export.save_saved_model(model, dirs["saved_model"] / "saved_model")
    graph_def = export.frozen_graph(model)
    export.save_frozen_graph(model, dirs["onnx"] / "frozen_graph.pb")
    with tf.device("/CPU:0"):
        tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=["images:0"],
            output_names=["logits:0"],
            opset=13,
            output_path=str(dirs["onnx"] / "model.onnx"),
        )
    # An Ascend offline model's folder: what the registry holds for format om.
    (dirs["om"] / "model.om").write_bytes(b"\x00" * 64)
    (dirs["om"] / "config.json").write_text('{"inputShape": "images:1,32,32,3"}')
    return dirs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def png(color: tuple[int, int, int] = (200, 30, 40), size: tuple[int, int] = (40, 30)) -> bytes:
    """A PNG with a gradient, so each image gives distinct logits."""
    array = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    array[..., 0] = np.linspace(0, color[0], size[0], dtype=np.uint8)[None, :]
    array[..., 1] = color[1]
    array[..., 2] = np.linspace(color[2], 255, size[1], dtype=np.uint8)[:, None]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def predictor_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "kubearts_predictor", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBEARTS_")}
    env.update(extra)
    return env


@dataclass
class Server:
    """A predictor subprocess and what it said when it loaded."""

    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int
    loaded: dict[str, Any]
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_server(
    model_dir: Path, *args: str, env: dict[str, str] | None = None, name: str = "tiny"
) -> Launch:
    """Start a predictor process; :func:`wait_ready` waits for it (start several, then wait)."""
    http_port, grpc_port = free_port(), free_port()
    process = subprocess.Popen(
        predictor_command(
            "--model_name",
            name,
            "--model_dir",
            str(model_dir),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            "--enable_latency_logging",
            "false",
            *args,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env or clean_env(),
    )
    return Launch(process, http_port, grpc_port)


@dataclass
class Launch:
    process: subprocess.Popen[str]
    http_port: int
    grpc_port: int


def wait_ready(launch: Launch, timeout: float = 90) -> Server:
    """Wait for the ``loaded`` line, then for ``/v2/health/ready``: events, not sleeps."""
    process = launch.process
    assert process.stdout is not None
    lines: list[str] = []
    loaded = None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while loaded is None and time.monotonic() < deadline:
        if not selector.select(timeout=1):
            if process.poll() is not None:
                break
            continue
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith('{"event":"loaded"'):
            loaded = json.loads(line)
    selector.close()
    if loaded is None:
        process.kill()
        raise AssertionError(f"the predictor did not load: {lines}")
    server = Server(process, launch.http_port, launch.grpc_port, loaded, lines)
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    server.stop()
    raise AssertionError("the predictor never became ready")
