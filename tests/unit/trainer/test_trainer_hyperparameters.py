"""The hyperparameter encoding (--name=value, one argument each) and its agreement with the
gallery: every version of every algorithm declares only what the trainer accepts, with the
same types, choices, ranges and defaults, and the latest version declares all of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubearts_trainer.errors import EXIT_CODES, TrainerError
from kubearts_trainer.hyperparameters import SCHEMA, Param, decode, encode

REPO = Path(__file__).resolve().parents[3]
GALLERY = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"
SCHEMA_FIELDS = (
    "type",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "choices",
)

STRINGS: list[Param] = [{"name": "run_name", "type": "string", "description": ""}]


def gallery_versions() -> list[Any]:
    data = yaml.safe_load(GALLERY.read_text(encoding="utf-8"))
    cases = []
    for key, text in data.items():
        if not key.startswith("algorithm."):
            continue
        entry = yaml.safe_load(text)
        for index, version in enumerate(entry["versions"]):
            latest = index == len(entry["versions"]) - 1
            cases.append(
                pytest.param(version, latest, id=f"{key.split('.')[1]}-{version['version']}")
            )
    return cases


@pytest.mark.parametrize(("version", "latest"), gallery_versions())
def test_gallery_version_declares_what_the_trainer_accepts(
    version: dict[str, Any], latest: bool
) -> None:
    trainer = {p["name"]: p for p in SCHEMA}
    declared = {p["name"]: p for p in version["hyperparameters"]}
    assert set(declared) <= set(trainer), (
        f"the trainer does not accept {set(declared) - set(trainer)}"
    )
    if latest:
        assert set(declared) == set(trainer)
    for name, param in declared.items():
        ours = {k: trainer[name].get(k) for k in SCHEMA_FIELDS}
        theirs = {k: param.get(k) for k in SCHEMA_FIELDS}
        assert theirs == ours, name
    # The entrypoint runs this trainer's train command for this algorithm.
    assert version["entrypoint"]["command"] == ["python", "-m", "kubearts_trainer"]
    assert version["entrypoint"]["args"][:2] == ["train", "--model"]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"learning_rate": 0.01}, id="float"),
        pytest.param({"learning_rate": 1e-05}, id="float-exponent"),
        pytest.param({"learning_rate": 1.0}, id="float-integral"),
        pytest.param({"momentum": 0.0}, id="float-zero"),
        pytest.param({"batch_size": 1024}, id="int"),
        pytest.param({"freeze_backbone": True}, id="bool-true"),
        pytest.param({"freeze_backbone": False}, id="bool-false"),
        pytest.param({"optimizer": "rmsprop"}, id="enum"),
        pytest.param({"pretrained_weights": "/mnt/pvc/w/resnet 50 notop.h5"}, id="string-spaces"),
        pytest.param(
            {"pretrained_weights": "s3://模型/权重 v1=a.weights.h5"}, id="string-unicode-equals"
        ),
        pytest.param({"pretrained_weights": ""}, id="string-empty"),
        pytest.param({"pretrained_weights": "--output"}, id="string-like-a-flag"),
    ],
)
def test_encoding_round_trips(values: dict[str, Any]) -> None:
    argv = encode(values)
    assert len(argv) == len(values)
    decoded = decode(argv)
    for name, value in values.items():
        assert decoded[name] == value
        assert type(decoded[name]) is type(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(True, "--flag=true", id="true"),
        pytest.param(0.1, "--rate=0.1", id="repr-float"),
        pytest.param(-3, "--count=-3", id="negative-int"),
        pytest.param("a b\tc ✓", "--name=a b\tc ✓", id="raw-string"),
    ],
)
def test_encoding_is_boot_file_style(value: Any, text: str) -> None:
    name, kind = (
        text[2:].split("=")[0],
        {bool: "bool", float: "float", int: "int", str: "string"}[type(value)],
    )
    schema: list[Param] = [{"name": name, "type": kind, "description": ""}]  # type: ignore[typeddict-item]
    assert encode({name: value}, schema) == [text]
    assert decode([text], schema) == {name: value}


def test_defaults_fill_what_is_not_given() -> None:
    values = decode([])
    assert values == {p["name"]: p["default"] for p in SCHEMA if "default" in p}
    assert "pretrained_weights" not in values


@pytest.mark.parametrize(
    ("item", "named"),
    [
        pytest.param("--learning_rat=0.1", "--learning_rat", id="unknown"),
        pytest.param("--batch_size=32.5", "--batch_size", id="float-for-int"),
        pytest.param("--batch_size=0", "--batch_size", id="below-minimum"),
        pytest.param("--learning_rate=0", "--learning_rate", id="exclusive-minimum"),
        pytest.param("--momentum=1.0", "--momentum", id="exclusive-maximum"),
        pytest.param("--learning_rate=nan", "--learning_rate", id="nan"),
        pytest.param("--freeze_backbone=True", "--freeze_backbone", id="bool-case"),
        pytest.param("--freeze_backbone=1", "--freeze_backbone", id="bool-number"),
        pytest.param("--optimizer=nadam", "--optimizer", id="not-a-choice"),
        pytest.param("--epochs", "--epochs", id="no-value"),
    ],
)
def test_invalid_hyperparameter_names_it(item: str, named: str) -> None:
    with pytest.raises(TrainerError) as caught:
        decode([item])
    assert caught.value.reason == "InvalidHyperparameter"
    assert named in caught.value.message


def test_unknown_hyperparameter_suggests_the_closest_name() -> None:
    with pytest.raises(TrainerError, match="did you mean --learning_rate"):
        decode(["--learning_rat=0.1"])


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(TrainerError) as caught:
        decode(["--batch_size=0", "--optimizer=nadam", "--batch_size=2", "--colour=red"])
    message = caught.value.message
    for part in ("--batch_size=0", "--optimizer=nadam", "--colour", "more than once"):
        assert part in message


def test_invalid_hyperparameter_exits_3_with_a_result(tmp_path: Path) -> None:
    """The real command line (no TensorFlow needed to refuse a value)."""
    result = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubearts_trainer",
            "train",
            "--model",
            "mobilenet_v1",
            "--train-manifest",
            "t.jsonl",
            "--eval-manifest",
            "e.jsonl",
            "--dataset-root",
            ".",
            "--output",
            str(tmp_path / "out"),
            "--result",
            str(result),
            "--optimzer=adam",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_CODES["InvalidHyperparameter"] == 3
    document = json.loads(result.read_text())
    assert document["status"] == "Failed"
    assert document["reason"] == "InvalidHyperparameter"
    assert "--optimzer" in document["message"]
    assert "--optimizer" in document["message"]
    last = done.stdout.strip().splitlines()[-1]
    assert json.loads(last)["event"] == "result"


def test_usage_error_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubearts_trainer",
            "train",
            "--model",
            "vgg16",
            "--result",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "InvalidArgument" in (tmp_path / "r").read_text()
