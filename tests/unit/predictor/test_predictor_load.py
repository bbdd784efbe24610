"""Loading: the runtime chosen from the folder, honest devices, and load failures that reach
the operator as a result document and an exit code."""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from predictor_helpers import (
    IMAGE_SIZE,
    LABELS,
    Server,
    clean_env,
    png,
    predictor_command,
)

from kubearts_predictor import backends, cli, devices, modeldir
from kubearts_predictor.result import Events


def _main(*args: str) -> tuple[int, list[dict[str, Any]]]:
    stream = io.StringIO()
    code = cli.main(list(args), Events(stream))
    return code, [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture(autouse=True)
def _no_device_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEARTS_DEVICE", raising=False)
    monkeypatch.delenv("KUBEARTS_ALLOW_CPU_FALLBACK", raising=False)


@pytest.mark.parametrize(
    ("folder", "runtime"),
    [("onnx", "onnxruntime"), ("saved_model", "tensorflow"), ("om", "ascend")],
)
def test_runtime_follows_the_folder(model_dirs: dict[str, Path], folder: str, runtime: str) -> None:
    read = modeldir.read(model_dirs[folder])
    assert read.runtime == runtime
    assert read.labels == tuple(LABELS)
    assert read.image_size == (IMAGE_SIZE, IMAGE_SIZE)


def test_saved_model_agrees_with_onnx(model_dirs: dict[str, Path]) -> None:
    cpu = devices.Placement("cpu", False)
    tensorflow = backends.load(modeldir.read(model_dirs["saved_model"]), cpu, threads=1)
    onnx = backends.load(modeldir.read(model_dirs["onnx"]), cpu, threads=1)
    assert tensorflow.runtime == "tensorflow"
    assert tensorflow.provider == "TensorFlow:CPU"
    batch = (np.random.default_rng(9).random((3, IMAGE_SIZE, IMAGE_SIZE, 3)) * 255).astype(
        np.float32
    )
    np.testing.assert_allclose(tensorflow.run(batch), onnx.run(batch), atol=1e-4)


def test_om_without_ascendcl_fails_model_load(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    result = tmp_path / "termination-log"
    code, lines = _main(
        "--model_dir", str(model_dirs["om"]), "--device", "ascend310", "--result", str(result)
    )
    assert code == 10
    document = json.loads(result.read_text())
    assert document["status"] == "Failed"
    assert document["reason"] == "ModelLoadFailed"
    assert document["message"].startswith("AscendCL not available (")
    assert lines[-1]["event"] == "result"
    assert lines[-1]["reason"] == "ModelLoadFailed"


def test_gpu_without_cuda_provider_is_accelerator_unavailable(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    result = tmp_path / "termination-log"
    code, lines = _main(
        "--model_dir", str(model_dirs["onnx"]), "--device", "gpu", "--result", str(result)
    )
    assert code == 12
    document = json.loads(result.read_text())
    assert document["reason"] == "AcceleratorUnavailable"
    assert "CUDAExecutionProvider" in document["message"]
    assert "KUBEARTS_ALLOW_CPU_FALLBACK" in document["message"]
    assert not any(line["event"] == "loaded" for line in lines)


def test_cuda_session_preloads_the_cuda_wheels_first(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA image's CUDA and cuDNN are NVIDIA's pip wheels, off the loader's path: ONNX
    Runtime preloads them before the CUDA session opens (this CPU build stands in for it)."""
    import onnxruntime as ort

    calls: list[str] = []
    open_session = ort.InferenceSession

    def session(path: str, sess_options: Any, providers: list[str]) -> Any:
        calls.append(f"InferenceSession({'+'.join(providers)})")
        return open_session(path, sess_options=sess_options, providers=[devices.CPU_PROVIDER])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [*devices.PROVIDERS.values()])
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload_dlls"))
    monkeypatch.setattr(ort, "InferenceSession", session)
    loaded = backends.load(modeldir.read(model_dirs["onnx"]), devices.Placement("gpu", True))
    assert calls == ["preload_dlls", "InferenceSession(CUDAExecutionProvider+CPUExecutionProvider)"]
    assert loaded.fallback


def test_usage_error_exits_2_with_a_result(tmp_path: Path) -> None:
    result = tmp_path / "termination-log"
    code, _ = _main("--model_dir", str(tmp_path), "--device", "tpu", "--result", str(result))
    assert code == 2
    assert json.loads(result.read_text())["reason"] == "InvalidArgument"


def test_missing_folder_fails_model_load(tmp_path: Path) -> None:
    code, lines = _main("--model_dir", str(tmp_path / "nowhere"))
    assert code == 10
    assert "does not exist" in lines[-1]["message"]


def test_subprocess_exit_code_and_termination_message(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """What a pod shows: the exit status, the result line on stdout, the termination log."""
    result = tmp_path / "termination-log"
    done = subprocess.run(
        predictor_command("--model_dir", str(model_dirs["om"]), "--result", str(result)),
        capture_output=True,
        text=True,
        env=clean_env(KUBEARTS_DEVICE="ascend310"),
        timeout=120,
        check=False,
    )
    assert done.returncode == 10
    line = json.loads(done.stdout.strip().splitlines()[-1])
    assert line["event"] == "result"
    assert line["reason"] == "ModelLoadFailed"
    assert len(result.read_bytes()) <= 4096


def test_gpu_with_fallback_serves_on_cpu_and_says_so(servers: dict[str, Server]) -> None:
    server = servers["fallback"]
    assert server.loaded["fallback"] is True
    assert server.loaded["device"] == "gpu"
    assert server.loaded["provider"] == "CPUExecutionProvider"
    assert "instead of gpu" in server.loaded["message"]
    response = requests.post(f"{server.url}/", files=[("images", ("a.png", png(), "image/png"))])
    assert response.status_code == 200
    assert response.headers["X-KubeArts-Provider"] == "CPUExecutionProvider"
    assert response.headers["X-KubeArts-Fallback"] == "true"


def test_onnx_runtime_threads_rest_after_a_run(tmp_path: Path) -> None:
    """Spin-waiting stops when a run ends: an idle predictor takes no CPU from the event loop
    answering the request, from the container's quota or from its neighbours."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(3).random((512, 512)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 512])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "model.onnx")
    session = ort.InferenceSession(
        str(tmp_path / "model.onnx"),
        backends.session_options(2),
        providers=["CPUExecutionProvider"],
    )
    feed = {"x": weights[:256]}
    for _ in range(3):
        session.run(None, feed)
    idle = []
    for _ in range(5):
        session.run(None, feed)
        started = time.process_time()
        time.sleep(0.05)
        idle.append(time.process_time() - started)
    # Left spinning, the second thread burns most of those 50 ms.
    assert min(idle) < 0.005, f"CPU seconds used in the 50 ms after each run: {idle}"
