"""Fixtures for the predictor's tests: the tiny model's folders (built once per session) and
one predictor server on them, started as a subprocess the way a pod runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from predictor_helpers import Server, build_model_dirs, start_server

#: Limits small enough to reach in a test; batching waits long enough to gather requests.
SERVER_ARGS = (
    "--max_body_bytes",
    "1000000",
    "--max_pixels",
    "250000",
    "--max_batch_size",
    "8",
    "--max_batch_wait_ms",
    "20",
)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``onnx``, ``saved_model`` and ``om`` version folders of one tiny classifier."""
    return build_model_dirs(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def server(model_dirs: dict[str, Path]) -> Iterator[Server]:
    """The ONNX model served on CPU with small limits."""
    running = start_server(model_dirs["onnx"], *SERVER_ARGS)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def reference(model_dirs: dict[str, Path]):  # type: ignore[no-untyped-def]
    """The same model.onnx in ONNX Runtime, in this process: what every answer must match."""
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(model_dirs["onnx"] / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name

    def run(batch):  # type: ignore[no-untyped-def]
        return session.run(None, {name: batch})[0]

    return run
