"""The register command: what each format copies, the digest, the signature, idempotency,
RegistryConflict, and the command line's exit codes in a real process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from converter_helpers import CLASSES, Exported, Run

from kubearts_converter.digest import digest_tree

WORKER_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _register(source: Path, fmt: str, output: Path, *extra: str) -> list[str]:
    return ["register", "--source", str(source), "--format", fmt, "--output", str(output), *extra]


@pytest.fixture
def onnx_source(tmp_path: Path) -> Path:
    """A converter output directory: a tiny real ONNX graph (Identity), labels, card."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
    )
    folder = tmp_path / "converted"
    folder.mkdir()
    onnx.save(helper.make_model(graph), str(folder / "model.onnx"))
    (folder / "labels.txt").write_text("".join(f"{c}\n" for c in CLASSES), encoding="utf-8")
    return folder


@pytest.fixture
def om_source(tmp_path: Path) -> Path:
    folder = tmp_path / "ascend"
    folder.mkdir()
    (folder / "resnet.om").write_bytes(b"om bytes as ATC writes them")
    config = {
        "model_algorithm": "image_classification",
        "model_type": "Ascend",
        "labels": ["zero", "one"],
        "inputs": [{"name": "images", "data_type": "float32", "shape": [1, 224, 224, 3]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, 2]}],
        "metrics": {"accuracy": 0.9, "f1": 0.88},
    }
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "README").write_text("not copied", encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("fmt", "files"),
    [
        ("saved-model", {"labels.txt", "model.json", "saved_model/saved_model.pb"}),
        ("frozen-graph", {"labels.txt", "model.json", "frozen_graph.pb"}),
    ],
    ids=["saved-model", "frozen-graph"],
)
def test_trainer_output_formats(
    exported: Exported,
    run_main: Callable[..., Run],
    tmp_path: Path,
    fmt: str,
    files: set[str],
) -> None:
    output = tmp_path / "models" / "tiny" / "1.0.0"
    run = run_main(_register(exported.root, fmt, output), tmp_path / "result.json")
    assert run.code == 0, run.result
    result = run.result
    assert result["reason"] == "Registered"
    copied = {p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()}
    assert files <= copied
    other = "frozen_graph.pb" if fmt == "saved-model" else "saved_model/saved_model.pb"
    assert other not in copied
    digest = digest_tree(output, exclude=frozenset({"registration.json"}))
    assert result["digest"] == digest.digest
    assert result["files"] == digest.files
    assert result["sizeBytes"] == digest.size_bytes
    assert result["signature"]["inputs"][0]["name"] == "images"
    assert result["signature"]["outputs"][0]["name"] == "logits"
    assert result["signature"]["labels"] == CLASSES
    assert result["signature"]["classes"] == len(CLASSES)
    assert result["metrics"] == {"accuracy": 0.75, "loss": 0.5}
    registration = json.loads((output / "registration.json").read_text(encoding="utf-8"))
    assert registration["digest"] == result["digest"]
    assert registration["signature"] == result["signature"]
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]


def test_saved_model_signature_without_a_card(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    run = run_main(_register(exported.root / "saved_model", "saved-model", tmp_path / "v1"))
    assert run.code == 0, run.result
    signature = run.result["signature"]
    assert signature["inputs"] == [{"name": "images", "dtype": "float32", "shape": [-1, -1, -1, 3]}]
    assert signature["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 4]}]


def test_onnx_signature_from_the_graph(
    onnx_source: Path, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    run = run_main(_register(onnx_source, "onnx", tmp_path / "v1"))
    assert run.code == 0, run.result
    signature = run.result["signature"]
    assert signature["inputs"] == [{"name": "images", "dtype": "float32", "shape": [-1, 4]}]
    assert signature["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 4]}]
    assert signature["labels"] == CLASSES
    assert "metrics" not in run.result


def test_om_with_config(om_source: Path, run_main: Callable[..., Run], tmp_path: Path) -> None:
    output = tmp_path / "v1"
    run = run_main(_register(om_source, "om", output, "--template", "ARM-Ascend"))
    assert run.code == 0, run.result
    assert sorted(p.name for p in output.iterdir()) == [
        "config.json",
        "registration.json",
        "resnet.om",
    ]
    signature = run.result["signature"]
    assert signature["modelAlgorithm"] == "image_classification"
    assert signature["modelType"] == "Ascend"
    assert signature["labels"] == ["zero", "one"]
    assert signature["inputs"] == [
        {"name": "images", "dtype": "float32", "shape": [1, 224, 224, 3]}
    ]
    assert run.result["metrics"] == {"accuracy": 0.9}


def test_om_without_config_is_source_unavailable(
    om_source: Path, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    (om_source / "config.json").unlink()
    run = run_main(_register(om_source, "om", tmp_path / "v1", "--template", "ARM-Ascend"))
    assert run.code == 10
    assert "config.json" in run.result["message"]
    assert "resnet.om" in run.result["message"]  # what was found
    assert not (tmp_path / "v1").exists()


def test_same_model_twice_is_idempotent_another_is_a_conflict(
    onnx_source: Path, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    output = tmp_path / "models" / "m" / "1.0.0"
    first = run_main(_register(onnx_source, "onnx", output))
    copy = tmp_path / "copy"
    shutil.copytree(onnx_source, copy)
    again = run_main(_register(copy, "onnx", output))
    assert again.code == 0
    assert again.result["digest"] == first.result["digest"]
    assert "unchanged" in again.result["message"]
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    (copy / "labels.txt").write_text("x\ny\n", encoding="utf-8")
    conflict = run_main(_register(copy, "onnx", output))
    assert conflict.code == 22
    assert conflict.result["reason"] == "RegistryConflict"
    assert conflict.result["existingDigest"] == first.result["digest"]
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before


def test_long_label_lists_are_cut_to_fit_the_termination_log(
    tmp_path: Path, onnx_source: Path, run_main: Callable[..., Run]
) -> None:
    labels = [f"class-with-a-long-name-{i:04d}" for i in range(1000)]
    (onnx_source / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    run = run_main(_register(onnx_source, "onnx", tmp_path / "v1"), tmp_path / "result.json")
    assert run.code == 0
    assert len(run.result["signature"]["labels"]) == 1000
    written = (tmp_path / "result.json").read_bytes()
    assert len(written) <= 4096
    compact = json.loads(written)
    assert compact["truncated"] is True
    assert compact["signature"]["classes"] == 1000
    assert compact["digest"] == run.result["digest"]


def test_cli_success_in_a_process(onnx_source: Path, tmp_path: Path) -> None:
    result = tmp_path / "termination-log"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubearts_converter",
            *_register(onnx_source, "onnx", tmp_path / "v1"),
            "--result",
            str(result),
        ],
        capture_output=True,
        text=True,
        env=WORKER_ENV,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines()]
    assert lines[-1]["event"] == "result"
    assert lines[-1]["status"] == "Succeeded"
    assert json.loads(result.read_text(encoding="utf-8"))["reason"] == "Registered"


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (
            ["convert", "--template", "TF-Lite-To-ONNX", "--source", "x", "--output", "y"],
            2,
            "InvalidArgument",
        ),
        (
            [
                "convert",
                "--template",
                "TF-FrozenGraph-To-ONNX",
                "--source",
                "x",
                "--output",
                "y",
                "--input-shape",
                "images:1,a",
            ],
            3,
            "InvalidOptions",
        ),
    ],
    ids=["unknown-template", "bad-input-shape"],
)
def test_cli_failures_in_a_process(tmp_path: Path, args: list[str], code: int, reason: str) -> None:
    result = tmp_path / "termination-log"
    finished = subprocess.run(
        [sys.executable, "-m", "kubearts_converter", *args, "--result", str(result)],
        capture_output=True,
        text=True,
        env=WORKER_ENV,
        timeout=120,
        check=False,
    )
    assert finished.returncode == code, finished.stderr
    assert json.loads(finished.stdout.splitlines()[-1])["reason"] == reason
    written = json.loads(result.read_text(encoding="utf-8"))
    assert written["status"] == "Failed"
    assert written["reason"] == reason


def test_frozen_graph_signature_without_a_card(
    exported: Exported, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    run = run_main(_register(exported.root / "frozen_graph.pb", "frozen-graph", tmp_path / "v1"))
    assert run.code == 0, run.result
    assert sorted(p.name for p in (tmp_path / "v1").iterdir()) == [
        "frozen_graph.pb",
        "registration.json",
    ]
    signature = run.result["signature"]
    assert signature["inputs"] == [{"name": "images", "dtype": "float32", "shape": [-1, -1, -1, 3]}]
    assert signature["outputs"] == [{"name": "logits", "dtype": "float32", "shape": [-1, 4]}]


def test_unregister_removes_a_registered_version_and_nothing_else(
    onnx_source: Path, run_main: Callable[..., Run], tmp_path: Path
) -> None:
    version = tmp_path / "registry" / "1.0.0"
    assert run_main(_register(onnx_source, "onnx", version)).code == 0
    stranger = tmp_path / "registry" / "notes"
    stranger.mkdir()
    (stranger / "keep.txt").write_text("mine", encoding="utf-8")
    refused = run_main(["unregister", "--target", str(stranger)])
    assert (refused.code, refused.result["reason"]) == (2, "InvalidArgument")
    assert (stranger / "keep.txt").exists()
    removed = run_main(["unregister", "--target", str(version)])
    assert (removed.code, removed.result["reason"]) == (0, "Removed")
    assert removed.result["files"] >= 3
    assert not version.exists()
    again = run_main(["unregister", "--target", str(version)])
    assert (again.code, again.result["files"]) == (0, 0)
