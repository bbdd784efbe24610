"""The objects of an InferenceService (pure): the predictor Deployment and its Service, or
the batch Job.

Online, ``<name>-predictor`` is both a Deployment and a ClusterIP Service in front of it:

- the model version's registry folder mounted **read-only** at ``/mnt/models``;
- the predictor image of the runtime and pool (:func:`predictor_image`), its arguments
  naming the model, the runtime and the pool's device, ``KUBEARTS_ALLOW_CPU_FALLBACK``;
- readiness = the model is loaded (``/v2/models/<model>/ready``), liveness = the server
  answers (``/v2/health/live``), after a startup probe that allows the load minutes; HTTP
  on 8080 and gRPC on 8081;
- a rolling update that never lowers the ready replicas (``maxUnavailable: 0``), so a
  version change reaches clients with no failed request; the pod template carries the
  version's digest, so a new version is a new rollout and an unchanged one is not;
- the restricted pod, no service-account token, placement and flavor from the pool.

In batch mode, ``<name>-batch`` is a worker Job that predicts every image under
``spec.batch.input`` and writes JSON lines to ``spec.batch.output``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubearts.builders.jobs import RESULT_PATH, SCRATCH_PATH, JobLimits, worker_job
from kubearts.builders.meta import child_labels, child_name, owner_reference
from kubearts.builders.placement import Placement, place_pod
from kubearts.builders.security import container_security_context, pod_security_context
from kubearts.constants import GROUP, INFERENCE_SERVICE, STEP_LABEL
from kubearts.inference_plan import GRPC_PORT, HTTP_PORT, ServePlan
from kubearts.storage import StorageLocation, VolumeMount, folder_mounts

__all__ = [
    "PredictorImages",
    "batch_job",
    "deployment_differs",
    "predictor_deployment",
    "predictor_image",
    "predictor_name",
    "predictor_service",
]

STEP_PREDICT: Final = "predictor"
STEP_BATCH: Final = "batch"
MODEL_PATH: Final = "/mnt/models"
INPUT_PATH: Final = "/mnt/input"
OUTPUT_PATH: Final = "/mnt/output"
#: The digest of the model version a pod template serves.
DIGEST_ANNOTATION: Final = f"{GROUP}/model-digest"
SCRATCH_SIZE: Final = "1Gi"
#: How long a predictor may take to load its model before it counts as failed.
STARTUP_SECONDS: Final = 600


@dataclass(frozen=True)
class PredictorImages:
    """The predictor image per accelerator family and runtime (each with its own lock)."""

    onnxruntime_cpu: str
    tensorflow: str
    cuda: str
    cann: str


def predictor_image(images: PredictorImages, runtime: str, pool: str) -> str:
    """The image that has the runtime for the pool: CANN for Ascend (AscendCL and ONNX
    Runtime's CANN provider), CUDA for ONNX Runtime on GPUs, TensorFlow for SavedModels."""
    if pool == "ascend310" or runtime == "ascend":
        return images.cann
    if runtime == "tensorflow":
        return images.tensorflow
    return images.cuda if pool == "gpu" else images.onnxruntime_cpu


def predictor_name(name: str) -> str:
    """Deployment and Service of InferenceService ``name``."""
    return child_name(name, STEP_PREDICT)


def _labels(name: str) -> dict[str, str]:
    return child_labels(INFERENCE_SERVICE, name, **{STEP_LABEL: STEP_PREDICT})


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def predictor_deployment(
    owner: Mapping[str, Any],
    plan: ServePlan,
    *,
    image: str,
    replicas: int,
    placement: Placement,
    allow_cpu_fallback: bool,
) -> dict[str, Any]:
    """The apps/v1 Deployment of an online service: see the module docstring."""
    name = str(owner["metadata"]["name"])
    namespace = str(owner["metadata"]["namespace"])
    labels = _labels(name)
    volumes, mounts = folder_mounts([(plan.location, MODEL_PATH, True)])
    container = _predictor_container(plan, image, placement, allow_cpu_fallback, mounts)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE}}, *volumes],
    }
    place_pod(pod_spec, placement)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": predictor_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(INFERENCE_SERVICE, owner)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {DIGEST_ANNOTATION: plan.digest},
                },
                "spec": pod_spec,
            },
        },
    }


def _predictor_container(
    plan: ServePlan,
    image: str,
    placement: Placement,
    allow_cpu_fallback: bool,
    mounts: list[VolumeMount],
) -> dict[str, Any]:
    return {
        "name": STEP_PREDICT,
        "image": image,
        "args": [
            "--model_name",
            plan.model,
            "--model_dir",
            MODEL_PATH,
            "--runtime",
            plan.runtime,
            "--device",
            plan.pool,
            "--http_port",
            str(HTTP_PORT),
            "--grpc_port",
            str(GRPC_PORT),
            "--result",
            RESULT_PATH,
        ],
        "env": [
            {"name": "KUBEARTS_ALLOW_CPU_FALLBACK", "value": str(allow_cpu_fallback).lower()},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "HOME", "value": SCRATCH_PATH},
        ],
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        # Loading a large model takes minutes on a busy node: the startup probe gives it
        # up to STARTUP_SECONDS before liveness starts counting.
        "startupProbe": _probe("/v2/health/live", 5, STARTUP_SECONDS // 5),
        "readinessProbe": _probe(f"/v2/models/{plan.model}/ready", 2, 1),
        "livenessProbe": _probe("/v2/health/live", 10, 3),
        "resources": placement["resources"],
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH_PATH}, *mounts],
        "terminationMessagePath": RESULT_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "workingDir": SCRATCH_PATH,
    }


#: What the operator sets in a predictor's pod template and compares before a rollout: the
#: API server adds defaults around these (probe timings, port protocols), never inside them.
_POD_FIELDS: Final = ("nodeSelector", "tolerations")
_CONTAINER_FIELDS: Final = ("image", "args", "env", "resources")


def deployment_differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether the Deployment must change to be ``wanted``: its replicas, the pod template's
    annotations, placement (node selector, tolerations) or the container's image, args,
    environment or resources."""
    spec = current.get("spec") or {}
    if spec.get("replicas") != wanted["spec"]["replicas"]:
        return True
    template = spec.get("template") or {}
    want_template = wanted["spec"]["template"]
    have = (template.get("metadata") or {}).get("annotations") or {}
    if any(have.get(k) != v for k, v in want_template["metadata"]["annotations"].items()):
        return True
    pod, want_pod = template.get("spec") or {}, want_template["spec"]
    if any((pod.get(k) or None) != (want_pod.get(k) or None) for k in _POD_FIELDS):
        return True
    (container,) = pod.get("containers") or [{}]
    (want_container,) = want_pod["containers"]
    return any(container.get(k) != want_container.get(k) for k in _CONTAINER_FIELDS)


def predictor_service(owner: Mapping[str, Any]) -> dict[str, Any]:
    """The ClusterIP Service in front of the predictor: HTTP on 80, gRPC on 8081."""
    name = str(owner["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": predictor_name(name),
            "namespace": str(owner["metadata"]["namespace"]),
            "labels": _labels(name),
            "ownerReferences": [owner_reference(INFERENCE_SERVICE, owner)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": _labels(name),
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def batch_job(
    owner: Mapping[str, Any],
    plan: ServePlan,
    *,
    image: str,
    allow_cpu_fallback: bool,
    input_location: StorageLocation,
    output_location: StorageLocation,
    output_file: str,
    placement: Placement,
    limits: JobLimits,
) -> dict[str, Any]:
    """The Job of batch mode: every image under the input, JSON lines to the output."""
    name = str(owner["metadata"]["name"])
    volumes, mounts = folder_mounts(
        [
            (plan.location, MODEL_PATH, True),
            (input_location, INPUT_PATH, True),
            (output_location, OUTPUT_PATH, False),
        ]
    )
    container = {
        "name": STEP_BATCH,
        "image": image,
        "args": [
            "batch",
            "--model_dir",
            MODEL_PATH,
            "--runtime",
            plan.runtime,
            "--device",
            plan.pool,
            "--input",
            INPUT_PATH,
            "--output",
            f"{OUTPUT_PATH}/{output_file}",
            "--result",
            RESULT_PATH,
        ],
        "env": [
            {"name": "KUBEARTS_ALLOW_CPU_FALLBACK", "value": str(allow_cpu_fallback).lower()},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "workingDir": "/tmp",
    }
    return worker_job(
        INFERENCE_SERVICE,
        owner,
        name=child_name(name, STEP_BATCH),
        labels=child_labels(INFERENCE_SERVICE, name, **{STEP_LABEL: STEP_BATCH}),
        container=container,
        placement=placement,
        limits=limits,
        volumes=volumes,
        mounts=mounts,
    )
