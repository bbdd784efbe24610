"""ModelConversion handlers: convert a trained model to ONNX or Ascend ``om``, verified.

One level-based step, :func:`reconcile`, the shape of a TrainingJob's:

- before the run, :func:`kubearts.conversion_plan.plan_conversion` resolves the source (a
  succeeded TrainingJob's output, a registered Model version, or a ``pvc://`` uri) and the
  evaluation split to verify on; a source that is not there yet is waited for, one that
  cannot work ends in Failed=True naming the field. Then the one Job ``<name>-convert``
  (:mod:`kubearts.builders.conversion_jobs`) runs the converter — the ONNX templates in the
  converter image, the Ascend template in the CANN converter image on the configured pool;
- from then on the step follows that Job (:mod:`kubearts.runs`): Succeeded with the output's
  digest and size, the verification figures, tool versions and the command line; or Failed
  with the converter's reason (``InvalidOptions`` listing the graph's real names,
  ``ConverterUnavailable``, ``VerificationFailed`` with the figures).

A conversion runs once: a spec edited after the start is refused with ``SpecValid=False``
(``SpecImmutable``), as for training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf

from kubearts import k8s, runs, workloads
from kubearts.builders.conversion_jobs import (
    LOG_FILE,
    ConversionRun,
    conversion_job,
    conversion_job_name,
    output_location,
)
from kubearts.builders.jobs import JobLimits, spec_digest
from kubearts.conditions import ConditionUpdate, SpecError, Wait, rfc3339
from kubearts.config import WORKER_CONVERSION, Config
from kubearts.constants import (
    COND_FAILED,
    DATASET,
    MODEL,
    MODEL_CONVERSION,
    TRAINING_JOB,
    TRUE,
)
from kubearts.conversion_plan import (
    EXIT_REASONS,
    TEMPLATES,
    ConversionPlan,
    follow_conversion,
    plan_conversion,
)
from kubearts.handlers import common
from kubearts.storage import StorageUriError

#: Seconds between two looks at a running conversion Job.
POLL_SECONDS: Final = 5.0


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Start the conversion when it has not started, else follow it; write status once."""
    status: Mapping[str, Any] = body.get("status") or {}
    if not status.get("jobName"):
        _start(body, patch, logger, config)
        return
    job_name = conversion_job_name(body["metadata"]["name"])
    view, spec_valid = common.run_view(body, job_name, EXIT_REASONS)
    run = follow_conversion(status, view, rfc3339(), str(status.get("outputUri") or ""))
    run.updates.append(spec_valid)
    common.write_status(patch, body, MODEL_CONVERSION, run.updates, fields=run.fields)


def _read_sources(namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    source = spec.get("source") or {}
    wanted = (spec.get("verify") or {}).get("dataset") or {}
    return {
        "training_job": k8s.get_custom_object(TRAINING_JOB.plural, namespace, source["trainingJob"])
        if source.get("trainingJob")
        else None,
        "model": k8s.get_custom_object(MODEL.plural, namespace, source["model"]["name"])
        if source.get("model")
        else None,
        "dataset": k8s.get_custom_object(DATASET.plural, namespace, wanted["name"])
        if wanted.get("name")
        else None,
    }


def _resolve(
    name: str, spec: Mapping[str, Any], plan: ConversionPlan, config: Config
) -> ConversionRun:
    """The plan made concrete; raises SpecError for an output the converter cannot write."""
    template = str(spec["template"])
    output_format = TEMPLATES[template][1]
    try:
        output = output_location(name, (spec.get("output") or {}).get("uri"), config.workspace_pvc)
    except StorageUriError as exc:
        raise SpecError("spec.output.uri", str(exc), "use pvc://<claim>/<folder>") from None
    return ConversionRun(
        name=name,
        image=config.image_converter_ascend if output_format == "om" else config.image_converter,
        template=template,
        output_format=output_format,
        options=dict(spec.get("options") or {}),
        verify=dict(spec.get("verify") or {}),
        source=plan.source,
        source_file=plan.source_file,
        output=output,
        limits=JobLimits(active_deadline_seconds=config.conversion_job_deadline_seconds),
        spec_digest=spec_digest(spec),
        verify_data=plan.verify.location if plan.verify else None,
        verify_manifest=plan.verify.eval_manifest if plan.verify else "",
    )


def _start(body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config) -> None:
    """Resolve the source and create the Job, or report why not."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    spec: Mapping[str, Any] = body.get("spec") or {}
    plan = plan_conversion(spec, **_read_sources(namespace, spec))
    if isinstance(plan, Wait):
        common.wait(MODEL_CONVERSION, body, patch, plan.message)
        return
    try:
        if isinstance(plan, SpecError):
            raise plan
        run = _resolve(name, spec, plan, config)
    except SpecError as error:
        failed = ConditionUpdate(COND_FAILED, TRUE, error.reason, error.message)
        raise common.invalid_spec(MODEL_CONVERSION, body, patch, error, updates=[failed]) from None
    pool = config.conversion_ascend_pool if run.output_format == "om" else "cpu"
    placement = common.worker_placement(config, WORKER_CONVERSION, pool)
    if run.output.claim == config.workspace_pvc:
        common.ensure_workspace(namespace, config)
    job = k8s.create_or_get(conversion_job(run, body, placement=placement))
    created = runs.run_created(workloads.object_name(job), rfc3339(), "conversion")
    fields = {
        **created.fields,
        "sourceUri": plan.source.child_uri(plan.source_file)
        if plan.source_file
        else plan.source.uri,
        "outputUri": run.output.uri,
        "lineage": dict(plan.lineage),
        "logs": {"uri": run.output.child_uri(LOG_FILE)},
    }
    common.write_status(patch, body, MODEL_CONVERSION, created.updates, fields=fields)
    logger.info("started Job %s converting %s (%s)", job["metadata"]["name"], name, run.template)


# The create, update and resume handlers and the poll timer each run one step.
common.register_step(MODEL_CONVERSION, reconcile, poll_seconds=POLL_SECONDS, when=common.following)
