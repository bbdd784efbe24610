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

from kubearts import runs
from kubearts.builders.jobs import JobLimits
from kubearts.builders.training_jobs import (
    OUTPUT_PATH,
    SCRATCH_SIZE,
    TrainingInput,
    TrainingRun,
    output_location,
    spec_digest,
)
from kubearts.conditions import SpecError, Wait, get_condition
from kubearts.constants import (
    COND_FAILED,
    COND_READY,
    COND_RUNNING,
    COND_SUCCEEDED,
    FALSE,
    REASON_COMPLETE,
    REASON_JOB_RUNNING,
    TRUE,
)
from kubearts.hyperparameters import (
    apply_defaults,
    format_problems,
    parse_schema,
    validate_hyperparameters,
)
from kubearts.runs import RunStatus
from kubearts.storage import StorageUriError, parse_storage_uri
from kubearts.workloads import JobView

REASON_DATASET_VERSION_NOT_SPLIT: Final = "DatasetVersionNotSplit"
REASON_UNSUPPORTED_DEVICE: Final = "UnsupportedDevice"
REASON_INVALID_HYPERPARAMETERS: Final = "InvalidHyperparameters"


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


# --- following the run -------------------------------------------------------------------------

#: The trainer's exit codes (images/trainer README), for a pod that left no result.
EXIT_REASONS: Final[Mapping[int, str]] = {
    1: "InternalError",
    2: "InvalidArgument",
    3: "InvalidHyperparameter",
    10: "DataUnavailable",
    11: "WeightsUnavailable",
    12: "AcceleratorUnavailable",
    20: "TrainingFailed",
    21: "ExportFailed",
}


def needs_job(status: Mapping[str, Any]) -> bool:
    """Whether the TrainingJob still has to start its run: until a Job was created for it.
    After that, never again — a deleted or expired Job is no reason to train twice, and a
    spec refused before the start is checked again when it is edited."""
    return not status.get("jobName")


def run_created(job_name: str, started: str) -> RunStatus:
    """The status right after the Job was created."""
    return runs.run_created(job_name, started, "training")


def follow_run(status: Mapping[str, Any], view: JobView | None, now: str) -> RunStatus:
    """The status a look at the run's Job gives (``view`` None: the Job is gone)."""
    output_uri = str((status.get("outputs") or {}).get("uri") or "")

    def succeeded(run: RunStatus, result: Mapping[str, Any], view: JobView, now: str) -> None:
        _succeeded(run, result, view, now, output_uri)

    return runs.follow(
        status,
        view,
        now,
        kind="TrainingJob",
        what="training",
        running=_running,
        succeeded=succeeded,
    )


def _running(
    run: RunStatus, status: Mapping[str, Any], progress: Mapping[str, Any], now: str
) -> None:
    fields = progress_fields(progress)
    current = {k: v for k, v in (status.get("progress") or {}).items() if k != "lastUpdateTime"}
    if fields != current:
        run.fields["progress"] = {**fields, "lastUpdateTime": now}
    metrics = _numbers(progress, ("loss", "accuracy", "imagesPerSecond"))
    if metrics:
        run.fields["metrics"] = metrics
    if isinstance(progress.get("device"), str):
        run.fields["device"] = progress["device"]
    message = f"epoch {fields.get('epoch', 0)}/{fields.get('totalEpochs', '?')}"
    if "percent" in fields:
        message += f", {fields['percent']}%"
    run.set(COND_RUNNING, TRUE, REASON_JOB_RUNNING, message)
    run.set(COND_READY, FALSE, REASON_JOB_RUNNING, f"training: {message}")


def progress_fields(progress: Mapping[str, Any]) -> dict[str, Any]:
    """``status.progress`` from a trainer progress event (only the integers it holds)."""
    names = {
        "epoch": "epoch",
        "epochs": "totalEpochs",
        "step": "step",
        "steps": "totalSteps",
        "percent": "percent",
        "etaSeconds": "etaSeconds",
    }
    fields: dict[str, Any] = {}
    for source, target in names.items():
        value = progress.get(source)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            fields[target] = int(value)
    return fields


def _numbers(source: Mapping[str, Any], keys: Sequence[str]) -> dict[str, float]:
    return _numbers_renamed(source, {key: key for key in keys})


def output_uris(outputs: Mapping[str, Any], output_uri: str) -> dict[str, str]:
    """The trainer's output paths (inside the pod, under ``/mnt/output``) as storage URIs
    under the run's output location, which is how every other object refers to them."""
    uris = {"uri": output_uri} if output_uri else {}
    for key, value in outputs.items():
        path = str(value)
        if path.startswith(OUTPUT_PATH + "/"):
            path = path[len(OUTPUT_PATH) + 1 :]
        uris[str(key)] = f"{output_uri.rstrip('/')}/{path}" if output_uri else path
    return uris


def evaluation_fields(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """``status.evaluation`` from the trainer's evaluation (images/trainer README)."""
    names = {"accuracy": "accuracy", "loss": "loss", "top5": "top5Accuracy"}
    fields: dict[str, Any] = _numbers_renamed(evaluation, names)
    if isinstance(evaluation.get("samples"), int):
        fields["sampleCount"] = evaluation["samples"]
    per_class = evaluation.get("perClass")
    if isinstance(per_class, Mapping):
        fields["perClass"] = {
            str(label): {
                key: value
                for key, value in figures.items()
                if key in ("precision", "recall", "f1", "support") and value is not None
            }
            for label, figures in per_class.items()
            if isinstance(figures, Mapping)
        }
    return fields


def history(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``status.history`` from the trainer's per-epoch lists (``metrics.epoch`` names the
    epochs kept when the result was compacted)."""
    epochs = metrics.get("epoch")
    if not isinstance(epochs, list):
        return []
    rows: list[dict[str, Any]] = []
    for index, epoch in enumerate(epochs):
        row: dict[str, Any] = {"epoch": int(epoch)}
        for key in ("loss", "accuracy", "evalLoss", "evalAccuracy", "imagesPerSecond", "seconds"):
            values = metrics.get(key)
            if isinstance(values, list) and index < len(values):
                value = values[index]
                if isinstance(value, int | float) and not isinstance(value, bool):
                    row[key] = float(value)
        rows.append(row)
    return rows


def _numbers_renamed(source: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, float]:
    return {
        target: float(source[key])
        for key, target in names.items()
        if isinstance(source.get(key), int | float) and not isinstance(source.get(key), bool)
    }


def _succeeded(
    run: RunStatus, result: Mapping[str, Any], view: JobView, now: str, output_uri: str
) -> None:
    evaluation = evaluation_fields(result.get("evaluation") or {})
    accuracy = evaluation.get("accuracy")
    outputs = output_uris(result.get("outputs") or {}, output_uri)
    if "confusionMatrix" in outputs:
        evaluation["confusionMatrix"] = outputs.pop("confusionMatrix")
    if "metrics" in outputs:
        outputs["evaluation"] = outputs.pop("metrics")
    epochs = history(result.get("metrics") or {})
    run.fields.update(
        {
            "completionTime": str((view.job.get("status") or {}).get("completionTime") or now),
            "evaluation": evaluation,
            "outputs": outputs,
            "device": str(result.get("device") or ""),
            "deviceFallback": bool(result.get("fallback", False)),
            "history": epochs,
            "progress": {"percent": 100, "lastUpdateTime": now},
        }
    )
    if epochs:
        last = epochs[-1]
        run.fields["metrics"] = {k: v for k, v in last.items() if k != "epoch"}
    score = f"eval accuracy {accuracy:.4f}" if isinstance(accuracy, float) else "evaluated"
    message = f"trained on {result.get('device') or 'an unknown device'}; {score}"
    if result.get("fallback"):
        message += " (CPU fallback: the pool's accelerator was not visible)"
    run.set(COND_RUNNING, FALSE, REASON_COMPLETE, "the training run completed")
    run.set(COND_SUCCEEDED, TRUE, REASON_COMPLETE, message)
    run.set(COND_FAILED, FALSE, REASON_COMPLETE, "the training run completed")
    run.set(COND_READY, TRUE, REASON_COMPLETE, message)


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """What the operator's configuration adds to a run."""

    workspace_claim: str
    allow_cpu_fallback: bool
    default_deadline_seconds: int


def resolve_run(
    name: str, namespace: str, spec: Mapping[str, Any], plan: TrainingPlan, settings: RunSettings
) -> TrainingRun:
    """The checked plan made concrete: where the data and the output are, the run's limits.

    Raises :class:`SpecError` for what only shows now (storage the trainer cannot read).
    """
    if len(plan.inputs) != 1:
        raise SpecError(
            "spec.inputs",
            f"has {len(plan.inputs)} inputs; image classification trains on one data set",
            "list exactly one input",
        )
    (data,) = plan.inputs
    try:
        location = parse_storage_uri(str(data["location"]), schemes=("pvc",))
    except StorageUriError:
        raise SpecError(
            "spec.inputs[0].dataset",
            f"Dataset {data['dataset']!r} is stored at {data['location']!r}; training reads "
            "data sets stored on a PersistentVolumeClaim",
            "store the data set on a pvc:// location (the default workspace is one)",
        ) from None
    output_uri = (spec.get("output") or {}).get("uri")
    try:
        output = output_location(name, output_uri, settings.workspace_claim)
    except StorageUriError as exc:
        raise SpecError("spec.output.uri", str(exc), "use pvc://<claim>/<folder>") from None
    policy = spec.get("runPolicy") or {}
    entrypoint = plan.entrypoint
    return TrainingRun(
        name=name,
        namespace=namespace,
        image=plan.image,
        command=[str(c) for c in entrypoint.get("command") or []],
        args=[str(a) for a in entrypoint.get("args") or []],
        hyperparameters=plan.hyperparameters,
        inputs=[
            TrainingInput(
                name=str(data.get("name") or "data"),
                location=location,
                train_manifest=str(data["trainManifest"]),
                eval_manifest=str(data.get("evalManifest") or ""),
            )
        ],
        output=output,
        device=str((spec.get("resources") or {}).get("pool", "cpu")),
        allow_cpu_fallback=settings.allow_cpu_fallback,
        limits=JobLimits(
            active_deadline_seconds=int(
                policy.get("activeDeadlineSeconds") or settings.default_deadline_seconds
            ),
            scratch_size=SCRATCH_SIZE,
            backoff_limit=int(policy.get("backoffLimit") or 0),
            ttl_seconds_after_finished=policy.get("ttlSecondsAfterFinished"),
        ),
        spec_digest=spec_digest(spec),
    )
