"""TrainingJob handlers: run a subscribed algorithm on a split data set version.

One level-based step, :func:`reconcile`:

- before the run, the inputs are checked (:func:`kubearts.training_plan.plan_training`):
  the Subscription Ready, the pool one the algorithm trains on, the hyperparameters valid
  against the pinned schema, every input a published, *split* version. A spec that cannot
  work ends in Failed=True naming the field and the fix (an edit checks it again); missing
  dependencies are waited for. Then the one Job ``<name>-train`` is created
  (:mod:`kubearts.builders.training_jobs`) and ``status.jobName`` records it;
- from then on the step follows that Job the way every worker Job is followed
  (:mod:`kubearts.workloads`): Created → Running with ``status.progress`` and metrics →
  Succeeded with evaluation and outputs, or Failed with the reason lifted from the pod
  (Unschedulable naming the short resource, OOMKilled, DeadlineExceeded, an exit code with
  the log's tail). The ``trainingjobs_poll`` timer runs the step while the run is active;
- a run never starts twice: a spec edited after the start is refused with
  ``SpecValid=False`` (``SpecImmutable``) while the run goes on with its spec, and a Job
  deleted before it finished fails the TrainingJob (``JobMissing``). Deleting the
  TrainingJob deletes its Job and so stops its pod (owner references).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf

from kubearts import k8s, training_plan, workloads
from kubearts.builders.training_jobs import (
    LOG_FILE,
    training_job,
    training_job_name,
)
from kubearts.conditions import ConditionUpdate, SpecError, Wait, rfc3339
from kubearts.config import Config
from kubearts.constants import (
    COND_FAILED,
    DATASET,
    SUBSCRIPTION,
    TRAINING_JOB,
    TRUE,
)
from kubearts.handlers import common
from kubearts.training_plan import plan_training

#: Seconds between two looks at a running training Job.
POLL_SECONDS: Final = 5.0


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Start the run when it has not started, else follow it; write the status once."""
    status: Mapping[str, Any] = body.get("status") or {}
    if training_plan.needs_job(status):
        _start(body, patch, logger, config)
        return
    job_name = training_job_name(body["metadata"]["name"])
    view, spec_valid = common.run_view(body, job_name, training_plan.EXIT_REASONS)
    run = training_plan.follow_run(status, view, rfc3339())
    run.updates.append(spec_valid)
    common.write_status(patch, body, TRAINING_JOB, run.updates, fields=run.fields)
    common.warn_cpu_fallback(
        body,
        run.fields,
        f"no {run.fields.get('device') or 'accelerator'} device was visible to the trainer "
        f"on pool {(body.get('spec') or {}).get('resources', {}).get('pool')}; it trained "
        "on the CPU (KUBEARTS_ALLOW_CPU_FALLBACK is on)",
    )


def _start(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config) -> None:
    """Check the inputs and create the Job, or report why not."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    spec: Mapping[str, Any] = body.get("spec") or {}
    subscription = k8s.get_custom_object(
        SUBSCRIPTION.plural, namespace, (spec.get("algorithm") or {}).get("subscription", "")
    )
    datasets = {
        dataset: k8s.get_custom_object(DATASET.plural, namespace, dataset)
        for dataset in {i["dataset"] for i in spec.get("inputs") or []}
    }
    plan = plan_training(spec, subscription, datasets)
    if isinstance(plan, Wait):
        common.wait(TRAINING_JOB, body, patch, plan.message)
        return
    settings = training_plan.RunSettings(
        workspace_claim=config.workspace_pvc,
        allow_cpu_fallback=config.allow_cpu_fallback,
        default_deadline_seconds=config.training_job_deadline_seconds,
    )
    try:
        if isinstance(plan, SpecError):
            raise plan
        run = training_plan.resolve_run(name, namespace, spec, plan, settings)
        placement = common.placement_for(spec, config)
    except SpecError as error:
        failed = ConditionUpdate(COND_FAILED, TRUE, error.reason, error.message)
        raise common.invalid_spec(TRAINING_JOB, body, patch, error, updates=[failed]) from None
    if run.output.claim == config.workspace_pvc:
        common.ensure_workspace(namespace, config)
    job = k8s.create_or_get(training_job(run, body, placement=placement))
    created = training_plan.run_created(workloads.object_name(job), rfc3339())
    fields = {
        **created.fields,
        "image": plan.image,
        "algorithmVersion": plan.algorithm_version,
        "hyperparameters": dict(plan.hyperparameters),
        "inputs": [dict(i) for i in plan.inputs],
        "outputs": {"uri": run.output.uri},
        "logs": {"uri": run.output.child_uri(LOG_FILE)},
    }
    common.write_status(patch, body, TRAINING_JOB, created.updates, fields=fields)
    logger.info("started Job %s for %s on %s", job["metadata"]["name"], plan.image, run.device)


# The create, update and resume handlers and the poll timer each run one step.
common.register_step(TRAINING_JOB, reconcile, poll_seconds=POLL_SECONDS, when=common.following)
