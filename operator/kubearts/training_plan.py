"""What a TrainingJob needs before anything runs: its inputs, checked (pure).

``plan_training`` takes the TrainingJob's spec and the objects it names — its Subscription
and the Datasets of its inputs, as read from the API — and answers one of three things:

* a :class:`~kubearts.conditions.SpecError` (returned, not raised): the spec asks for
  something that cannot work (a hyperparameter out of range, a pool the algorithm cannot
  train on, an unsplit data set version). Editing the spec is the only fix; the message
  names the field and the fix.
* :class:`Wait`: a dependency is not there or not ready yet (GitOps may apply the
  TrainingJob before its Dataset); retried later.
* :class:`TrainingPlan`: everything resolved — image, pinned algorithm version, effective
  hyperparameters and, per input, where its train and eval lists are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kubearts.conditions import SpecError, get_condition
from kubearts.constants import COND_READY
from kubearts.hyperparameters import (
    apply_defaults,
    format_problems,
    parse_schema,
    validate_hyperparameters,
)

REASON_DATASET_VERSION_NOT_SPLIT: Final = "DatasetVersionNotSplit"
REASON_UNSUPPORTED_DEVICE: Final = "UnsupportedDevice"
REASON_INVALID_HYPERPARAMETERS: Final = "InvalidHyperparameters"


@dataclass(frozen=True)
class Wait:
    """A dependency is missing or not ready yet."""

    message: str


@dataclass(frozen=True)
class TrainingPlan:
    """Everything a training run needs, resolved from the pinned Subscription and Datasets."""

    image: str
    algorithm_version: str
    entrypoint: Mapping[str, Any]
    hyperparameters: Mapping[str, Any]
    inputs: Sequence[Mapping[str, Any]] = field(default_factory=list)


def _ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    ready = get_condition((obj.get("status") or {}).get("conditions"), COND_READY)
    if ready is None:
        return False, "not reconciled yet"
    if ready["status"] == "True":
        return True, ""
    return False, f"{ready.get('reason', '')}: {ready.get('message', '')}".strip(": ")


def _check_algorithm(
    spec: Mapping[str, Any], subscription: Mapping[str, Any]
) -> SpecError | TrainingPlan:
    status = subscription.get("status") or {}
    name = subscription["metadata"]["name"]
    pinned = str(status.get("resolvedVersion", ""))
    wanted = (spec.get("algorithm") or {}).get("version")
    if wanted and wanted != pinned:
        return SpecError(
            "spec.algorithm.version",
            f"Subscription {name!r} is pinned to version {pinned!r}, not {wanted!r}",
            f"set spec.version: {wanted!r} on the Subscription, or drop spec.algorithm.version",
        )
    pool = (spec.get("resources") or {}).get("pool", "cpu")
    devices = list(status.get("trainingDevices") or [])
    if devices and pool not in devices:
        return SpecError(
            "spec.resources.pool",
            f"algorithm {status.get('algorithm')!r} {pinned} cannot train on {pool!r}",
            f"use one of {', '.join(devices)}",
            REASON_UNSUPPORTED_DEVICE,
        )
    schema, _ = parse_schema(status.get("hyperparameters") or [])
    values = spec.get("hyperparameters") or {}
    problems = validate_hyperparameters(values, schema)
    if problems:
        return SpecError(
            "spec.hyperparameters",
            format_problems(problems),
            f"see the schema in the status of Subscription {name!r}",
            REASON_INVALID_HYPERPARAMETERS,
        )
    return TrainingPlan(
        image=str(status.get("image", "")),
        algorithm_version=pinned,
        entrypoint=dict(status.get("entrypoint") or {}),
        hyperparameters=apply_defaults(values, schema),
    )


def _check_input(
    index: int,
    wanted: Mapping[str, Any],
    dataset: Mapping[str, Any] | None,
    contract: Mapping[str, Any],
) -> SpecError | Wait | dict[str, Any]:
    name, version = wanted["dataset"], wanted["version"]
    where = f"spec.inputs[{index}]"
    if dataset is None:
        return Wait(f"Dataset {name!r} ({where}.dataset) does not exist yet")
    ready, why = _ready(dataset)
    if not ready:
        return Wait(f"Dataset {name!r} is not Ready ({why})")
    formats = list(contract.get("formats") or [])
    data_format = (dataset.get("spec") or {}).get("format", "ImageFolder")
    if formats and data_format not in formats:
        return SpecError(
            f"{where}.dataset",
            f"Dataset {name!r} has format {data_format!r}; "
            f"the algorithm reads {', '.join(formats)}",
            "use a data set in one of those formats",
        )
    status = dataset.get("status") or {}
    published = {v.get("name"): v for v in status.get("versions") or []}
    found = published.get(version)
    if found is None:
        declared = [v.get("name") for v in (dataset.get("spec") or {}).get("versions") or []]
        if version in declared:
            return Wait(f"version {version!r} of Dataset {name!r} is not published yet")
        return SpecError(
            f"{where}.version",
            f"Dataset {name!r} has no version {version!r}",
            f"use one of {', '.join(sorted(map(str, published))) or '(none published)'}, "
            "or add it to the Dataset's spec.versions",
        )
    unsplit = found.get("split") is False or not found.get("evalCount")
    if contract.get("requiresSplitVersion", True) and unsplit:
        return SpecError(
            f"{where}.version",
            f"version {version!r} of Dataset {name!r} is not split into train and eval "
            f"(trainRatio {found.get('trainRatio')}, {found.get('evalCount', 0)} eval samples); "
            "training needs an evaluation set",
            f"publish a split version (e.g. trainRatio: 0.8) in the Dataset's spec.versions "
            f"and point {where}.version at it",
            REASON_DATASET_VERSION_NOT_SPLIT,
        )
    manifests = found.get("manifests") or {}
    resolved = {
        "name": wanted.get("name", "data"),
        "dataset": name,
        "version": version,
        "location": status.get("location", ""),
        "trainManifest": manifests.get("train", ""),
        "classes": list(status.get("classes") or []),
    }
    if manifests.get("eval"):
        resolved["evalManifest"] = manifests["eval"]
    return resolved


def plan_training(
    spec: Mapping[str, Any],
    subscription: Mapping[str, Any] | None,
    datasets: Mapping[str, Mapping[str, Any] | None],
) -> SpecError | Wait | TrainingPlan:
    """Check a TrainingJob's spec against its Subscription and Datasets (see module doc)."""
    sub_name = (spec.get("algorithm") or {}).get("subscription", "")
    if subscription is None:
        return Wait(f"Subscription {sub_name!r} (spec.algorithm.subscription) does not exist yet")
    ready, why = _ready(subscription)
    if not ready:
        return Wait(f"Subscription {sub_name!r} is not Ready ({why})")
    plan = _check_algorithm(spec, subscription)
    if not isinstance(plan, TrainingPlan):
        return plan
    contract = (subscription.get("status") or {}).get("contract") or {}
    inputs = []
    for index, wanted in enumerate(spec.get("inputs") or []):
        checked = _check_input(index, wanted, datasets.get(wanted["dataset"]), contract)
        if not isinstance(checked, dict):
            return checked
        inputs.append(checked)
    return TrainingPlan(
        image=plan.image,
        algorithm_version=plan.algorithm_version,
        entrypoint=plan.entrypoint,
        hyperparameters=plan.hyperparameters,
        inputs=inputs,
    )
