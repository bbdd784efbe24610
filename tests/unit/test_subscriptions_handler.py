"""kubearts.handlers.subscriptions and kubearts.handlers.galleries without a cluster: what
an evaluation writes, how galleries are read from the index, and who is woken when a
gallery changes. The API is replaced by a list of the patches the operator sends."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from gallerykit import sync

from kubearts import gallery as g
from kubearts import k8s, subscription_plan
from kubearts.constants import GALLERY_LABEL, GALLERY_REVISION_ANNOTATION
from kubearts.handlers import galleries
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


def configmap(*versions: str, algorithm: str = "net", gallery: str = "lab") -> dict[str, Any]:
    entry = {
        "displayName": "Net",
        "description": "A network.",
        "task": "image_classification",
        "framework": "TensorFlow-2.x",
        "versions": [version_doc(v) for v in versions],
    }
    return {
        "metadata": {
            "name": f"gallery-{gallery}",
            "namespace": NAMESPACE,
            "labels": {GALLERY_LABEL: gallery},
        },
        "data": {f"algorithm.{algorithm}.yaml": json.dumps(entry)},
    }


def subscription(
    version: str = "latest", status: dict[str, Any] | None = None, gallery: str = "lab"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "Subscription",
        "metadata": {"name": "sub", "namespace": "ml", "generation": 1, "uid": "u"},
        "spec": {"gallery": gallery, "algorithm": "net", "version": version},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.fixture(autouse=True)
def _operator_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEARTS_NAMESPACE", raising=False)


Handler = Callable[..., None]


def run(
    handler: Handler, body: dict[str, Any], index: dict[str, list[Any]], memo: kopf.Memo
) -> kopf.Patch:
    patch = kopf.Patch()
    handler(
        body=kopf.Body(body),
        patch=patch,
        memo=memo,
        logger=LOGGER,
        gallery_configmaps=index,
        subscriptions_by_gallery={},
    )
    return patch


def evaluate(body: dict[str, Any], *configmaps: dict[str, Any]) -> dict[str, Any]:
    """The status changes one evaluation puts into kopf's patch."""
    index = {"lab": list(configmaps)} if configmaps else {}
    return dict(run(handlers.subscriptions_update, body, index, kopf.Memo()).status)


def written(changes: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status after a merge patch of ``changes`` is applied and read back as JSON."""
    merged = {**(previous or {}), **changes}
    result: dict[str, Any] = json.loads(
        json.dumps({k: v for k, v in merged.items() if v is not None})
    )
    return result


def pinned(*versions: str) -> dict[str, Any]:
    """The status a first evaluation against a gallery of ``versions`` writes."""
    return written(evaluate(subscription(), configmap(*versions)))


def ready_of(patch: kopf.Patch) -> tuple[str, str]:
    ready = next(c for c in patch.status["conditions"] if c["type"] == "Ready")
    return ready["status"], ready["reason"]


# --- what an evaluation writes ---------------------------------------------------------------


def test_first_evaluation_writes_the_whole_pin_once() -> None:
    changes = evaluate(subscription(), configmap("1.0.0", "1.1.0"))
    assert changes["resolvedVersion"] == "1.1.0"
    assert changes["requestedVersion"] == "latest"
    assert set(subscription_plan.PIN_FIELDS) <= set(changes)
    assert changes["observedGeneration"] == 1
    assert changes["phase"] == "Ready"


def test_evaluating_an_unchanged_subscription_writes_nothing() -> None:
    status = pinned("1.0.0", "1.1.0")
    assert evaluate(subscription(status=status), configmap("1.0.0", "1.1.0")) == {}


def test_a_new_gallery_version_writes_only_the_offer() -> None:
    status = pinned("1.0.0")
    changes = evaluate(subscription(status=status), configmap("1.0.0", "2.0.0"))
    assert set(changes) == {"availableVersions", "latestVersion", "conditions"}
    assert changes["availableVersions"] == ["2.0.0"]
    assert written(changes, status)["resolvedVersion"] == "1.0.0"


def test_fields_the_new_status_drops_are_deleted() -> None:
    status = pinned("1.0.0")
    changes = evaluate(subscription(status=status), configmap("1.0.0", algorithm="other"))
    assert changes["latestVersion"] is None
    after = written(changes, status)
    fields = subscription_plan.PIN_FIELDS
    assert {k: after[k] for k in fields} == {k: status[k] for k in fields}


# --- handlers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "handler",
    [handlers.subscriptions_create, handlers.subscriptions_update, handlers.subscriptions_resume],
    ids=["create", "update", "resume"],
)
def test_handlers_pin_into_kopfs_patch(handler: Handler) -> None:
    patch = run(handler, subscription(), {"lab": [configmap("1.0.0", "1.1.0")]}, kopf.Memo())
    assert patch.status["resolvedVersion"] == "1.1.0"
    assert ready_of(patch) == ("True", "Resolved")


def test_a_missing_gallery_is_reported_and_not_retried_on_a_clock() -> None:
    # The gallery's ConfigMap event wakes the Subscription when the gallery appears.
    patch = run(handlers.subscriptions_create, subscription(), {}, kopf.Memo())
    assert ready_of(patch) == ("False", "GalleryUnavailable")


def test_unknown_algorithm_is_reported_without_retrying() -> None:
    index = {"lab": [configmap("1.0.0", algorithm="other")]}
    patch = run(handlers.subscriptions_create, subscription(), index, kopf.Memo())
    assert ready_of(patch) == ("False", "AlgorithmNotFound")
    assert "resolvedVersion" not in patch.status


def test_a_gallery_is_parsed_once_per_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str | None] = []
    real = galleries.load_gallery

    def counting(*args: Any, **kwargs: Any) -> g.Gallery:
        parsed.append(kwargs.get("name"))
        return real(*args, **kwargs)

    monkeypatch.setattr(galleries, "load_gallery", counting)
    memo = kopf.Memo()
    index = {"lab": [configmap("1.0.0")]}
    for _ in range(50):
        run(handlers.subscriptions_create, subscription(), index, memo)
    index["lab"] = [configmap("1.0.0", "1.1.0")]
    run(handlers.subscriptions_create, subscription(), index, memo)
    assert parsed == ["lab", "lab"]


# --- gallery changes wake exactly their subscribers -------------------------------------------


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """(namespace, name, revision) of every Subscription the operator wakes."""
    calls: list[tuple[str, str, str]] = []

    def patch_custom_object(
        plural: str, namespace: str, name: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        assert plural == "subscriptions"
        assert set(changes) == {"metadata"}
        revision = changes["metadata"]["annotations"][GALLERY_REVISION_ANNOTATION]
        calls.append((namespace, name, revision))
        return {}

    monkeypatch.setattr(k8s, "patch_custom_object", patch_custom_object)
    return calls


SUBSCRIBERS = {"lab": [("ml", "a"), ("team", "b")], "other": [("ml", "c")]}


def changed(
    index: dict[str, list[Any]], memo: kopf.Memo, type: str | None, gallery: str = "lab"
) -> None:
    galleries.galleries_changed(
        type=type,
        name=f"gallery-{gallery}",
        namespace=NAMESPACE,
        labels={GALLERY_LABEL: gallery},
        memo=memo,
        logger=LOGGER,
        gallery_configmaps=index,
        subscriptions_by_gallery=SUBSCRIBERS,
    )


def test_a_gallery_edit_wakes_only_its_subscribers(woken: list[tuple[str, str, str]]) -> None:
    memo = kopf.Memo()
    index = {"lab": [configmap("1.0.0")], "other": [configmap("1.0.0", gallery="other")]}
    changed(index, memo, None)
    changed(index, memo, None, gallery="other")
    assert woken == []  # the start-up listing: the resume handlers evaluate everything

    index["lab"] = [configmap("1.0.0", "1.1.0")]
    changed(index, memo, "MODIFIED")

    revision, _ = galleries.read_gallery("lab", index, memo)
    assert woken == [("ml", "a", revision), ("team", "b", revision)]


def test_an_event_that_changes_nothing_wakes_nobody(woken: list[tuple[str, str, str]]) -> None:
    memo = kopf.Memo()
    index = {"lab": [configmap("1.0.0")]}
    changed(index, memo, "ADDED")
    woken.clear()
    changed(index, memo, "MODIFIED")  # e.g. a label or annotation edit
    changed(index, memo, None)  # a re-list after the watch expired
    assert woken == []


def test_a_gallery_published_after_its_subscribers_wakes_them(
    woken: list[tuple[str, str, str]],
) -> None:
    memo = kopf.Memo()
    changed({"lab": [configmap("1.0.0")]}, memo, "ADDED")
    assert [name for _, name, _ in woken] == ["a", "b"]


def test_configmaps_of_other_namespaces_are_not_indexed() -> None:
    body = kopf.Body(configmap("1.0.0"))
    kwargs: dict[str, Any] = {
        "name": "gallery-lab",
        "labels": {GALLERY_LABEL: "lab"},
        "body": body,
        "memo": kopf.Memo(),
    }
    assert galleries.gallery_configmaps(namespace="elsewhere", **kwargs) is None
    indexed = galleries.gallery_configmaps(namespace=NAMESPACE, **kwargs)
    assert indexed is not None
    assert list(indexed) == ["lab"]


def test_what_the_index_holds_is_a_readable_gallery() -> None:
    indexed = galleries.gallery_configmaps(
        namespace=NAMESPACE,
        name="gallery-lab",
        labels={GALLERY_LABEL: "lab"},
        body=kopf.Body(configmap("1.0.0")),
        memo=kopf.Memo(),
    )
    assert indexed is not None
    _, found = galleries.read_gallery("lab", {"lab": list(indexed.values())}, kopf.Memo())
    assert list(found.algorithms) == ["net"]


def test_a_changed_remote_index_wakes_the_subscribers_of_its_gallery(
    woken: list[tuple[str, str, str]],
) -> None:
    bodies = {"https://index.example/i.yaml": b"{}"}

    def fetch(url: str, timeout: float, validators: g.Validators) -> g.Response:
        return g.Response(bodies[url])

    state = galleries.Galleries(g.RemoteIndexCache(fetch))
    lab = configmap("1.0.0")
    lab["data"]["index.team.url"] = "https://index.example/i.yaml"
    index = {"lab": [lab], "other": [configmap("1.0.0", gallery="other")]}
    for name in index:
        state.announce(name, state.read(name, index[name])[0])

    assert galleries.refresh_remote_indexes(state, index, SUBSCRIBERS, LOGGER) == []
    bodies["https://index.example/i.yaml"] = json.dumps(
        {"algorithm.more.yaml": {"task": "t", "framework": "f", "versions": []}}
    ).encode()
    assert galleries.refresh_remote_indexes(state, index, SUBSCRIBERS, LOGGER) == ["lab"]
    assert [name for _, name, _ in woken] == ["a", "b"]


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
    return g.load_gallery([document], name=None)


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
    status = sync(default_gallery(), spec, None)
    assert list(undeclared(json.loads(json.dumps(status)), schema, "status")) == []


def test_the_crd_declares_every_status_field_of_the_status_type() -> None:
    crd = yaml.safe_load(CRD.read_text(encoding="utf-8"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(schema["properties"]) == set(subscription_plan.STATUS_FIELDS)
