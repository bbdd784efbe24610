"""What every handler shares: writing status (conditions, observedGeneration, phase),
reporting an invalid spec or a dependency to wait for, and reaching the configuration.

This is the one status path of every kind: domain modules return status fields and
:class:`ConditionUpdate` s, never conditions, ``observedGeneration`` or ``phase`` of their
own. :func:`write_status` also posts a Kubernetes Event on the object when ``Ready``
changes or a ``Failed`` condition appears (:func:`kubearts.conditions.status_events`).

Handlers never assemble ``patch.status`` by hand. They describe the conditions to set with
:class:`ConditionUpdate` and call :func:`write_status`, which computes the whole new
condition list with the pure helpers of ``kubearts.conditions`` and puts into kopf's
patch only what changed; kopf applies the patch once after the handler, also when the
handler raises, so a False condition written before raising reaches the object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

import kopf

from kubearts import k8s, metrics, runs, workloads
from kubearts.builders.dataset_jobs import workspace_claim
from kubearts.builders.jobs import SPEC_DIGEST_ANNOTATION, spec_digest
from kubearts.builders.placement import Placement, build_placement
from kubearts.conditions import (
    Condition,
    ConditionUpdate,
    SpecError,
    phase,
    set_condition,
    status_events,
)
from kubearts.config import Config, load_config
from kubearts.constants import (
    ALL_KINDS,
    COND_READY,
    FALSE,
    GROUP,
    PHASE_FAILED,
    PHASE_SUCCEEDED,
    POOL_CPU,
    REASON_CPU_FALLBACK,
    REASON_INVALID_CONFIGURATION,
    REASON_MODEL_NOT_READY,
    REASON_WAITING_FOR_DEPENDENCY,
    VERSION,
    KindNames,
)

__all__ = [
    "ConditionUpdate",
    "following",
    "forget_deleted",
    "generation_of",
    "invalid_spec",
    "job_view",
    "operator_config",
    "placement_for",
    "register_step",
    "run_active",
    "run_view",
    "status_changes",
    "wait",
    "waiting",
    "worker_placement",
    "write_status",
]

#: Ready reasons of an object that waits for another one: its kind's timer looks again.
WAITING_REASONS: Final = frozenset({REASON_WAITING_FOR_DEPENDENCY, REASON_MODEL_NOT_READY})
#: Key of the configuration in kopf's memo (set by the startup handler in main.py).
MEMO_CONFIG_KEY: Final = "config"


def generation_of(body: Mapping[str, Any]) -> int:
    """``metadata.generation`` of an object (0 when absent, as for objects without spec)."""
    generation = (body.get("metadata") or {}).get("generation")
    return generation if isinstance(generation, int) else 0


def status_changes(
    status: Mapping[str, Any] | None,
    generation: int,
    updates: Iterable[ConditionUpdate],
    *,
    fields: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The status fields to write, given the current ``status`` (pure).

    Applies ``updates`` in order to the current conditions, sets ``observedGeneration`` and
    derives ``phase`` from the conditions (unless ``fields`` sets a more specific one);
    ``fields`` are other status fields to set. Only the keys whose value differs from
    ``status`` are returned, so an empty result means there is nothing to write. The
    ``conditions`` value, when present, is the whole list: a merge patch replaces lists.
    """
    current = dict(status or {})
    conditions: list[Condition] = list(current.get("conditions") or [])
    for update in updates:
        conditions = set_condition(
            conditions,
            update.type,
            update.status,
            update.reason,
            update.message,
            generation,
            now=now,
        )
    wanted: dict[str, Any] = {
        "conditions": conditions,
        "observedGeneration": generation,
        "phase": phase(conditions),
        **(fields or {}),
    }
    return {key: value for key, value in wanted.items() if current.get(key) != value}


def write_status(
    patch: kopf.Patch,
    body: Mapping[str, Any],
    kind: KindNames,
    updates: Iterable[ConditionUpdate],
    *,
    fields: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Put the status changes for ``updates`` (and ``fields``) into kopf's ``patch``.

    Builds on what is already in ``patch.status``, so several calls within one handler run
    accumulate. Posts the Events the change is worth, and records the object's conditions
    for the ``kubearts_objects`` metric. Returns the whole condition list after the change.
    """
    current = {**(body.get("status") or {}), **patch.status}
    changes = status_changes(current, generation_of(body), updates, fields=fields, now=now)
    for key, value in changes.items():
        patch.status[key] = value
    for event in status_events(current, {**current, **changes}):
        post_event(body, event.type, event.reason, event.message)
    conditions: list[Condition] = changes.get("conditions", current.get("conditions") or [])
    metadata = body.get("metadata") or {}
    metrics.record_conditions(
        kind.kind, str(metadata.get("namespace", "")), str(metadata.get("name", "")), conditions
    )
    return conditions


#: One level-based step of a kind: read, decide, carry out, write the status.
Step = Callable[[Mapping[str, Any], kopf.Patch, kopf.Logger, Config], None]


def register_step(
    kind: KindNames,
    step: Step | Callable[..., None],
    *,
    poll_seconds: float | None = None,
    when: Callable[..., bool] | None = None,
    indexes: Sequence[str] = (),
) -> None:
    """Register ``<plural>_create``, ``_update`` and ``_resume``, each running ``step``
    once, and with ``poll_seconds`` a ``<plural>_poll`` timer running it while ``when``
    holds (a Job works for the object). The kopf indexes named in ``indexes`` are passed
    to ``step`` as keyword arguments of the same names.

    The timer stops on nothing: an invalid spec or a missing dependency is in the status
    already, and the next tick looks again while the filter holds.
    """

    def run(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **kwargs: Any) -> None:
        extra = {name: kwargs[name] for name in indexes}
        step(body, patch, logger, operator_config(kwargs.get("memo") or {}), **extra)

    def poll(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **kwargs: Any) -> None:
        try:
            run(body, patch, logger, **kwargs)
        except (kopf.PermanentError, kopf.TemporaryError) as exc:
            logger.debug("%s step stopped: %s", kind.kind, exc)

    instrumented = metrics.instrumented(kind.kind)(run)
    for event, decorator in (
        ("create", kopf.on.create),
        ("update", kopf.on.update),
        ("resume", kopf.on.resume),
    ):
        decorator(GROUP, VERSION, kind.plural, id=f"{kind.plural}_{event}")(instrumented)
    if poll_seconds is not None:
        kopf.timer(
            GROUP,
            VERSION,
            kind.plural,
            id=f"{kind.plural}_poll",
            interval=poll_seconds,
            when=when,
        )(metrics.instrumented(kind.kind)(poll))


def post_event(body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
    """Post a Kubernetes Event on ``body`` through kopf's event poster.

    Outside a running operator (a handler called directly, as unit tests do) there is no
    poster, and nothing is posted.
    """
    # kopf's context variables (its settings, the event queue) exist only in the operator.
    with contextlib.suppress(LookupError):
        kopf.event(cast(kopf.Body, body), type=type, reason=reason, message=message)


def warn_cpu_fallback(body: Mapping[str, Any], fields: Mapping[str, Any], message: str) -> None:
    """One Warning event ``CPUFallback`` when ``status.deviceFallback`` turns true: the
    worker was placed on an accelerator pool, saw no device and runs on the CPU."""
    before = body.get("status") or {}
    if fields.get("deviceFallback") and not before.get("deviceFallback"):
        post_event(body, "Warning", REASON_CPU_FALLBACK, message)


def invalid_spec(
    kind: KindNames,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    error: SpecError,
    *,
    updates: Iterable[ConditionUpdate] = (),
    fields: Mapping[str, Any] | None = None,
) -> kopf.PermanentError:
    """Mark the object Ready=False with the error's reason (InvalidSpec unless it names a
    more specific one) and return the error for the handler to raise.

    The message names the field, the problem and the fix, e.g.
    ``raise invalid_spec(TRAINING_JOB, body, patch, SpecError("spec.resources.pool",
    "unknown pool 'tpu'", "use one of cpu, gpu, ascend910"))``. ``updates`` and
    ``fields`` are written in the same status change. kopf does not retry a
    PermanentError; editing the spec runs the update handler again.
    """
    ready = ConditionUpdate(COND_READY, FALSE, error.reason, error.message)
    write_status(patch, body, kind, [*updates, ready], fields=fields)
    return kopf.PermanentError(error.message)


def wait(
    kind: KindNames,
    body: Mapping[str, Any],
    patch: kopf.Patch,
    message: str,
    *,
    reason: str = REASON_WAITING_FOR_DEPENDENCY,
) -> None:
    """Mark the object Ready=False with ``reason``: it waits for another object.

    The handler then ends: the kind's timer looks again while the object waits
    (:func:`following`), and a change of the awaited object wakes it sooner. (A retried
    handler would not do: kopf keeps a retry's delay whatever changes meanwhile.)
    """
    write_status(patch, body, kind, [ConditionUpdate(COND_READY, FALSE, reason, message)])


def operator_config(memo: Mapping[str, Any]) -> Config:
    """The :class:`Config` loaded at start-up (kopf's ``memo`` kwarg of every handler).

    Falls back to reading the environment when the startup handler did not run, e.g. when
    a handler is called directly in a test.
    """
    config = memo.get(MEMO_CONFIG_KEY)
    return config if isinstance(config, Config) else load_config()


_KIND_BY_NAME: Final = {names.kind: names for names in ALL_KINDS}


def forget_deleted(event: Mapping[str, Any], **_: Any) -> None:
    """Watch-event handler (one per kind, registered in main.py): drop deleted objects from
    the ``kubearts_objects`` metric. Deletion handlers would need a finalizer for this."""
    if event.get("type") != "DELETED":
        return
    body = event.get("object") or {}
    metadata = body.get("metadata") or {}
    names = _KIND_BY_NAME.get(str(body.get("kind")))
    if names is not None:
        metrics.forget_object(
            names.kind, str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        )


def job_view(
    namespace: str,
    job: Mapping[str, Any],
    exit_reasons: Mapping[int, str],
    pods: Iterable[Mapping[str, Any]] | None = None,
) -> workloads.JobView:
    """One look at a worker Job through the API: its pods (listed unless ``pods`` holds the
    owner's, already listed) and, only where the view needs it, a pod's log."""
    name = workloads.object_name(job)
    own: list[Mapping[str, Any]]
    if pods is None:
        own = list(k8s.list_pods(namespace, {"job-name": name}))
    else:
        own = [pod for pod in pods if workloads.labels_of(pod).get("job-name") == name]

    def read_log(pod: str, tail: int | None) -> str:
        return k8s.read_pod_log(namespace, pod, tail_lines=tail) or ""

    return workloads.observe_job(job, own, read_log, exit_reasons)


def run_view(
    body: Mapping[str, Any], job_name: str, exit_reasons: Mapping[int, str]
) -> tuple[workloads.JobView | None, ConditionUpdate]:
    """One look at the Job of a run (a kind that starts one Job and follows it): the view
    (None when the Job is gone) and ``SpecValid``, which refuses a spec edited after the
    start (:func:`kubearts.runs.spec_check`)."""
    namespace = body["metadata"]["namespace"]
    job = k8s.get("batch/v1", "Job", namespace, job_name)
    if job is None:
        return None, runs.spec_check(
            spec_digest(body.get("spec") or {}), None, str(body.get("kind"))
        )
    started = workloads.annotations_of(job).get(SPEC_DIGEST_ANNOTATION)
    check = runs.spec_check(spec_digest(body.get("spec") or {}), started, str(body.get("kind")))
    return job_view(namespace, job, exit_reasons), check


def ensure_workspace(namespace: str, config: Config) -> None:
    """The namespace's shared workspace claim, created once from the default StorageClass
    (never owned or deleted); one request, whether or not it exists."""
    k8s.create_if_absent(workspace_claim(namespace, config.workspace_pvc, config.workspace_size))


def placement_for(spec: Mapping[str, Any], config: Config) -> Placement:
    """The placement ``spec.resources`` asks for in the operator's pools; a pool, count or
    flavor the pools do not have is a :class:`SpecError` naming the field."""
    resources = spec.get("resources") or {}
    try:
        return build_placement(
            str(resources.get("pool", "cpu")),
            int(resources.get("count", 1)),
            config.pools,
            resources.get("nodeSelector"),
            resources.get("tolerations"),
            resources.get("flavor"),
        )
    except ValueError as exc:
        field, _, problem = str(exc).partition(": ")
        raise SpecError(field, problem, "see the operator's pools in its configuration") from None


def worker_placement(config: Config, worker: str, pool: str = POOL_CPU) -> Placement:
    """Where one of the operator's own workers (``dataset``, ``conversion``, ``model``)
    runs, sized by ``KUBEARTS_WORKER_RESOURCES``; a pool missing from the operator's pools
    is its misconfiguration, reported as such."""
    try:
        return build_placement(
            pool, 1, config.pools, size=config.worker_resources[worker], field="KUBEARTS_POOLS"
        )
    except ValueError as exc:
        raise SpecError(
            "KUBEARTS_POOLS",
            f"the operator cannot place {worker} pods: {exc}",
            f"add a {pool} pool to the operator's pools",
            reason=REASON_INVALID_CONFIGURATION,
        ) from None


def waiting(status: Mapping[str, Any], **_: Any) -> bool:
    """Timer filter: the object waits for another one (its Ready reason says so)."""
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == COND_READY), {}
    )
    return ready.get("status") != "True" and ready.get("reason") in WAITING_REASONS


def following(status: kopf.Status, **_: Any) -> bool:
    """Timer filter of a kind that runs one Job: it waits to start, or runs."""
    return waiting(status) or run_active(status)


def run_active(status: kopf.Status, **_: Any) -> bool:
    """Timer filter of a kind that runs one Job: it has started and has not finished."""
    return bool(status.get("jobName")) and status.get("phase") not in (
        PHASE_SUCCEEDED,
        PHASE_FAILED,
    )
