"""kubearts.k8s: the API wrappers and their 404/409/retry policy.

The official client talks HTTP to a small fake API server on loopback, so the real client
code (serialisation, content types, error mapping) runs; no cluster is needed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kopf
import pytest
from kubernetes import client

from kubearts import k8s

JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "mnist-train", "namespace": "ml"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
}
JOB_PATH = "/apis/batch/v1/namespaces/ml/jobs"
DATASET_PATH = "/apis/kubearts.io/v1alpha1/namespaces/ml/datasets"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApiServer:
    """Answers (method, path) with a canned (status, body) and records every request."""

    url: str
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.routes[(method, path)] = (status, body)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[FakeApiServer]:
    """One fake API server for the module (starting one per test costs half a second)."""
    server_ref: dict[str, FakeApiServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            fake = server_ref["fake"]
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.requests.append(
                Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
                )
            )
            status, body = fake.routes.get(
                (self.command, parts.path), (404, status_body(404, "NotFound", "not found"))
            )
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    # BaseHTTPRequestHandler dispatches to do_<METHOD>.
    for method in ("GET", "POST", "PATCH", "DELETE"):
        setattr(Handler, f"do_{method}", Handler._serve)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    fake = FakeApiServer(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    server_ref["fake"] = fake
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def api(server: FakeApiServer) -> Iterator[FakeApiServer]:
    """The fake API server with no routes and no requests, and k8s pointed at it."""
    server.routes.clear()
    server.requests.clear()
    configuration = client.Configuration()
    configuration.host = server.url
    k8s.use_client(client.ApiClient(configuration))
    try:
        yield server
    finally:
        k8s.use_client(None)


def test_get_returns_the_object_as_sent(api: FakeApiServer) -> None:
    job = {**JOB, "status": {"active": 1}, "futureField": {"kept": True}}
    api.answer("GET", f"{JOB_PATH}/mnist-train", 200, job)
    assert k8s.get("batch/v1", "Job", "ml", "mnist-train") == job


def test_get_of_a_missing_object_is_none(api: FakeApiServer) -> None:
    assert k8s.get("v1", "ConfigMap", "ml", "absent") is None


def test_create_or_get_creates(api: FakeApiServer) -> None:
    api.answer("POST", JOB_PATH, 201, {**JOB, "metadata": {**JOB["metadata"], "uid": "u1"}})
    created = k8s.create_or_get(JOB)
    assert created["metadata"]["uid"] == "u1"
    assert api.requests[0].body == JOB


def test_create_or_get_returns_the_existing_object_on_conflict(api: FakeApiServer) -> None:
    existing = {**JOB, "metadata": {**JOB["metadata"], "uid": "old"}}
    api.answer("POST", JOB_PATH, 409, status_body(409, "AlreadyExists", "exists"))
    api.answer("GET", f"{JOB_PATH}/mnist-train", 200, existing)
    assert k8s.create_or_get(JOB) == existing


def test_conflict_with_a_vanishing_object_is_retried(api: FakeApiServer) -> None:
    api.answer("POST", JOB_PATH, 409, status_body(409, "AlreadyExists", "exists"))
    with pytest.raises(kopf.TemporaryError, match="probably being deleted"):
        k8s.create_or_get(JOB)


def test_invalid_manifest_is_a_permanent_error_with_the_server_message(
    api: FakeApiServer,
) -> None:
    message = 'Job.batch "mnist-train" is invalid: spec.template.spec.containers: Required value'
    api.answer("POST", JOB_PATH, 422, status_body(422, "Invalid", message))
    with pytest.raises(kopf.PermanentError, match=r"creating Job ml/mnist-train: .*Required value"):
        k8s.create_or_get(JOB)


@pytest.mark.parametrize("code", [429, 500, 503], ids=["throttled", "internal", "unavailable"])
def test_busy_server_is_a_temporary_error(api: FakeApiServer, code: int) -> None:
    api.answer("GET", f"{JOB_PATH}/mnist-train", code, status_body(code, "Busy", "try later"))
    with pytest.raises(kopf.TemporaryError, match="try later") as caught:
        k8s.get("batch/v1", "Job", "ml", "mnist-train")
    assert caught.value.delay == k8s.RETRY_DELAY_SECONDS


def test_forbidden_propagates(api: FakeApiServer) -> None:
    api.answer("GET", f"{JOB_PATH}/mnist-train", 403, status_body(403, "Forbidden", "no"))
    with pytest.raises(k8s.ApiException) as caught:
        k8s.get("batch/v1", "Job", "ml", "mnist-train")
    assert caught.value.status == 403


def test_patch_is_a_merge_patch(api: FakeApiServer) -> None:
    path = "/apis/apps/v1/namespaces/ml/deployments/predictor"
    api.answer("PATCH", path, 200, {"kind": "Deployment", "spec": {"replicas": 3}})
    result = k8s.patch("apps/v1", "Deployment", "ml", "predictor", {"spec": {"replicas": 3}})
    assert result == {"kind": "Deployment", "spec": {"replicas": 3}}
    (request,) = api.requests
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert request.body == {"spec": {"replicas": 3}}


def test_patch_of_a_missing_object_is_none(api: FakeApiServer) -> None:
    assert k8s.patch("v1", "Service", "ml", "absent", {"metadata": {}}) is None


def test_delete_removes_dependents_in_the_background(api: FakeApiServer) -> None:
    api.answer("DELETE", f"{JOB_PATH}/mnist-train", 200, {"kind": "Status", "status": "Success"})
    assert k8s.delete("batch/v1", "Job", "ml", "mnist-train") is True
    assert api.requests[0].query["propagationPolicy"] == ["Background"]


def test_delete_of_a_missing_object_is_false(api: FakeApiServer) -> None:
    assert k8s.delete("batch/v1", "Job", "ml", "absent") is False


def test_list_pods_selects_by_labels(api: FakeApiServer) -> None:
    pod = {"metadata": {"name": "p"}}
    api.answer("GET", "/api/v1/namespaces/ml/pods", 200, {"kind": "PodList", "items": [pod]})
    pods = k8s.list_pods("ml", {"kubearts.io/trainingjob": "mnist", "role": "worker"})
    assert pods == [pod]
    assert api.requests[0].query["labelSelector"] == ["kubearts.io/trainingjob=mnist,role=worker"]


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        pytest.param(200, "epoch 1\nepoch 2\n", "epoch 1\nepoch 2\n", id="log"),
        pytest.param(404, status_body(404, "NotFound", "gone"), None, id="pod-gone"),
        pytest.param(400, status_body(400, "BadRequest", "waiting"), "", id="not-started"),
    ],
)
def test_read_pod_log(api: FakeApiServer, code: int, body: Any, expected: str | None) -> None:
    api.answer("GET", "/api/v1/namespaces/ml/pods/p/log", code, body)
    assert k8s.read_pod_log("ml", "p", container="trainer", tail_lines=50) == expected
    assert api.requests[0].query == {"container": ["trainer"], "tailLines": ["50"]}


def test_patch_custom_status_merges_into_the_status_subresource(api: FakeApiServer) -> None:
    api.answer("PATCH", f"{DATASET_PATH}/digits/status", 200, {"status": {"phase": "Ready"}})
    result = k8s.patch_custom_status("datasets", "ml", "digits", {"phase": "Ready"})
    assert result == {"status": {"phase": "Ready"}}
    (request,) = api.requests
    assert request.headers["content-type"] == "application/merge-patch+json"
    assert request.body == {"status": {"phase": "Ready"}}


def test_patch_custom_status_of_a_missing_object_is_none(api: FakeApiServer) -> None:
    assert k8s.patch_custom_status("datasets", "ml", "absent", {"phase": "Ready"}) is None


def test_create_custom_object_returns_the_existing_one_on_conflict(api: FakeApiServer) -> None:
    body = {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "ml"},
    }
    path = "/apis/kubearts.io/v1alpha1/namespaces/ml/models"
    api.answer("POST", path, 409, status_body(409, "AlreadyExists", "exists"))
    api.answer("GET", f"{path}/m", 200, {**body, "spec": {"version": "v1"}})
    assert k8s.create_custom_object("models", body)["spec"] == {"version": "v1"}


def test_get_and_list_custom_objects(api: FakeApiServer) -> None:
    item = {"metadata": {"name": "digits"}}
    api.answer("GET", f"{DATASET_PATH}/digits", 200, item)
    api.answer("GET", DATASET_PATH, 200, {"items": [item]})
    assert k8s.get_custom_object("datasets", "ml", "digits") == item
    assert k8s.get_custom_object("datasets", "ml", "absent") is None
    assert k8s.list_custom_objects("datasets", "ml") == [item]


def test_unknown_kind_is_refused_without_a_request(api: FakeApiServer) -> None:
    with pytest.raises(ValueError, match=r"k8s does not handle v1/Node; known: .*batch/v1/Job"):
        k8s.get("v1", "Node", "", "n")
    assert api.requests == []


def test_manifest_without_namespace_is_refused(api: FakeApiServer) -> None:
    manifest = {**JOB, "metadata": {"name": "mnist-train"}}
    with pytest.raises(
        ValueError, match=r"Job manifest needs metadata.namespace and metadata.name"
    ):
        k8s.create_or_get(manifest)
    assert api.requests == []
