"""kubearts.handlers.subscriptions without a cluster: what a sync writes, and when a handler
asks kopf to retry. The API is replaced by an in-memory list of gallery ConfigMaps."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from kubearts import gallery as g
from kubearts import k8s
from kubearts.handlers import subscriptions as handlers

LOGGER = logging.getLogger("test")
NAMESPACE = "kubearts-system"


def version_doc(number: str) -> dict[str, Any]:
    return {
        "version": number,
        "image": f"registry.example/trainer:{number}",
        "entrypoint": {"command": ["python", "-m", "trainer"], "args": []},
        "hyperparameters": [
            {"name": "epochs", "type": "int", "default": 10, "minimum": 1, "maximum": 100}
        ],
        "trainingDevices": ["cpu"],
        "inferenceDevices": ["cpu"],
        "contract": {"requiresSplitVersion": True, "formats": ["ImageFolder"]},
        "outputs": [
            {
                "format": "saved_model",
                "path": "saved_model",
                "inputs": [{"name": "images", "dtype": "float32", "shape": [-1, 224, 224, 3]}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, 5]}],
            }
        ],
    }


def configmap(*versions: str, algorithm: str = "net") -> dict[str, Any]:
    entry = {
        "displayName": "Net",
        "description": "A network.",
        "task": "image_classification",
        "framework": "TensorFlow-2.x",
        "versions": [version_doc(v) for v in versions],
    }
    return {
        "metadata": {"name": "gallery", "namespace": NAMESPACE, "labels": {g.GALLERY_LABEL: "lab"}},
        "data": {f"algorithm.{algorithm}.yaml": json.dumps(entry)},
    }


def gallery_of(*configmaps: dict[str, Any]) -> g.Gallery:
    return g.load_gallery(list(configmaps), name="lab", fetch=None)


def subscription(version: str = "latest", status: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "Subscription",
        "metadata": {"name": "sub", "namespace": "ml", "generation": 1, "uid": "u"},
        "spec": {"gallery": "lab", "algorithm": "net", "version": version},
    }
    if status is not None:
        body["status"] = status
    return body


def written(changes: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status after a merge patch of ``changes`` is applied and read back as JSON."""
    merged = {**(previous or {}), **changes}
    result: dict[str, Any] = json.loads(
        json.dumps({k: v for k, v in merged.items() if v is not None})
    )
    return result


def pinned(*versions: str) -> dict[str, Any]:
    """The status a first sync against a gallery of ``versions`` writes."""
    _, changes = handlers.sync_status(subscription(), gallery_of(configmap(*versions)))
    return written(changes)


# --- what a sync writes ----------------------------------------------------------------------


def test_first_sync_writes_the_whole_pin() -> None:
    _, changes = handlers.sync_status(subscription(), gallery_of(configmap("1.0.0", "1.1.0")))
    assert changes["resolvedVersion"] == "1.1.0"
    assert changes["requestedVersion"] == "latest"
    assert set(g.PIN_FIELDS) <= set(changes)
    assert changes["observedGeneration"] == 1
    assert changes["phase"] == "Ready"


def test_resync_of_an_unchanged_subscription_writes_nothing() -> None:
    status = pinned("1.0.0", "1.1.0")
    _, changes = handlers.sync_status(
        subscription(status=status), gallery_of(configmap("1.0.0", "1.1.0"))
    )
    assert changes == {}


def test_a_new_gallery_version_writes_only_the_offer() -> None:
    status = pinned("1.0.0")
    _, changes = handlers.sync_status(
        subscription(status=status), gallery_of(configmap("1.0.0", "2.0.0"))
    )
    assert set(changes) == {"availableVersions", "latestVersion", "conditions"}
    assert changes["availableVersions"] == ["2.0.0"]
    assert written(changes, status)["resolvedVersion"] == "1.0.0"


def test_fields_the_new_status_drops_are_deleted() -> None:
    status = pinned("1.0.0")
    _, changes = handlers.sync_status(
        subscription(status=status), gallery_of(configmap("1.0.0", algorithm="other"))
    )
    assert changes["latestVersion"] is None
    after = written(changes, status)
    assert {k: after[k] for k in g.PIN_FIELDS} == {k: status[k] for k in g.PIN_FIELDS}


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        pytest.param({}, {"phase": "Ready"}, {"phase": "Ready"}, id="nothing-before"),
        pytest.param(
            {"latestVersion": "1.0.0", "phase": "Ready"},
            {"phase": "Ready"},
            {"latestVersion": None, "phase": "Ready"},
            id="dropped-field-is-null",
        ),
        pytest.param(
            {"somethingElse": 1}, {"phase": "Ready"}, {"phase": "Ready"}, id="foreign-field-kept"
        ),
    ],
)
def test_status_fields(
    current: dict[str, Any], new: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert handlers.status_fields(current, new) == expected  # type: ignore[arg-type]


# --- handlers and retries --------------------------------------------------------------------


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The gallery ConfigMaps the fake API lists (append to publish)."""
    monkeypatch.delenv("KUBEARTS_NAMESPACE", raising=False)
    configmaps: list[dict[str, Any]] = []

    def list_objects(
        api_version: str, kind: str, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        assert (api_version, kind, namespace) == ("v1", "ConfigMap", NAMESPACE)
        assert labels == {g.GALLERY_LABEL: "lab"}
        return list(configmaps)

    monkeypatch.setattr(k8s, "list_objects", list_objects)
    return configmaps


def broken_api(monkeypatch: pytest.MonkeyPatch) -> None:
    def list_objects(*_: Any, **__: Any) -> list[dict[str, Any]]:
        raise k8s.ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(k8s, "list_objects", list_objects)


Handler = Callable[..., None]


def run(handler: Handler, body: dict[str, Any]) -> kopf.Patch:
    patch = kopf.Patch()
    handler(body=kopf.Body(body), patch=patch, memo=kopf.Memo(), logger=LOGGER)
    return patch


def ready_of(patch: kopf.Patch) -> tuple[str, str]:
    ready = next(c for c in patch.status["conditions"] if c["type"] == "Ready")
    return ready["status"], ready["reason"]


@pytest.mark.parametrize(
    "handler",
    [handlers.subscriptions_create, handlers.subscriptions_update, handlers.subscriptions_resume],
    ids=["create", "update", "resume"],
)
def test_handlers_pin_into_kopfs_patch(api: list[dict[str, Any]], handler: Handler) -> None:
    api.append(configmap("1.0.0", "1.1.0"))
    patch = run(handler, subscription())
    assert patch.status["resolvedVersion"] == "1.1.0"
    assert ready_of(patch) == ("True", "Resolved")


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda api, monkeypatch: None, id="no-configmaps"),
        pytest.param(lambda api, monkeypatch: broken_api(monkeypatch), id="api-error"),
    ],
)
def test_unreadable_gallery_is_retried_after_a_delay(
    api: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    break_it: Callable[[list[dict[str, Any]], pytest.MonkeyPatch], None],
) -> None:
    break_it(api, monkeypatch)
    patch = kopf.Patch()
    with pytest.raises(kopf.TemporaryError) as retry:
        handlers.subscriptions_create(
            body=kopf.Body(subscription()), patch=patch, memo=kopf.Memo(), logger=LOGGER
        )
    assert retry.value.delay == handlers.GALLERY_RETRY_DELAY_SECONDS
    assert ready_of(patch) == ("False", "GalleryUnavailable")


def test_unknown_algorithm_is_reported_without_retrying(api: list[dict[str, Any]]) -> None:
    api.append(configmap("1.0.0", algorithm="other"))
    patch = run(handlers.subscriptions_create, subscription())
    assert ready_of(patch) == ("False", "AlgorithmNotFound")
    assert "resolvedVersion" not in patch.status


def test_timer_does_not_raise_its_next_tick_is_the_retry(api: list[dict[str, Any]]) -> None:
    patch = run(handlers.subscriptions_resync, subscription())
    assert ready_of(patch) == ("False", "GalleryUnavailable")


def test_timer_writes_nothing_when_nothing_changed(api: list[dict[str, Any]]) -> None:
    api.append(configmap("1.0.0"))
    patch = run(handlers.subscriptions_resync, subscription(status=pinned("1.0.0")))
    assert dict(patch) == {}


# --- the CRD keeps what the handler writes ---------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "kubearts.io_subscriptions.yaml"
DEFAULT_GALLERY = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"


def undeclared(value: Any, schema: dict[str, Any], path: str) -> Iterator[str]:
    """Paths in ``value`` that ``schema`` does not declare: the API server would drop them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                yield f"{path}.{key}"
            else:
                yield from undeclared(item, properties[key], f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from undeclared(item, schema.get("items", {}), f"{path}[{index}]")


def default_gallery() -> g.Gallery:
    data = yaml.safe_load(DEFAULT_GALLERY.read_text(encoding="utf-8"))
    document = {"metadata": {"name": "kubearts-gallery"}, "data": data}
    return g.load_gallery([document], name=None, fetch=None)


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"algorithm": "resnet_v1_50", "version": "latest"}, id="latest"),
        pytest.param({"algorithm": "resnet_v1_50", "version": "1.0.0"}, id="update-available"),
        pytest.param({"algorithm": "mobilenet_v1", "version": "latest"}, id="mobilenet"),
        pytest.param({"algorithm": "resnet_v1_50", "version": "9.0.0"}, id="version-not-found"),
    ],
)
def test_every_status_field_written_is_declared_in_the_crd(spec: dict[str, str]) -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    status = g.subscription_status(default_gallery(), spec, None, generation=1)
    assert list(undeclared(json.loads(json.dumps(status)), schema, "status")) == []


def test_the_crd_declares_every_status_field_of_the_status_type() -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(schema["properties"]) == set(g.STATUS_FIELDS)
