"""kubearts.training.plan_training: a TrainingJob's inputs are checked before anything runs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubearts.training_plan import (
    REASON_DATASET_VERSION_NOT_SPLIT,
    REASON_INVALID_HYPERPARAMETERS,
    REASON_UNSUPPORTED_DEVICE,
    SpecError,
    TrainingPlan,
    Wait,
    plan_training,
)

READY = [{"type": "Ready", "status": "True", "reason": "Resolved", "message": ""}]

SUBSCRIPTION: dict[str, Any] = {
    "metadata": {"name": "resnet"},
    "status": {
        "conditions": READY,
        "algorithm": "resnet_v1_50",
        "resolvedVersion": "1.1.0",
        "image": "ghcr.io/kubearts/trainer:0.1.0",
        "entrypoint": {"command": ["python", "-m", "kubearts_trainer"], "args": []},
        "trainingDevices": ["cpu", "gpu", "ascend910"],
        "contract": {"requiresSplitVersion": True, "formats": ["ImageFolder", "Manifest"]},
        "hyperparameters": [
            {"name": "epochs", "type": "int", "default": 10, "minimum": 1, "maximum": 1000},
            {
                "name": "learning_rate",
                "type": "float",
                "default": 0.01,
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": 1,
            },
            {
                "name": "optimizer",
                "type": "enum",
                "default": "momentum",
                "choices": ["sgd", "momentum", "adam"],
            },
        ],
    },
}

DATASET: dict[str, Any] = {
    "metadata": {"name": "digits"},
    "spec": {
        "format": "ImageFolder",
        "versions": [{"name": "v1"}, {"name": "all"}, {"name": "v3"}],
    },
    "status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Published", "message": ""}],
        "location": "pvc://kubearts-workspace/datasets/digits",
        "classes": [str(i) for i in range(10)],
        "versions": [
            {
                "name": "v1",
                "trainRatio": 0.8,
                "split": True,
                "trainCount": 1438,
                "evalCount": 359,
                "manifests": {"train": "pvc://w/v1/train.jsonl", "eval": "pvc://w/v1/eval.jsonl"},
            },
            {
                "name": "all",
                "trainRatio": 1,
                "split": False,
                "trainCount": 1797,
                "evalCount": 0,
                "manifests": {"train": "pvc://w/all/train.jsonl"},
            },
        ],
    },
}

SPEC: dict[str, Any] = {
    "algorithm": {"subscription": "resnet"},
    "inputs": [{"name": "data", "dataset": "digits", "version": "v1"}],
    "hyperparameters": {"epochs": 3},
    "resources": {"pool": "cpu"},
}


def plan(
    spec: dict[str, Any] | None = None, subscription: Any = SUBSCRIPTION, dataset: Any = DATASET
) -> SpecError | Wait | TrainingPlan:
    return plan_training(spec or SPEC, subscription, {"digits": dataset})


def edited(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return out


def test_valid_inputs_resolve_to_a_plan_with_defaults_and_manifests() -> None:
    result = plan()
    assert isinstance(result, TrainingPlan)
    assert result.image == "ghcr.io/kubearts/trainer:0.1.0"
    assert result.algorithm_version == "1.1.0"
    assert result.hyperparameters == {"epochs": 3, "learning_rate": 0.01, "optimizer": "momentum"}
    (data,) = result.inputs
    assert data["trainManifest"] == "pvc://w/v1/train.jsonl"
    assert data["evalManifest"] == "pvc://w/v1/eval.jsonl"
    assert data["classes"] == [str(i) for i in range(10)]


@pytest.mark.parametrize(
    ("subscription", "dataset", "mentions"),
    [
        pytest.param(None, DATASET, "Subscription 'resnet'", id="subscription-missing"),
        pytest.param(
            edited(
                SUBSCRIPTION,
                "status.conditions",
                [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "VersionNotFound",
                        "message": "no 9.9",
                    }
                ],
            ),
            DATASET,
            "VersionNotFound",
            id="subscription-not-ready",
        ),
        pytest.param(SUBSCRIPTION, None, "Dataset 'digits'", id="dataset-missing"),
        pytest.param(
            SUBSCRIPTION,
            edited(DATASET, "status.conditions", []),
            "not reconciled",
            id="dataset-not-reconciled",
        ),
        pytest.param(
            SUBSCRIPTION,
            edited(DATASET, "status.versions", []),
            "not published yet",
            id="declared-version-not-published-yet",
        ),
    ],
)
def test_missing_or_unready_dependencies_are_waited_for(
    subscription: Any, dataset: Any, mentions: str
) -> None:
    result = plan(subscription=subscription, dataset=dataset)
    assert isinstance(result, Wait)
    assert mentions in result.message


@pytest.mark.parametrize(
    ("spec", "field", "reason", "mentions"),
    [
        pytest.param(
            edited(SPEC, "inputs.0.version", "all"),
            "spec.inputs[0].version",
            REASON_DATASET_VERSION_NOT_SPLIT,
            "not split",
            id="unsplit-version",
        ),
        pytest.param(
            edited(SPEC, "inputs.0.version", "v9"),
            "spec.inputs[0].version",
            "InvalidSpec",
            "has no version 'v9'",
            id="unknown-version",
        ),
        pytest.param(
            edited(SPEC, "hyperparameters", {"epochs": 0, "optimiser": "adam"}),
            "spec.hyperparameters",
            REASON_INVALID_HYPERPARAMETERS,
            "spec.hyperparameters.epochs",
            id="bad-hyperparameters",
        ),
        pytest.param(
            edited(SPEC, "resources.pool", "ascend310"),
            "spec.resources.pool",
            REASON_UNSUPPORTED_DEVICE,
            "use one of cpu, gpu, ascend910",
            id="pool",
        ),
        pytest.param(
            edited(SPEC, "algorithm.version", "1.0.0"),
            "spec.algorithm.version",
            "InvalidSpec",
            "pinned to version '1.1.0'",
            id="algorithm-version",
        ),
    ],
)
def test_specs_that_cannot_work_are_refused_naming_the_field(
    spec: dict[str, Any], field: str, reason: str, mentions: str
) -> None:
    result = plan(spec)
    assert isinstance(result, SpecError)
    assert (result.field, result.reason) == (field, reason)
    assert mentions in f"{result.problem} {result.fix}"


def test_unsplit_refusal_tells_how_to_fix_it() -> None:
    result = plan(edited(SPEC, "inputs.0.version", "all"))
    assert isinstance(result, SpecError)
    assert "trainRatio: 0.8" in result.fix


def test_hyperparameter_refusal_lists_every_problem() -> None:
    result = plan(edited(SPEC, "hyperparameters", {"epochs": 0, "optimiser": "adam"}))
    assert isinstance(result, SpecError)
    assert "epochs" in result.problem
    assert "optimiser" in result.problem


def test_format_outside_the_algorithm_contract_is_refused() -> None:
    dataset = edited(DATASET, "spec.format", "Manifest")
    subscription = edited(SUBSCRIPTION, "status.contract", {"formats": ["ImageFolder"]})
    result = plan(subscription=subscription, dataset=dataset)
    assert isinstance(result, SpecError)
    assert result.field == "spec.inputs[0].dataset"
