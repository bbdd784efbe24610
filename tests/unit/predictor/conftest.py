"""Fixtures for the predictor's tests: the tiny model's folders (built once per session) and
one predictor server on them, started as a subprocess the way a pod runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from predictor_helpers import Server, build_model_dirs, clean_env, launch_server, wait_ready

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
def servers(model_dirs: dict[str, Path]) -> Iterator[dict[str, Server]]:
    """Two servers of the ONNX model, started together: ``cpu`` with small limits, and
    ``fallback`` asked for a GPU (this machine has none) with CPU fallback allowed."""
    launches = {
        "cpu": launch_server(model_dirs["onnx"], *SERVER_ARGS),
        "fallback": launch_server(
            model_dirs["onnx"],
            env=clean_env(KUBEARTS_DEVICE="gpu", KUBEARTS_ALLOW_CPU_FALLBACK="true"),
        ),
    }
    running: dict[str, Server] = {}
    try:
        for name, launch in launches.items():
            running[name] = wait_ready(launch)
        yield running
    finally:
        for launch in launches.values():
            if launch.process.poll() is None:
                launch.process.terminate()
        for launch in launches.values():
            try:
                launch.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                launch.process.kill()


@pytest.fixture(scope="session")
def server(servers: dict[str, Server]) -> Server:
    """The ONNX model served on CPU with small limits."""
    return servers["cpu"]


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
