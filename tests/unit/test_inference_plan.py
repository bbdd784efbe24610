"""An InferenceService without a cluster: which version it serves, the predictor's
Deployment and Service, how readiness and failures are read, and batch runs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubearts.builders.placement import build_placement
from kubearts.builders.serving import (
    PredictorImages,
    deployment_differs,
    predictor_deployment,
    predictor_image,
    predictor_service,
)
from kubearts.conditions import SpecError
from kubearts.config import DEFAULT_POOLS
from kubearts.inference_plan import (
    ServePlan,
    Wait,
    follow_batch,
    online_status,
    plan_serving,
)
from kubearts.workloads import JobView

WS = "pvc://kubearts-workspace"
OWNER = {"metadata": {"name": "digits", "namespace": "ml", "uid": "u-1"}}
NOW = "2026-12-01T00:00:00Z"


def model(fmt: str = "onnx", ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "status": {
            "versions": [
                {
                    "version": "1.0.0",
                    "ready": ready,
                    "reason": "Registered" if ready else "Registering",
                    "message": "m",
                    "format": fmt,
                    "location": f"{WS}/models/digits/1.0.0",
                    "digest": "sha256:abc",
                    "signature": {"labels": ["0", "1"]},
                    **extra,
                }
            ]
        }
    }


def spec(pool: str = "cpu") -> dict[str, Any]:
    return {"model": {"name": "digits", "version": "1.0.0"}, "resources": {"pool": pool}}


def test_an_onnx_version_is_served_by_onnx_runtime_on_the_pool() -> None:
    plan = plan_serving(spec("ascend310"), model())
    assert isinstance(plan, ServePlan)
    assert (plan.runtime, plan.provider, plan.digest) == (
        "onnxruntime",
        "CANNExecutionProvider",
        "sha256:abc",
    )
    assert plan.location.path == "models/digits/1.0.0"


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        pytest.param(None, "does not exist yet", id="no-model"),
        pytest.param({"status": {}}, "not registered yet", id="no-version"),
        pytest.param(model(ready=False), "is not Ready (Registering", id="registering"),
    ],
)
def test_a_version_that_is_not_ready_is_waited_for_by_name(
    found: dict[str, Any] | None, expected: str
) -> None:
    plan = plan_serving(spec(), found)
    assert isinstance(plan, Wait)
    assert plan.reason == "ModelNotReady"
    assert expected in plan.message


@pytest.mark.parametrize(
    ("fmt", "pool", "reason"),
    [("om", "cpu", "PoolMismatch"), ("frozen-graph", "cpu", "FormatNotServed")],
)
def test_a_version_the_pool_cannot_serve_is_refused(fmt: str, pool: str, reason: str) -> None:
    plan = plan_serving(spec(pool), model(fmt))
    assert isinstance(plan, SpecError)
    assert (plan.field, plan.reason) == ("spec.resources.pool", reason)


IMAGES = PredictorImages("p-cpu", "p-tf", "p-cuda", "p-cann")


@pytest.mark.parametrize(
    ("runtime", "pool", "image"),
    [
        ("onnxruntime", "cpu", "p-cpu"),
        ("onnxruntime", "gpu", "p-cuda"),
        ("onnxruntime", "ascend310", "p-cann"),
        ("ascend", "ascend310", "p-cann"),
        ("tensorflow", "cpu", "p-tf"),
    ],
)
def test_the_predictor_image_has_the_runtime_for_the_pool(
    runtime: str, pool: str, image: str
) -> None:
    assert predictor_image(IMAGES, runtime, pool) == image


def plan_of(pool: str = "cpu") -> ServePlan:
    plan = plan_serving(spec(pool), model())
    assert isinstance(plan, ServePlan)
    return plan


def deployment(pool: str = "cpu") -> dict[str, Any]:
    return predictor_deployment(
        OWNER,
        plan_of(pool),
        image="p-cpu",
        replicas=2,
        placement=build_placement(pool, 1, DEFAULT_POOLS),
        allow_cpu_fallback=True,
    )


def test_the_deployment_rolls_out_without_losing_a_ready_replica() -> None:
    manifest = deployment()
    assert manifest["metadata"]["name"] == "digits-predictor"
    strategy = manifest["spec"]["strategy"]["rollingUpdate"]
    assert strategy == {"maxUnavailable": 0, "maxSurge": 1}
    template = manifest["spec"]["template"]
    assert template["metadata"]["annotations"] == {"kubearts.io/model-digest": "sha256:abc"}
    (container,) = template["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/digits/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 600
    args = container["args"]
    assert args[args.index("--runtime") + 1] == "onnxruntime"
    assert args[args.index("--device") + 1] == "cpu"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/mnt/models"]["readOnly"] is True
    assert mounts["/mnt/models"]["subPath"] == "models/digits/1.0.0"
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_an_accelerator_pool_places_the_predictor_on_its_nodes() -> None:
    pod = deployment("ascend310")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "huawei-Ascend310"}
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["huawei.com/Ascend310"] == "1"


def test_the_service_routes_http_and_grpc_to_the_predictor() -> None:
    service = predictor_service(OWNER)
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"http": (80, "http"), "grpc": (8081, "grpc")}
    assert service["spec"]["selector"] == deployment()["spec"]["selector"]["matchLabels"]


def deployment_state(ready: int, replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"generation": 3},
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
        },
    }


def pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p-1"}, "status": status}


LOADED = json.dumps(
    {"event": "loaded", "provider": "CPUExecutionProvider", "fallback": True, "device": "gpu"}
)


def test_a_service_is_ready_when_every_replica_loaded_the_model() -> None:
    ready_pod = pod(conditions=[{"type": "Ready", "status": "True"}])
    updates, fields = online_status(
        plan_of("gpu"), 1, deployment_state(1), [ready_pod], lambda name: LOADED
    )
    (ready,) = updates
    assert (ready.status, ready.reason) == ("True", "Serving")
    assert "CPU fallback" in ready.message
    assert (fields["provider"], fields["deviceFallback"]) == ("CPUExecutionProvider", True)


def test_a_model_that_does_not_load_gives_the_predictors_reason() -> None:
    result = {"status": "Failed", "reason": "ModelLoadFailed", "message": "AscendCL not available"}
    crashed = pod(
        containerStatuses=[
            {
                "lastState": {"terminated": {"exitCode": 10, "message": json.dumps(result)}},
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            }
        ]
    )
    (ready,), _ = online_status(plan_of(), 1, deployment_state(0), [crashed], lambda name: "")
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "ModelLoadFailed",
        "AscendCL not available",
    )


def test_a_crash_loop_without_a_result_ends_with_the_log() -> None:
    crashed = pod(
        containerStatuses=[{"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "x"}}}]
    )
    (ready,), _ = online_status(
        plan_of(), 1, deployment_state(0), [crashed], lambda name: "Traceback: boom"
    )
    assert ready.reason == "CrashLoopBackOff"
    assert ready.message.endswith("Traceback: boom")


def test_an_unschedulable_predictor_names_the_resource() -> None:
    pending = pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "message": "0/4 nodes are available: 4 Insufficient nvidia.com/gpu.",
            }
        ]
    )
    (ready,), _ = online_status(plan_of("gpu"), 1, deployment_state(0), [pending], lambda n: "")
    assert ready.reason == "Unschedulable"
    assert "nvidia.com/gpu" in ready.message


def test_replicas_zero_is_not_ready_and_says_why() -> None:
    (ready,), _ = online_status(plan_of(), 0, deployment_state(0, 0), [], lambda n: "")
    assert (ready.status, ready.reason) == ("False", "ScaledToZero")


def test_a_finished_batch_run_reports_counts_and_throughput() -> None:
    result = {
        "status": "Succeeded",
        "reason": "Completed",
        "images": 10,
        "failures": 1,
        "imagesPerSecond": 42.0,
    }
    run = follow_batch({}, JobView({}, "Complete", result=result), NOW, f"{WS}/out/p.jsonl")
    assert run.fields["batch"] == {
        "total": 10,
        "succeeded": 9,
        "failed": 1,
        "imagesPerSecond": 42.0,
        "output": f"{WS}/out/p.jsonl",
    }
    succeeded = next(u for u in run.updates if u.type == "Succeeded")
    assert "1 could not be read" in succeeded.message


def test_wake_annotations_are_ones_kopf_compares() -> None:
    # kopf leaves annotations under its persistence prefix out of its diffs: a wake-up
    # written there would never run the service's update handler.
    from kubearts.constants import PERSISTENCE_PREFIX
    from kubearts.handlers.inferenceservices import (
        MODEL_STATE_ANNOTATION,
        PREDICTOR_STATE_ANNOTATION,
    )

    for annotation in (PREDICTOR_STATE_ANNOTATION, MODEL_STATE_ANNOTATION):
        assert not annotation.startswith(f"{PERSISTENCE_PREFIX}/")


def _as_served(manifest: dict[str, Any]) -> dict[str, Any]:
    """The Deployment as the API server returns it: defaults added around what was set."""
    served = copy.deepcopy(manifest)
    template = served["spec"]["template"]
    template["spec"].update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    (container,) = template["spec"]["containers"]
    container.update(imagePullPolicy="IfNotPresent", terminationMessagePolicy="File")
    container["readinessProbe"].update(timeoutSeconds=1, successThreshold=1)
    return served


def test_a_served_deployment_as_wanted_needs_no_rollout() -> None:
    assert not deployment_differs(_as_served(deployment()), deployment())


@pytest.mark.parametrize(
    ("pool", "edit"),
    [
        pytest.param("cpu", lambda d: d["spec"].update(replicas=3), id="replicas"),
        pytest.param(
            "gpu", lambda d: d["spec"]["template"]["spec"].pop("tolerations"), id="tolerations"
        ),
        pytest.param(
            "gpu",
            lambda d: d["spec"]["template"]["spec"]["nodeSelector"].update(zone="a"),
            id="node-selector",
        ),
        pytest.param(
            "cpu",
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].pop(0),
            id="env",
        ),
        pytest.param(
            "cpu",
            lambda d: d["spec"]["template"]["metadata"]["annotations"].update(
                {"kubearts.io/model-digest": "sha256:old"}
            ),
            id="model-digest",
        ),
    ],
)
def test_a_changed_template_rolls_out(pool: str, edit: Any) -> None:
    served = _as_served(deployment(pool))
    edit(served)
    assert deployment_differs(served, deployment(pool))
