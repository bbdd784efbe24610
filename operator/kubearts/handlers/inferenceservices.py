"""InferenceService handlers: serve a Model version online, or predict a folder in batch.

One level-based step, :func:`reconcile`:

- :func:`kubearts.inference_plan.plan_serving` resolves the Model version: not there or
  not Ready is waited for (``ModelNotReady`` naming the version), a format/runtime/pool
  that do not go together is refused naming ``spec.resources.pool``;
- online: the Service and the Deployment ``<name>-predictor`` are created, or the
  Deployment is patched when the version, replicas or placement changed (a rolling update
  that keeps every ready replica until its successor is ready); the status follows the
  Deployment and its pods (:func:`kubearts.inference_plan.online_status`);
- batch: one Job ``<name>-batch``, followed like every run (:mod:`kubearts.runs`).

Changes of the predictor Deployment wake the service: ``inferenceservices_predictor_changed``
sets an annotation on the owner when the Deployment's replica counts change, and kopf runs
the update handler. Models wake the services that wait for them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import kopf

from kubearts import inference_plan, k8s, runs, workloads
from kubearts.builders.jobs import JobLimits
from kubearts.builders.placement import Placement
from kubearts.builders.serving import (
    DIGEST_ANNOTATION,
    PredictorImages,
    batch_job,
    deployment_differs,
    predictor_deployment,
    predictor_image,
    predictor_name,
    predictor_service,
)
from kubearts.conditions import ConditionUpdate, SpecError, Wait, rfc3339
from kubearts.config import Config
from kubearts.constants import (
    COND_FAILED,
    GROUP,
    INFERENCE_SERVICE,
    INFERENCE_SERVICE_LABEL,
    MODEL,
    TRUE,
    VERSION,
)
from kubearts.handlers import common
from kubearts.inference_plan import ServePlan, call_guide, plan_serving
from kubearts.storage import StorageUriError, parse_storage_uri

#: Annotation the predictor's Deployment changes set on its InferenceService. Not under
#: ``kubearts.io/``: kopf leaves annotations of its own prefix out of what it compares, so
#: a change there would wake nothing.
PREDICTOR_STATE_ANNOTATION: Final = f"serving.{GROUP}/predictor-state"
#: Annotation a Model's changes set on the services that serve it.
MODEL_STATE_ANNOTATION: Final = f"serving.{GROUP}/model-state"
#: A batch run's predictions file, inside ``spec.batch.output``.
BATCH_OUTPUT_FILE: Final = "predictions.jsonl"
BATCH_DEADLINE_SECONDS: Final = 6 * 3600
#: Seconds between two looks at a service that is not ready, or a batch run.
POLL_SECONDS: Final = 5.0


def _images(config: Config) -> PredictorImages:
    return PredictorImages(
        onnxruntime_cpu=config.image_predictor,
        tensorflow=config.image_predictor_tensorflow,
        cuda=config.image_predictor_cuda,
        cann=config.image_predictor_cann,
    )


def reconcile(
    body: Mapping[str, Any], patch: kopf.Patch, logger: kopf.Logger, config: Config
) -> None:
    """Resolve the model version, then serve it online or run the batch Job."""
    metadata = body["metadata"]
    namespace = metadata["namespace"]
    spec: Mapping[str, Any] = body.get("spec") or {}
    model = k8s.get_custom_object(
        MODEL.plural, namespace, (spec.get("model") or {}).get("name", "")
    )
    plan = plan_serving(spec, model)
    if isinstance(plan, Wait):
        common.wait(INFERENCE_SERVICE, body, patch, plan.message, reason=plan.reason)
        return
    try:
        if isinstance(plan, SpecError):
            raise plan
        placement = common.placement_for(spec, config)
    except SpecError as error:
        raise common.invalid_spec(INFERENCE_SERVICE, body, patch, error) from None
    if spec.get("mode", "online") == "batch":
        _batch(body, patch, plan, placement, config)
    else:
        _online(body, patch, logger, plan, placement, config)


def _online(
    body: Mapping[str, Any],
    patch: kopf.Patch,
    logger: kopf.Logger,
    plan: ServePlan,
    placement: Placement,
    config: Config,
) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec: Mapping[str, Any] = body.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    service = k8s.create_or_get(predictor_service(body))
    wanted = predictor_deployment(
        body,
        plan,
        image=predictor_image(_images(config), plan.runtime, plan.pool),
        replicas=replicas,
        placement=placement,
        allow_cpu_fallback=config.allow_cpu_fallback,
    )
    deployment = k8s.get("apps/v1", "Deployment", namespace, wanted["metadata"]["name"])
    if deployment is None:
        deployment = k8s.create_or_get(wanted)
        logger.info("serving %s %s with %s", plan.model, plan.version, plan.runtime)
    elif deployment_differs(deployment, wanted):
        changes = {"spec": {"replicas": replicas, "template": wanted["spec"]["template"]}}
        deployment = k8s.patch("apps/v1", "Deployment", namespace, predictor_name(name), changes)
        logger.info("rolling out %s %s (replicas %d)", plan.model, plan.version, replicas)
    pods = [
        pod
        for pod in k8s.list_pods(namespace, {INFERENCE_SERVICE_LABEL: name})
        if workloads.annotations_of(pod).get(DIGEST_ANNOTATION) == plan.digest
    ]

    def read_log(pod: str) -> str:
        return k8s.read_pod_log(namespace, pod, tail_lines=200) or ""

    updates, fields = inference_plan.online_status(plan, replicas, deployment, pods, read_log)
    host = f"{predictor_name(name)}.{namespace}.svc"
    url = f"http://{host}"
    fields.update(
        {
            "url": url,
            "clusterIP": str((service.get("spec") or {}).get("clusterIP") or ""),
            "example": call_guide(url, plan.model),
            "deploymentName": predictor_name(name),
            "selector": ",".join(
                f"{key}={value}"
                for key, value in sorted(wanted["spec"]["selector"]["matchLabels"].items())
            ),
            "serviceName": predictor_name(name),
            "model": _served(plan),
        }
    )
    common.write_status(patch, body, INFERENCE_SERVICE, updates, fields=fields)
    common.warn_cpu_fallback(
        body,
        fields,
        f"no accelerator of pool {plan.pool} was visible to the predictor; it serves with "
        f"{fields.get('provider')} on the CPU (KUBEARTS_ALLOW_CPU_FALLBACK is on)",
    )
    if updates[0].status != TRUE and replicas > 0:
        # Pods change without the Deployment's counts changing (a crash loop): look again.
        raise kopf.TemporaryError(updates[0].message, delay=POLL_SECONDS)


def _served(plan: ServePlan) -> dict[str, Any]:
    return {
        "name": plan.model,
        "version": plan.version,
        "location": plan.location.uri,
        "format": plan.model_format,
        "runtime": plan.runtime,
        "digest": plan.digest,
    }


def _batch(
    body: Mapping[str, Any],
    patch: kopf.Patch,
    plan: ServePlan,
    placement: Placement,
    config: Config,
) -> None:
    spec: Mapping[str, Any] = body.get("spec") or {}
    batch = spec.get("batch") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    if not status.get("jobName"):
        try:
            if not batch:
                raise SpecError("spec.batch", "is required in batch mode", "name input and output")
            source = parse_storage_uri(str(batch["input"]), schemes=("pvc",))
            target = parse_storage_uri(str(batch["output"]), schemes=("pvc",))
        except (StorageUriError, KeyError) as exc:
            error = (
                exc
                if isinstance(exc, SpecError)
                else SpecError(
                    "spec.batch", str(exc), "use pvc://<claim>/<folder> for input and output"
                )
            )
            failed = ConditionUpdate(COND_FAILED, TRUE, error.reason, error.message)
            raise common.invalid_spec(
                INFERENCE_SERVICE, body, patch, error, updates=[failed]
            ) from None
        job = k8s.create_or_get(
            batch_job(
                body,
                plan,
                image=predictor_image(_images(config), plan.runtime, plan.pool),
                allow_cpu_fallback=config.allow_cpu_fallback,
                input_location=source,
                output_location=target,
                output_file=BATCH_OUTPUT_FILE,
                placement=placement,
                limits=JobLimits(active_deadline_seconds=BATCH_DEADLINE_SECONDS),
            )
        )
        created = runs.run_created(workloads.object_name(job), rfc3339(), "batch prediction")
        fields = {**created.fields, "model": _served(plan)}
        common.write_status(patch, body, INFERENCE_SERVICE, created.updates, fields=fields)
        return
    view, spec_valid = common.run_view(body, str(status["jobName"]), inference_plan.EXIT_REASONS)
    output = f"{str(batch.get('output', '')).rstrip('/')}/{BATCH_OUTPUT_FILE}"
    run = inference_plan.follow_batch(status, view, rfc3339(), output)
    run.updates.append(spec_valid)
    common.write_status(patch, body, INFERENCE_SERVICE, run.updates, fields=run.fields)


def _watching(status: kopf.Status, spec: kopf.Spec, **_: Any) -> bool:
    """Timer filter: the service waits for its model version, or a batch run is going on."""
    return common.waiting(status) or (
        spec.get("mode") == "batch"
        and bool(status.get("jobName"))
        and status.get("phase") not in ("Succeeded", "Failed")
    )


@kopf.on.event("apps", "v1", "deployments", labels={INFERENCE_SERVICE_LABEL: kopf.PRESENT})
def inferenceservices_predictor_changed(
    event: Mapping[str, Any], body: kopf.Body, logger: kopf.Logger, **_: Any
) -> None:
    """Wake the InferenceService whose predictor Deployment's replica counts changed."""
    if event.get("type") not in ("ADDED", "MODIFIED"):
        return
    state = body.get("status") or {}
    mark = "/".join(
        str(state.get(key) or 0)
        for key in ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas")
    )
    owner = workloads.labels_of(body).get(INFERENCE_SERVICE_LABEL, "")
    change = {"metadata": {"annotations": {PREDICTOR_STATE_ANNOTATION: mark}}}
    namespace = body.get("metadata", {}).get("namespace", "")
    service = k8s.get_custom_object(INFERENCE_SERVICE.plural, namespace, owner)
    if service is None or workloads.annotations_of(service).get(PREDICTOR_STATE_ANNOTATION) == mark:
        return
    k8s.patch_custom_object(INFERENCE_SERVICE.plural, namespace, owner, change)
    logger.debug("woke InferenceService %s/%s: predictor %s", namespace, owner, mark)


@kopf.on.event(GROUP, VERSION, MODEL.plural)
def inferenceservices_model_changed(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
    """Wake the InferenceServices of a Model when its Ready versions change."""
    if event.get("type") not in ("ADDED", "MODIFIED"):
        return
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    versions = (body.get("status") or {}).get("versions") or []
    mark = ",".join(sorted(str(v.get("version")) for v in versions if v.get("ready")))
    change = {"metadata": {"annotations": {MODEL_STATE_ANNOTATION: mark or "-"}}}
    for service in k8s.list_custom_objects(INFERENCE_SERVICE.plural, namespace):
        served = (service.get("spec") or {}).get("model") or {}
        if served.get("name") != name:
            continue
        if workloads.annotations_of(service).get(MODEL_STATE_ANNOTATION) == (mark or "-"):
            continue
        k8s.patch_custom_object(
            INFERENCE_SERVICE.plural, namespace, workloads.object_name(service), change
        )


# The create, update and resume handlers each run one step; a timer follows batch runs.
common.register_step(INFERENCE_SERVICE, reconcile, poll_seconds=POLL_SECONDS, when=_watching)
