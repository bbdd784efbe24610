"""What an InferenceService serves, and whether it is ready (pure).

``plan_serving`` takes the spec and the Model it names, as read from the API, and answers:

* :class:`Wait` with reason ``ModelNotReady``: the Model or its version does not exist yet,
  or is not Ready (registering, below its ``minAccuracy``…) — naming the version waited for;
* a :class:`~kubearts.conditions.SpecError`: the version cannot be served where the spec
  asks (a format, runtime and pool that do not go together: :mod:`kubearts.runtimes`);
* :class:`ServePlan`: the registry folder, format, runtime, digest and labels to serve.

``online_status`` reads the Deployment and its pods into the service's status: Ready when
every wanted replica runs the current version with the model loaded; otherwise the reason
lifted from the pods and the predictor (``ModelLoadFailed`` with its message,
``Unschedulable`` naming the resource, ``CrashLoopBackOff`` with the log's tail).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kubearts import runs, runtimes, workloads
from kubearts.conditions import ConditionUpdate, SpecError, Wait
from kubearts.constants import (
    COND_FAILED,
    COND_READY,
    COND_RUNNING,
    COND_SUCCEEDED,
    FALSE,
    REASON_COMPLETE,
    REASON_JOB_RUNNING,
    REASON_MODEL_NOT_READY,
    TRUE,
)
from kubearts.storage import StorageLocation, StorageUriError, parse_storage_uri

REASON_MODEL_LOAD_FAILED: Final = "ModelLoadFailed"
REASON_SERVING: Final = "Serving"
REASON_ROLLING_OUT: Final = "RollingOut"
REASON_SCALED_TO_ZERO: Final = "ScaledToZero"
#: HTTP and gRPC ports of the predictor.
HTTP_PORT: Final = 8080
GRPC_PORT: Final = 8081

#: The predictor's exit codes (images/predictor README).
EXIT_REASONS: Final[Mapping[int, str]] = {
    1: "InternalError",
    2: "InvalidArgument",
    10: REASON_MODEL_LOAD_FAILED,
    11: "InputUnavailable",
    12: "AcceleratorUnavailable",
    20: "PredictionFailed",
}


@dataclass(frozen=True)
class ServePlan:
    """A registered model version and where and how to serve it."""

    model: str
    version: str
    location: StorageLocation
    model_format: str
    runtime: str
    pool: str
    digest: str
    provider: str
    labels: Sequence[str] = field(default_factory=list)


def plan_serving(
    spec: Mapping[str, Any], model: Mapping[str, Any] | None
) -> SpecError | Wait | ServePlan:
    """Resolve the model version an InferenceService serves (see the module doc)."""
    wanted = spec.get("model") or {}
    name, version = str(wanted.get("name")), str(wanted.get("version"))
    pool = str((spec.get("resources") or {}).get("pool") or "cpu")
    if model is None:
        return Wait(f"Model {name!r} (spec.model.name) does not exist yet", REASON_MODEL_NOT_READY)
    status = model.get("status") or {}
    found = next((v for v in status.get("versions") or [] if v.get("version") == version), None)
    if found is None:
        return Wait(
            f"version {version} of Model {name!r} is not registered yet", REASON_MODEL_NOT_READY
        )
    if not found.get("ready"):
        return Wait(
            f"version {version} of Model {name!r} is not Ready "
            f"({found.get('reason', '')}: {found.get('message', '')})",
            REASON_MODEL_NOT_READY,
        )
    model_format = str(found.get("format") or "")
    runtime = str(found.get("runtime") or runtimes.default_runtime(model_format))
    mismatch = runtimes.serving_mismatch(model_format, runtime, pool)
    if mismatch is not None:
        return SpecError(
            "spec.resources.pool",
            f"version {version} of Model {name!r}: {mismatch.message}",
            "serve it on a pool its runtime runs on, or register a version in another format",
            mismatch.reason,
        )
    try:
        location = parse_storage_uri(str(found.get("location") or ""), schemes=("pvc",))
    except StorageUriError as exc:
        return SpecError("spec.model.version", f"its registry location is unusable: {exc}", "")
    signature = found.get("signature") or {}
    return ServePlan(
        model=name,
        version=version,
        location=location,
        model_format=model_format,
        runtime=runtime,
        pool=pool,
        digest=str(found.get("digest") or ""),
        provider=runtimes.PROVIDERS[(runtime, pool)],
        labels=[str(label) for label in signature.get("labels") or []],
    )


# --- the online service's state ----------------------------------------------------------------


def call_guide(url: str, model_name: str) -> str:
    """Ready-to-paste calls: image upload, V1 and V2 (REST)."""
    return "\n".join(
        [
            f"curl -F images=@image.jpg {url}/",
            f"curl -H 'Content-Type: application/json' -d @v1.json "
            f"{url}/v1/models/{model_name}:predict",
            f"curl -H 'Content-Type: application/json' -d @v2.json "
            f"{url}/v2/models/{model_name}/infer",
        ]
    )


def _pod_problem(
    pods: Sequence[Mapping[str, Any]], read_log: Callable[[str], str]
) -> tuple[str, str] | None:
    """The first reason a pod of the current version does not serve, with the message."""
    for pod in pods:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for container in statuses:
            last = (container.get("lastState") or {}).get("terminated") or {}
            current = (container.get("state") or {}).get("terminated") or {}
            stopped = current or last
            result = workloads.parse_result(stopped.get("message")) if stopped else None
            if result and result.get("status") == "Failed":
                return str(result.get("reason")), str(result.get("message") or "")
        waiting = workloads.pod_waiting(pod)
        if waiting is not None:
            reason, message = waiting
            if reason == "CrashLoopBackOff":
                tail = workloads.log_tail(read_log(workloads.object_name(pod)))
                message = f"{message}; the log ends with:\n{tail}" if tail else message
            return reason, message
    return None


def loaded_event(
    pods: Sequence[Mapping[str, Any]], read_log: Callable[[str], str]
) -> Mapping[str, Any] | None:
    """The predictor's ``loaded`` line from a ready pod: the provider actually in use."""
    for pod in pods:
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            event = workloads.last_event(read_log(workloads.object_name(pod)), "loaded")
            if event is not None:
                return event
    return None


def online_status(
    plan: ServePlan,
    replicas: int,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    read_log: Callable[[str], str],
) -> tuple[list[ConditionUpdate], dict[str, Any]]:
    """Conditions and fields of an online service from its Deployment and current pods
    (``pods``: those of the current pod template)."""
    state = (deployment or {}).get("status") or {}
    generation = (deployment or {}).get("metadata", {}).get("generation")
    current = state.get("observedGeneration") == generation
    ready = int(state.get("readyReplicas") or 0)
    updated = int(state.get("updatedReplicas") or 0)
    fields: dict[str, Any] = {"replicas": int(state.get("replicas") or 0), "readyReplicas": ready}
    served = current and updated >= replicas and ready >= replicas
    if replicas == 0:
        return [
            ConditionUpdate(COND_READY, FALSE, REASON_SCALED_TO_ZERO, "spec.replicas is 0")
        ], fields
    if served:
        event = loaded_event(pods, read_log) or {}
        provider = str(event.get("provider") or plan.provider)
        fields["provider"] = provider
        fields["deviceFallback"] = bool(event.get("fallback", False))
        message = (
            f"{ready}/{replicas} replicas serve version {plan.version} of {plan.model} "
            f"with {plan.runtime} on {provider}"
        )
        if fields["deviceFallback"]:
            message += " (CPU fallback: the pool's accelerator was not visible)"
        return [ConditionUpdate(COND_READY, TRUE, REASON_SERVING, message)], fields
    problem = _pod_problem(pods, read_log)
    if problem is not None:
        reason, message = problem
        return [ConditionUpdate(COND_READY, FALSE, reason, message)], fields
    message = f"{ready}/{replicas} replicas ready with version {plan.version}; loading the model"
    return [ConditionUpdate(COND_READY, FALSE, REASON_ROLLING_OUT, message)], fields


# --- batch mode --------------------------------------------------------------------------------


def follow_batch(
    status: Mapping[str, Any], view: workloads.JobView | None, now: str, output_uri: str
) -> runs.RunStatus:
    """The status a look at the batch Job gives: counts and throughput when it ends."""

    def running(
        run: runs.RunStatus, status: Mapping[str, Any], progress: Mapping[str, Any], now: str
    ) -> None:
        done, total = int(progress.get("done") or 0), int(progress.get("total") or 0)
        run.fields["batch"] = {"total": total, "succeeded": done, "output": output_uri}
        message = f"{done}/{total} images predicted"
        run.set(COND_RUNNING, TRUE, REASON_JOB_RUNNING, message)
        run.set(COND_READY, FALSE, REASON_JOB_RUNNING, message)

    def succeeded(
        run: runs.RunStatus, result: Mapping[str, Any], view: workloads.JobView, now: str
    ) -> None:
        images, failures = int(result.get("images") or 0), int(result.get("failures") or 0)
        run.fields["completionTime"] = now
        run.fields["batch"] = {
            "total": images,
            "succeeded": images - failures,
            "failed": failures,
            "imagesPerSecond": float(result.get("imagesPerSecond") or 0.0),
            "output": output_uri,
        }
        message = f"predicted {images - failures} of {images} images into {output_uri}"
        if failures:
            message += f"; {failures} could not be read (listed in the output)"
        run.set(COND_RUNNING, FALSE, REASON_COMPLETE, "the batch run completed")
        run.set(COND_SUCCEEDED, TRUE, REASON_COMPLETE, message)
        run.set(COND_FAILED, FALSE, REASON_COMPLETE, "the batch run completed")
        run.set(COND_READY, TRUE, REASON_COMPLETE, message)

    return runs.follow(
        status,
        view,
        now,
        kind="InferenceService",
        what="batch prediction",
        running=running,
        succeeded=succeeded,
    )
