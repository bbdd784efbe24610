"""A Model's versions: what to register, what is registered, what stays (pure).

:func:`decide` takes the Model's spec and status and what the handler read — the sources
its versions name (TrainingJobs, ModelConversions, and the Datasets and Subscriptions
behind them), its registration Jobs, and the InferenceServices that serve it — and
returns one :class:`ModelDecision`: the ``status.versions`` list to write, the registration
Jobs to start, the Model's conditions. Per version in the spec:

- **registered** (it has a digest): stays exactly as registered. Its spec entry is compared
  with the digest of the entry it was registered from; an edit of source, format or
  runtime is refused (``VersionImmutable``, the registered files still served).
  ``minAccuracy`` is a gate, not content: it is checked again on every step;
- **registering**: its Job is followed; the worker's result (digest, size, signature,
  metrics) completes the entry, or its failure reason is the entry's;
- **new**: its source is resolved — waited for while it has not succeeded, refused when it
  cannot work (the message names ``spec.versions[i]...``) — and a registration starts.

A version in the status but no longer in the spec stays while an InferenceService serves
it (``InUse``, naming the services); otherwise its files are deleted by a Job
(:data:`ModelDecision.unused` lists the ones to start; ``Removing`` meanwhile) and the
entry leaves the status once they are gone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kubearts import conversion_plan, runs, runtimes
from kubearts.conditions import ConditionUpdate, SpecError, Wait
from kubearts.constants import (
    COND_READY,
    COND_VERSIONS_VALID,
    FALSE,
    REASON_VERSION_IMMUTABLE,
    REASON_VERSIONS_VALID,
    TRUE,
)
from kubearts.storage import StorageLocation, StorageUriError, parse_storage_uri
from kubearts.workloads import JobView, job_failure

REASON_REGISTERED: Final = "Registered"
REASON_REGISTERING: Final = "Registering"
REASON_BELOW_MIN_ACCURACY: Final = "BelowMinAccuracy"
REASON_IN_USE: Final = "InUse"
REASON_REMOVING: Final = "Removing"

#: Registration runs the converter image (``register``): its exit codes.
EXIT_REASONS: Final[Mapping[int, str]] = conversion_plan.EXIT_REASONS
#: Formats a TrainingJob's output holds.
TRAINING_FORMATS: Final = ("saved-model", "frozen-graph")
#: What each import template holds.
TEMPLATE_FORMATS: Final[Mapping[str, tuple[str, ...]]] = {
    "image-classification": ("saved-model", "frozen-graph", "onnx"),
    "ARM-Ascend": ("om",),
}


@dataclass(frozen=True)
class Register:
    """A registration to start: copy ``source`` into the registry as ``version``."""

    version: str
    source: StorageLocation
    model_format: str
    template: str
    spec_digest: str


@dataclass(frozen=True)
class Reads:
    """What the handler read for one step."""

    training_jobs: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    conversions: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    datasets: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    subscriptions: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    jobs: Mapping[str, JobView] = field(default_factory=dict)
    """Registration Jobs by version."""
    services: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """InferenceServices by the version of this Model they serve."""
    removals: Mapping[str, JobView] = field(default_factory=dict)
    """Jobs deleting removed versions' files, by version."""


@dataclass
class ModelDecision:
    """The step's outcome: status to write, registrations to start, files no longer used."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    register: list[Register] = field(default_factory=list)
    unused: list[dict[str, Any]] = field(default_factory=list)
    updates: list[ConditionUpdate] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


def version_digest(entry: Mapping[str, Any]) -> str:
    """Digest of what makes a version: its source, format and runtime."""
    content = {key: entry.get(key) for key in ("source", "format", "runtime")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def semver_key(version: str) -> tuple[Any, ...]:
    """Semver precedence: numbers first; a prerelease sorts before its release."""
    core, _, pre = version.partition("-")
    numbers = tuple(int(part) for part in core.split("."))
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".") if p)
    return (numbers, 0 if pre else 1, parts)


# --- resolving a new version's source ----------------------------------------------------------


def _pvc(uri: str, where: str) -> StorageLocation | SpecError:
    try:
        return parse_storage_uri(uri, schemes=("pvc",))
    except StorageUriError as exc:
        return SpecError(
            where,
            f"{uri!r} cannot be registered from here ({exc})",
            "copy the model to a PersistentVolumeClaim and import it from pvc://<claim>/<path>",
        )


def _lineage_of_training(name: str, reads: Reads) -> dict[str, Any]:
    job = reads.training_jobs.get(name) or {}
    status = job.get("status") or {}
    subscription = str(((job.get("spec") or {}).get("algorithm") or {}).get("subscription") or "")
    algorithm = ((reads.subscriptions.get(subscription) or {}).get("status") or {}).get("algorithm")
    datasets = []
    for item in status.get("inputs") or []:
        dataset = (reads.datasets.get(str(item.get("dataset"))) or {}).get("status") or {}
        published = {v.get("name"): v for v in dataset.get("versions") or []}
        version = published.get(item.get("version")) or {}
        datasets.append(
            {
                "name": str(item.get("dataset") or ""),
                "version": str(item.get("version") or ""),
                "digest": str(version.get("manifestDigest") or dataset.get("digest") or ""),
            }
        )
    lineage: dict[str, Any] = {
        "trainingJob": name,
        "subscription": subscription,
        "algorithmVersion": str(status.get("algorithmVersion") or ""),
        "datasets": datasets,
    }
    if algorithm:
        lineage["algorithm"] = str(algorithm)
    return lineage


def _resolve(
    index: int, entry: Mapping[str, Any], reads: Reads
) -> SpecError | Wait | tuple[StorageLocation, dict[str, Any]]:
    """The folder to register and the lineage; what to wait for; or a SpecError."""
    source = entry.get("source") or {}
    where = f"spec.versions[{index}].source"
    model_format = str(entry["format"])
    if source.get("trainingJob"):
        name = str(source["trainingJob"])
        if model_format not in TRAINING_FORMATS:
            return SpecError(
                f"spec.versions[{index}].format",
                f"a TrainingJob produces {' and '.join(TRAINING_FORMATS)}, not {model_format!r}",
                "register its saved-model, or the output of a ModelConversion",
            )
        waiting = runs.must_have_succeeded(
            "TrainingJob", name, reads.training_jobs.get(name), f"{where}.trainingJob"
        )
        if waiting is not None:
            return waiting
        uri = str(
            ((reads.training_jobs[name] or {}).get("status") or {}).get("outputs", {}).get("uri")
            or ""
        )
        location = _pvc(uri, f"{where}.trainingJob")
        if isinstance(location, SpecError):
            return location
        lineage = _lineage_of_training(name, reads)
        return location, {**lineage, "sourceUri": uri}
    if source.get("conversion"):
        name = str(source["conversion"])
        conversion = reads.conversions.get(name)
        waiting = runs.must_have_succeeded(
            "ModelConversion", name, conversion, f"{where}.conversion"
        )
        if waiting is not None:
            return waiting
        status = (conversion or {}).get("status") or {}
        produced = str((status.get("output") or {}).get("format") or "")
        if produced != model_format:
            return SpecError(
                f"spec.versions[{index}].format",
                f"ModelConversion {name!r} produced {produced!r}, not {model_format!r}",
                f"set format: {produced}",
            )
        uri = str(status.get("outputUri") or "")
        location = _pvc(uri, f"{where}.conversion")
        if isinstance(location, SpecError):
            return location
        upstream = dict(status.get("lineage") or {})
        lineage = (
            _lineage_of_training(upstream["trainingJob"], reads)
            if upstream.get("trainingJob")
            else {}
        )
        return location, {**lineage, "conversion": name, "sourceUri": uri}
    template = str(source.get("template") or "")
    if model_format not in TEMPLATE_FORMATS.get(template, ()):
        return SpecError(
            f"spec.versions[{index}].format",
            f"the {template!r} template imports {', '.join(TEMPLATE_FORMATS.get(template, ()))}, "
            f"not {model_format!r}",
            "pick the template that matches the files",
        )
    uri = str(source.get("uri") or "")
    location = _pvc(uri, f"{where}.uri")
    if isinstance(location, SpecError):
        return location
    return location, {"sourceUri": uri}


# --- one version -------------------------------------------------------------------------------


def _min_accuracy(entry: Mapping[str, Any], registered: dict[str, Any]) -> None:
    """Gate a registered version on ``minAccuracy`` (in place)."""
    minimum = entry.get("minAccuracy")
    accuracy = (registered.get("metrics") or {}).get("accuracy")
    if minimum is None:
        registered.update(ready=True, reason=REASON_REGISTERED, message="registered")
    elif not isinstance(accuracy, int | float):
        registered.update(
            ready=False,
            reason=REASON_BELOW_MIN_ACCURACY,
            message=f"minAccuracy is {minimum} but the model records no evaluation accuracy",
        )
    elif accuracy < float(minimum):
        registered.update(
            ready=False,
            reason=REASON_BELOW_MIN_ACCURACY,
            message=f"evaluation accuracy {accuracy:.4f} is below minAccuracy {minimum}",
        )
    else:
        registered.update(
            ready=True,
            reason=REASON_REGISTERED,
            message=f"registered; evaluation accuracy {accuracy:.4f} ≥ minAccuracy {minimum}",
        )


RESULT_FIELDS: Final = ("digest", "sizeBytes", "files", "signature", "metrics")


def _registered(
    entry: Mapping[str, Any], current: dict[str, Any], result: Mapping[str, Any], now: str
) -> None:
    for key in RESULT_FIELDS:
        if key in result:
            current[key] = result[key]
    current["registrationTime"] = now
    _min_accuracy(entry, current)


def _follow(entry: Mapping[str, Any], current: dict[str, Any], view: JobView, now: str) -> None:
    if view.state == "Running":
        reason, message = view.waiting or (REASON_REGISTERING, "copying into the registry")
        current.update(ready=False, reason=reason, message=message)
    elif view.succeeded and view.result is not None:
        _registered(entry, current, view.result, now)
    else:
        failure = view.result or job_failure(view.job)
        current.update(
            ready=False,
            reason=str(failure.get("reason") or "JobFailed"),
            message=str(failure.get("message") or f"Job {view.name} failed"),
        )


def _version(
    model: str,
    index: int,
    entry: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    reads: Reads,
    now: str,
    decision: ModelDecision,
    registry: StorageLocation,
) -> dict[str, Any]:
    version = str(entry["version"])
    digest = version_digest(entry)
    model_format = str(entry["format"])
    runtime = str(entry.get("runtime") or runtimes.default_runtime(model_format))
    if old is not None and old.get("digest"):
        kept = dict(old)
        if old.get("specDigest") != digest:
            kept.update(
                reason=REASON_VERSION_IMMUTABLE,
                message=f"spec.versions[{index}] changed after version {version} was registered; "
                "the registered files stay served: restore the entry, or add a new version",
            )
            return kept
        _min_accuracy(entry, kept)
        return kept
    current: dict[str, Any] = {
        **(old or {}),
        "version": version,
        "format": model_format,
        "runtime": runtime,
        "runtimes": runtimes.servable(model_format),
        "specDigest": digest,
    }
    wrong = runtimes.runtime_mismatch(model_format, runtime)
    if wrong is not None:
        return {
            **current,
            "ready": False,
            "reason": wrong.reason,
            "message": f"spec.versions[{index}].runtime: {wrong.message}",
        }
    view = reads.jobs.get(version)
    if view is not None:
        # The Job's start wrote these; a step that read the object before that write landed
        # (a timer next to a woken handler) must not lose them.
        current.setdefault("location", registry.child_uri(version))
        if "lineage" not in current:
            resolved = _resolve(index, entry, reads)
            if isinstance(resolved, tuple):
                current["lineage"] = resolved[1]
        _follow(entry, current, view, now)
        return current
    resolved = _resolve(index, entry, reads)
    if isinstance(resolved, SpecError):
        return {**current, "ready": False, "reason": resolved.reason, "message": resolved.message}
    if isinstance(resolved, Wait):
        return {
            **current,
            "ready": False,
            "reason": resolved.reason,
            "message": resolved.message,
        }
    source, lineage = resolved
    template = str((entry.get("source") or {}).get("template") or "image-classification")
    decision.register.append(Register(version, source, model_format, template, digest))
    return {
        **current,
        "ready": False,
        "reason": REASON_REGISTERING,
        "message": f"copying {source.uri} into the registry",
        "location": registry.child_uri(version),
        "lineage": lineage,
    }


def decide(
    model: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    reads: Reads,
    now: str,
    registry: StorageLocation,
) -> ModelDecision:
    """One step for a Model (see the module doc); ``registry`` is ``models/<model>``."""
    decision = ModelDecision()
    old = {str(v.get("version")): v for v in status.get("versions") or []}
    wanted = list(spec.get("versions") or [])
    for index, entry in enumerate(wanted):
        current = _version(
            model, index, entry, old.get(str(entry["version"])), reads, now, decision, registry
        )
        users = sorted(reads.services.get(str(entry["version"]), ()))
        if users:
            current["usedBy"] = users
        else:
            current.pop("usedBy", None)
        decision.versions.append(current)
    named = {str(entry["version"]) for entry in wanted}
    for version, entry in old.items():
        if version in named:
            continue
        users = sorted(reads.services.get(version, ()))
        if users:
            decision.versions.append(
                {
                    **entry,
                    "usedBy": users,
                    "reason": REASON_IN_USE,
                    "message": f"removed from spec.versions but served by "
                    f"InferenceService {', '.join(users)}; its files stay until no service "
                    "uses it",
                }
            )
        elif entry.get("location"):
            removing = _removal(entry, reads.removals.get(version), decision)
            if removing is not None:
                decision.versions.append(removing)
    _conditions(decision, named)
    return decision


def _removal(
    entry: Mapping[str, Any], view: JobView | None, decision: ModelDecision
) -> dict[str, Any] | None:
    """A removed, unused version: its files are deleted, then the entry goes (None)."""
    if view is None:
        decision.unused.append(dict(entry))
    elif view.succeeded:
        return None
    elif view.state == "Failed":
        failure = view.result or job_failure(view.job)
        return {
            **entry,
            "ready": False,
            "reason": str(failure.get("reason") or "JobFailed"),
            "message": f"deleting its files failed: {failure.get('message', '')}",
        }
    message = "removed from spec.versions and unused: deleting its files"
    return {**entry, "ready": False, "reason": REASON_REMOVING, "message": message}


def _conditions(decision: ModelDecision, named: set[str]) -> None:
    ready = [v for v in decision.versions if v.get("ready") and v["version"] in named]
    decision.fields["readyVersions"] = len(ready)
    if ready:
        decision.fields["latestVersion"] = max((str(v["version"]) for v in ready), key=semver_key)
    pending = [v for v in decision.versions if not v.get("ready") and v["version"] in named]
    if pending:
        first = pending[0]
        decision.updates.append(
            ConditionUpdate(
                COND_READY,
                FALSE,
                str(first.get("reason") or REASON_REGISTERING),
                f"version {first['version']}: {first.get('message', '')}"
                + (f" (and {len(pending) - 1} more not ready)" if len(pending) > 1 else ""),
            )
        )
    else:
        message = f"{len(ready)} version(s) ready: " + ", ".join(
            sorted((str(v["version"]) for v in ready), key=semver_key)
        )
        decision.updates.append(ConditionUpdate(COND_READY, TRUE, REASON_REGISTERED, message))
    refused = [v for v in decision.versions if v.get("reason") == REASON_VERSION_IMMUTABLE]
    if refused:
        decision.updates.append(
            ConditionUpdate(
                COND_VERSIONS_VALID,
                FALSE,
                REASON_VERSION_IMMUTABLE,
                "; ".join(str(v["message"]) for v in refused),
            )
        )
    else:
        decision.updates.append(
            ConditionUpdate(
                COND_VERSIONS_VALID, TRUE, REASON_VERSIONS_VALID, "every version is as registered"
            )
        )
