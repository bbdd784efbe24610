"""What a ModelConversion converts and how its run is followed (pure).

``plan_conversion`` takes the spec and the objects it names, as read from the API — the
source TrainingJob or Model, and the Dataset named for verification — and answers:

* a :class:`~kubearts.conditions.SpecError` (returned): the spec cannot work (a failed
  TrainingJob, a Model version of the wrong format, a ``uri`` the converter cannot mount);
* :class:`Wait`: a dependency is not there or not finished yet (a folder applied at once
  creates the conversion before its training has run);
* :class:`ConversionPlan`: the folder to convert, the eval split to verify against (the
  source training job's own, or ``spec.verify.dataset``; none means random inputs, which
  the converter says in its result) and the lineage recorded in status.

:func:`follow_conversion` turns a look at the Job into status with :mod:`kubearts.runs`:
verification figures, output digest, tool versions and the command line on success; the
converter's reason (``InvalidOptions``, ``ConverterUnavailable``, ``VerificationFailed``…)
on failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from kubearts import runs
from kubearts.conditions import SpecError, Wait
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
from kubearts.runs import RunStatus
from kubearts.storage import StorageLocation, StorageUriError, parse_storage_uri
from kubearts.workloads import JobView

TEMPLATE_ASCEND: Final = "TF-FrozenGraph-To-Ascend-C32"
TEMPLATE_FROZEN_TO_ONNX: Final = "TF-FrozenGraph-To-ONNX"
TEMPLATE_SAVED_TO_ONNX: Final = "TF-SavedModel-To-ONNX"
#: The source format each template reads, and the format it writes.
TEMPLATES: Final[Mapping[str, tuple[str, str]]] = {
    TEMPLATE_ASCEND: ("frozen-graph", "om"),
    TEMPLATE_FROZEN_TO_ONNX: ("frozen-graph", "onnx"),
    TEMPLATE_SAVED_TO_ONNX: ("saved-model", "onnx"),
}

#: The converter's exit codes (images/converter README), for a pod that left no result.
EXIT_REASONS: Final[Mapping[int, str]] = {
    1: "InternalError",
    2: "InvalidArgument",
    3: "InvalidOptions",
    10: "SourceUnavailable",
    11: "ConverterUnavailable",
    20: "ConversionFailed",
    21: "VerificationFailed",
    22: "RegistryConflict",
}


@dataclass(frozen=True)
class VerifyData:
    """The evaluation split to verify on: the data set folder and the list inside it."""

    location: StorageLocation
    eval_manifest: str
    """URI of the version's ``eval.jsonl``, inside ``location``."""


@dataclass(frozen=True)
class ConversionPlan:
    """The folder to convert, the data to verify on, and where it all came from."""

    source: StorageLocation
    source_file: str = ""
    """A file inside ``source`` (a frozen ``.pb`` named by ``uri``); "" for the folder."""
    verify: VerifyData | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)


def _pvc(uri: str, where: str, what: str) -> StorageLocation | SpecError:
    try:
        return parse_storage_uri(uri, schemes=("pvc",))
    except StorageUriError as exc:
        return SpecError(
            where,
            f"{what} is at {uri!r}, which the converter cannot mount ({exc})",
            "convert a model stored on a PersistentVolumeClaim (pvc://<claim>/<path>)",
        )


def _from_training_job(spec_source: Mapping[str, Any], job: Mapping[str, Any] | None) -> Any:
    name = spec_source["trainingJob"]
    pending = runs.must_have_succeeded("TrainingJob", name, job, "spec.source.trainingJob")
    if pending is not None or job is None:
        return pending
    status = job.get("status") or {}
    location = _pvc(str((status.get("outputs") or {}).get("uri") or ""), "spec.source", "output")
    if isinstance(location, SpecError):
        return location
    verify = None
    inputs = list(status.get("inputs") or [])
    if inputs and inputs[0].get("evalManifest") and inputs[0].get("location"):
        data = _pvc(str(inputs[0]["location"]), "spec.source.trainingJob", "its data set")
        if isinstance(data, StorageLocation):
            verify = VerifyData(data, str(inputs[0]["evalManifest"]))
    lineage: dict[str, Any] = {
        "trainingJob": name,
        "subscription": str(((job.get("spec") or {}).get("algorithm") or {}).get("subscription")),
        "algorithmVersion": str(status.get("algorithmVersion") or ""),
    }
    if inputs:
        lineage["dataset"] = str(inputs[0].get("dataset") or "")
        lineage["datasetVersion"] = str(inputs[0].get("version") or "")
    return ConversionPlan(source=location, verify=verify, lineage=lineage)


def _from_model(spec_source: Mapping[str, Any], model: Mapping[str, Any] | None, wants: str) -> Any:
    name, version = spec_source["model"]["name"], spec_source["model"]["version"]
    if model is None:
        return Wait(f"Model {name!r} (spec.source.model.name) does not exist yet")
    versions = {v.get("version"): v for v in (model.get("status") or {}).get("versions") or []}
    found = versions.get(version)
    if found is None or not found.get("location"):
        return Wait(f"version {version} of Model {name!r} is not registered yet")
    if found.get("format") != wants:
        return SpecError(
            "spec.source.model.version",
            f"version {version} of Model {name!r} is {found.get('format')!r}; "
            f"the template reads {wants!r}",
            f"pick a {wants} version, or the template for {found.get('format')!r}",
        )
    location = _pvc(str(found["location"]), "spec.source.model", "that version")
    if isinstance(location, SpecError):
        return location
    lineage = {"model": name, "modelVersion": version, **dict(found.get("lineage") or {})}
    return ConversionPlan(source=location, lineage=lineage)


def _from_uri(spec_source: Mapping[str, Any], wants: str) -> Any:
    uri = str(spec_source["uri"])
    location = _pvc(uri, "spec.source.uri", "the model")
    if isinstance(location, SpecError):
        return location
    if wants == "frozen-graph" and location.path.endswith(".pb"):
        folder, _, file = location.path.rpartition("/")
        parent = StorageLocation("pvc", claim=location.claim, path=folder)
        return ConversionPlan(source=parent, source_file=file, lineage={"uri": uri})
    return ConversionPlan(source=location, lineage={"uri": uri})


def _verify_dataset(
    wanted: Mapping[str, Any], dataset: Mapping[str, Any] | None
) -> VerifyData | Wait | SpecError:
    name, version = wanted["name"], wanted["version"]
    if dataset is None:
        return Wait(f"Dataset {name!r} (spec.verify.dataset) does not exist yet")
    status = dataset.get("status") or {}
    published = {v.get("name"): v for v in status.get("versions") or []}
    found = published.get(version)
    if found is None:
        return Wait(f"version {version!r} of Dataset {name!r} is not published yet")
    eval_manifest = (found.get("manifests") or {}).get("eval")
    if not eval_manifest:
        return SpecError(
            "spec.verify.dataset.version",
            f"version {version!r} of Dataset {name!r} has no evaluation split",
            "name a split version (trainRatio below 1)",
        )
    location = _pvc(str(status.get("location") or ""), "spec.verify.dataset", "the data set")
    if isinstance(location, SpecError):
        return location
    return VerifyData(location, str(eval_manifest))


def plan_conversion(
    spec: Mapping[str, Any],
    training_job: Mapping[str, Any] | None,
    model: Mapping[str, Any] | None,
    dataset: Mapping[str, Any] | None,
) -> SpecError | Wait | ConversionPlan:
    """Resolve a ModelConversion's source and verification data (see the module doc)."""
    source = spec.get("source") or {}
    wants = TEMPLATES[str(spec.get("template"))][0]
    if source.get("trainingJob"):
        plan = _from_training_job(source, training_job)
    elif source.get("model"):
        plan = _from_model(source, model, wants)
    else:
        plan = _from_uri(source, wants)
    wanted = (spec.get("verify") or {}).get("dataset")
    if not isinstance(plan, ConversionPlan) or not wanted:
        return plan  # type: ignore[no-any-return]
    verify = _verify_dataset(wanted, dataset)
    if not isinstance(verify, VerifyData):
        return verify
    return ConversionPlan(plan.source, plan.source_file, verify, plan.lineage)


# --- following the run -------------------------------------------------------------------------


def _running(
    run: RunStatus, status: Mapping[str, Any], progress: Mapping[str, Any], now: str
) -> None:
    stage = str(progress.get("stage") or "converting")
    run.set(COND_RUNNING, TRUE, REASON_JOB_RUNNING, stage)
    run.set(COND_READY, FALSE, REASON_JOB_RUNNING, stage)


def _verification(result: Mapping[str, Any]) -> dict[str, Any]:
    figures = result.get("verification") or {}
    keep = (
        "passed",
        "samples",
        "tolerance",
        "maxAbsDiff",
        "meanAbsDiff",
        "top1Agreement",
        "inputs",
        "message",
    )
    return {key: figures[key] for key in keep if key in figures}


def _summary(verification: Mapping[str, Any]) -> str:
    if not verification:
        return "not verified"
    if "maxAbsDiff" not in verification:
        return str(verification.get("message") or "not verified")
    return (
        f"verified on {verification.get('samples')} {verification.get('inputs', '')} inputs: "
        f"max |Δlogit| {float(verification['maxAbsDiff']):.3g} "
        f"(tolerance {verification.get('tolerance')}), top-1 agreement "
        f"{float(verification.get('top1Agreement', 0)):.0%}"
    )


def follow_conversion(
    status: Mapping[str, Any], view: JobView | None, now: str, output_uri: str
) -> RunStatus:
    """The status a look at the conversion Job gives (``view`` None: the Job is gone)."""

    def succeeded(run: RunStatus, result: Mapping[str, Any], view: JobView, now: str) -> None:
        output = dict(result.get("output") or {})
        file = str(output.pop("file", "") or "")
        output["uri"] = f"{output_uri.rstrip('/')}/{file}" if file else output_uri
        verification = _verification(result)
        run.fields.update(
            {
                "completionTime": str((view.job.get("status") or {}).get("completionTime") or now),
                "output": output,
                "verification": verification,
                "tools": {str(k): str(v) for k, v in (result.get("tools") or {}).items()},
                "command": [str(part) for part in result.get("command") or []],
            }
        )
        if isinstance(result.get("opset"), int):
            run.fields["opset"] = result["opset"]
        message = f"converted to {output.get('format', '?')}; {_summary(verification)}"
        run.set(COND_RUNNING, FALSE, REASON_COMPLETE, "the conversion completed")
        run.set(COND_SUCCEEDED, TRUE, REASON_COMPLETE, message)
        run.set(COND_FAILED, FALSE, REASON_COMPLETE, "the conversion completed")
        run.set(COND_READY, TRUE, REASON_COMPLETE, message)

    def failed_result(run: RunStatus) -> None:
        # A failed result may still carry the figures or the would-be command line.
        result = view.result if view is not None else None
        if result and result.get("status") == "Failed":
            if result.get("verification"):
                run.fields["verification"] = _verification(result)
            if result.get("command"):
                run.fields["command"] = [str(part) for part in result["command"]]

    run = runs.follow(
        status,
        view,
        now,
        kind="ModelConversion",
        what="conversion",
        running=_running,
        succeeded=succeeded,
    )
    failed_result(run)
    return run
