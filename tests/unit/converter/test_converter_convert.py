"""The convert command on a tiny exported classifier: both ONNX templates converted and
verified against TensorFlow, options checked against the real graph, ATC's absence."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from converter_helpers import CLASSES, Exported, Run


def _convert(exported: Exported, output: Path, template: str, *extra: str) -> list[str]:
    return [
        "convert",
        "--template",
        template,
        "--source",
        str(exported.root),
        "--output",
        str(output),
        *extra,
    ]


def test_frozen_graph_to_onnx_verified_on_the_eval_split(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    output = tmp_path / "onnx"
    run = run_main(
        _convert(
            exported,
            output,
            "TF-FrozenGraph-To-ONNX",
            "--verify-manifest",
            str(exported.manifest),
            "--verify-root",
            str(exported.dataset),
            "--verify-samples",
            "5",
        ),
        tmp_path / "result.json",
    )
    assert run.code == 0, run.result
    result = run.result
    assert result["status"] == "Succeeded"
    assert result["reason"] == "Converted"
    verification = result["verification"]
    assert verification["passed"] is True
    assert verification["inputs"] == "eval-split"
    assert verification["samples"] == 5
    assert verification["top1Agreement"] == 1.0
    assert verification["maxAbsDiff"] <= 1e-4
    assert result["output"]["file"] == "model.onnx"
    assert result["output"]["format"] == "onnx"
    assert result["output"]["sizeBytes"] == (output / "model.onnx").stat().st_size
    assert result["output"]["digest"].startswith("sha256:")
    assert set(result["tools"]) == {"tensorflow", "tf2onnx", "onnx", "onnxruntime"}
    assert result["opset"] == 13
    assert result["command"][:4] == ["python", "-m", "kubearts_converter", "convert"]
    assert run.result_file is not None
    assert run.result_file["verification"] == verification
    assert sorted(p.name for p in output.iterdir()) == ["labels.txt", "model.json", "model.onnx"]
    card = json.loads((output / "model.json").read_text(encoding="utf-8"))
    assert card["format"] == "onnx"
    assert card["labels"] == CLASSES
    assert card["inputs"][0]["name"] == "images"
    assert card["inputs"][0]["shape"] == [-1, -1, -1, 3]
    assert card["inputs"][0]["imageSize"] == [32, 32]
    assert card["outputs"][0]["name"] == "logits"
    assert card["conversion"]["verification"]["passed"] is True
    assert [e["step"] for e in run.events if e["event"] == "progress"] == [
        "inspect",
        "convert",
        "verify",
    ]


def test_saved_model_to_onnx_with_a_fixed_nchw_input(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    import onnxruntime as ort

    output = tmp_path / "onnx"
    run = run_main(
        _convert(
            exported,
            output,
            "TF-SavedModel-To-ONNX",
            "--input-shape",
            "images:2,32,32,3",
            "--input-format",
            "NCHW",
            "--verify-samples",
            "3",
        )
    )
    assert run.code == 0, run.result
    verification = run.result["verification"]
    assert verification["inputs"] == "random"
    assert verification["samples"] == 3
    assert verification["passed"] is True
    session = ort.InferenceSession(str(output / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("images", [2, 3, 32, 32])]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    logits = session.run(None, {"images": np.zeros((2, 3, 32, 32), np.float32)})[0]
    assert logits.shape == (2, len(CLASSES))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--input-shape", "images:1,32,32"], "rank 3 but the input images has rank 4"),
        (["--output-nodes", "scores:0"], "the graph has no output scores:0"),
    ],
    ids=["input-rank", "missing-output"],
)
def test_options_are_checked_against_the_graph(
    exported: Exported,
    run_main: Callable[..., Run],
    tmp_path: Path,
    extra: list[str],
    expected: str,
) -> None:
    output = tmp_path / "onnx"
    run = run_main(_convert(exported, output, "TF-FrozenGraph-To-ONNX", *extra))
    assert run.code == 3
    result = run.result
    assert result["reason"] == "InvalidOptions"
    assert expected in result["message"]
    # The real names, so the fix is one copy away.
    assert "images float32[-1,-1,-1,3]" in result["message"]
    assert "logits:0" in result["message"]
    assert not output.exists()


def test_ascend_without_atc_fails_with_the_command_and_no_om(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    output = tmp_path / "om"
    run = run_main(
        _convert(
            exported,
            output,
            "TF-FrozenGraph-To-Ascend-C32",
            "--input-shape",
            "images:1,224,224,3",
            "--output-nodes",
            "logits:0",
        ),
        tmp_path / "result.json",
    )
    assert run.code == 11
    result: dict[str, Any] = run.result
    assert result["reason"] == "ConverterUnavailable"
    assert "atc" in result["message"]
    assert "CANN" in result["message"]
    assert result["command"] == [
        "atc",
        "--framework=3",
        f"--model={exported.root / 'frozen_graph.pb'}",
        f"--output={output / 'model'}",
        "--soc_version=Ascend310",
        "--input_shape=images:1,224,224,3",
        "--input_format=NHWC",
        "--out_nodes=logits:0",
        "--output_type=FP32",
        "--precision_mode=allow_fp32_to_fp16",
    ]
    assert run.result_file is not None
    assert run.result_file["command"] == result["command"]
    assert not list(tmp_path.rglob("*.om"))


def test_ascend_options_are_checked_first(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    run = run_main(_convert(exported, tmp_path / "om", "TF-FrozenGraph-To-Ascend-C32"))
    assert run.code == 3
    assert "ATC needs every input dimension fixed" in run.result["message"]


def test_missing_artifact_is_source_unavailable(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("", encoding="utf-8")
    run = run_main(
        [
            "convert",
            "--template",
            "TF-SavedModel-To-ONNX",
            "--source",
            str(empty),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert run.code == 10
    assert "saved_model/" in run.result["message"]
    assert "notes.txt" in run.result["message"]


def test_too_tight_a_tolerance_is_verification_failed(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    # The frozen graph's float rounding differs from ONNX Runtime's by more than 1e-12.
    run = run_main(
        _convert(
            exported,
            tmp_path / "onnx",
            "TF-FrozenGraph-To-ONNX",
            "--verify-tolerance",
            "1e-12",
            "--verify-samples",
            "2",
        )
    )
    assert run.code == 21, run.result
    assert run.result["reason"] == "VerificationFailed"
    assert run.result["verification"]["passed"] is False
    assert run.result["verification"]["maxAbsDiff"] > 1e-12
    assert "--verify-tolerance" in run.result["message"]


def _fake_atc(folder: Path, script: str) -> None:
    """An ``atc`` stand-in on PATH (this machine has no CANN toolkit)."""
    folder.mkdir()
    tool = folder / "atc"
    tool.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    tool.chmod(0o755)


def test_ascend_with_atc_reports_its_om(
    exported: Exported,
    run_main: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Writes <--output>.om as ATC does; the converter only checks and reports it.
    _fake_atc(
        tmp_path / "bin",
        'for a in "$@"; do case "$a" in --output=*) printf om > "${a#--output=}.om";; esac; done\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    output = tmp_path / "om"
    run = run_main(
        _convert(
            exported,
            output,
            "TF-FrozenGraph-To-Ascend-C32",
            "--input-shape",
            "images:1,32,32,3",
            "--precision",
            "FP16",
        )
    )
    assert run.code == 0, run.result
    assert run.result["output"]["file"] == "model.om"
    assert run.result["output"]["format"] == "om"
    assert run.result["output"]["sizeBytes"] == 2
    assert run.result["verification"]["skipped"] is True
    assert "Ascend hardware" in run.result["verification"]["message"]
    assert "--precision_mode=force_fp16" in run.result["command"]
    assert (output / "labels.txt").is_file()


def test_atc_that_writes_no_om_is_conversion_failed(
    exported: Exported,
    run_main: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_atc(tmp_path / "bin", 'echo "E19999: unsupported operator" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    run = run_main(
        _convert(
            exported,
            tmp_path / "om",
            "TF-FrozenGraph-To-Ascend-C32",
            "--input-shape",
            "images:1,32,32,3",
        )
    )
    assert run.code == 20
    assert run.result["reason"] == "ConversionFailed"
    assert "E19999" in run.result["message"]
    assert run.result["command"][0] == "atc"
