"""The six CRDs on a real API server: installed, documented, defaulting and refusing bad input.

The API server is the first line of validation: a manifest that breaks the schema never
reaches the operator, and the refusal must name the field. Invalid manifests are built from
the examples in ``examples/`` with one change each (``crd_cases/invalid.yaml``), so every
case differs from an accepted manifest in exactly the behaviour it names.

Refusals are checked with ``kubectl create --dry-run=server --validate=false``: the server
validates and defaults as for a real create but stores nothing, and kubectl's own
client-side checks are off so the message comes from the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Protocol

import pytest
import yaml

pytestmark = pytest.mark.cluster


import crdkit as cases  # noqa: E402

#: Dry runs store nothing, so they need no namespace of their own.
DRY_RUN_NAMESPACE = "default"
#: How long `kubectl explain` may lag behind Established while the OpenAPI is republished.
EXPLAIN_TIMEOUT_S = 60.0

CRDS: dict[str, dict[str, Any]] = cases.load_crds()
KINDS = sorted(CRDS)
EXAMPLES: dict[str, list[dict[str, Any]]] = cases.load_examples()
INVALID_CASES: list[dict[str, Any]] = cases.invalid_cases()
STATUSES: dict[str, dict[str, Any]] = cases.statuses()
example_of = cases.example_of
names_field = cases.names_field


class Kube(Protocol):
    """What the session's ``kube`` fixture offers (tests/conftest.py)."""

    kubeconfig: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> Any: ...


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = cases.schema_of(CRDS[kind])
    return schema


def plural_of(kind: str) -> str:
    plural: str = CRDS[kind]["spec"]["names"]["plural"]
    return plural


# --- Helpers on the cluster ---------------------------------------------------------------


def dry_run_create(kube: Kube, manifest: Mapping[str, Any]) -> Any:
    return kube.kubectl(
        "create",
        "--dry-run=server",
        "--validate=false",
        "-n",
        DRY_RUN_NAMESPACE,
        "-o",
        "json",
        "-f",
        "-",
        input=yaml.safe_dump(dict(manifest), allow_unicode=True),
        check=False,
    )


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def _custom_objects_api(kube: Kube) -> Any:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=kube.kubeconfig)  # type: ignore[no-untyped-call]
    return client.CustomObjectsApi(api_client)


# --- Installation -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_crd_is_established(kube: Kube, crds: Any, kind: str) -> None:
    name = CRDS[kind]["metadata"]["name"]
    out = kube.kubectl("get", "crd", name, "-o", "json").stdout
    conditions = {c["type"]: c for c in json.loads(out)["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["status"] == "True"
    assert "NonStructuralSchema" not in conditions


# --- Examples -----------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_is_accepted(kube: Kube, crds: Any, namespace: str, example: str) -> None:
    result = kube.kubectl(
        "create", "-n", namespace, "-f", str(cases.EXAMPLES_DIR / example), check=False
    )
    assert result.returncode == 0, result.stderr
    for doc in EXAMPLES[example]:
        got = kube.kubectl("get", plural_of(doc["kind"]), doc["metadata"]["name"], "-n", namespace)
        assert got.returncode == 0


def test_category_lists_every_kind(kube: Kube, crds: Any, namespace: str) -> None:
    kube.kubectl("create", "-n", namespace, "-f", str(cases.EXAMPLES_DIR))
    listed = set(kube.kubectl("get", "kubearts", "-n", namespace, "-o", "name").stdout.split())
    expected = {
        f"{doc['kind'].lower()}.kubearts.io/{doc['metadata']['name']}"
        for docs in EXAMPLES.values()
        for doc in docs
    }
    assert listed == expected


@pytest.mark.parametrize("kind", KINDS)
def test_short_name_resolves(kube: Kube, crds: Any, namespace: str, kind: str) -> None:
    manifest = example_of(kind)
    kube.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    short = CRDS[kind]["spec"]["names"]["shortNames"][0]
    out = kube.kubectl("get", short, "-n", namespace, "-o", "name").stdout.split()
    assert out == [f"{kind.lower()}.kubearts.io/{manifest['metadata']['name']}"]


EXPECTED_COLUMNS = {
    "Dataset": ["NAME", "SOURCE", "SAMPLES", "CLASSES", "READY", "REASON", "AGE"],
    "Subscription": ["NAME", "ALGORITHM", "VERSION", "READY", "REASON", "AGE"],
    "TrainingJob": [
        "NAME", "ALGORITHM", "DATASET", "POOL", "PROGRESS", "ACCURACY", "READY", "REASON", "AGE",
    ],
    "ModelConversion": ["NAME", "TEMPLATE", "READY", "REASON", "AGE"],
    "Model": ["NAME", "LATEST", "VERSIONS", "READY", "REASON", "AGE"],
    "InferenceService": ["NAME", "MODEL", "POOL", "URL", "REPLICAS", "READY", "REASON", "AGE"],
}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns(kube: Kube, crds: Any, namespace: str, kind: str) -> None:
    manifest = example_of(kind)
    kube.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    header = kube.kubectl("get", plural_of(kind), "-n", namespace).stdout.splitlines()[0]
    assert header.split() == EXPECTED_COLUMNS[kind]


# --- Documentation ------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("kind", KINDS)
def test_explain_shows_spec_descriptions(kube: Kube, crds: Any, kind: str) -> None:
    spec = schema_of(kind)["properties"]["spec"]

    def explained() -> str | None:
        result = kube.kubectl("explain", f"{kind.lower()}.spec", check=False)
        return result.stdout if result.returncode == 0 and "FIELDS:" in result.stdout else None

    out = _words(wait_for(explained, EXPLAIN_TIMEOUT_S, f"kubectl explain {kind}.spec"))
    assert _words(spec["description"]) in out
    for name, prop in spec["properties"].items():
        assert _words(prop["description"]) in out, f"{kind}.spec.{name} has no explanation"


# --- Defaults -----------------------------------------------------------------------------

MINIMAL = {
    "Dataset": {
        "source": {"uri": "gallery://flowers"},
        "versions": [{"name": "v1", "trainRatio": 0.8}],
    },
    "Subscription": {"algorithm": "resnet_v1_50", "version": "latest"},
    "TrainingJob": {
        "algorithm": {"subscription": "resnet-v1-50"},
        "inputs": [{"dataset": "flowers", "version": "v1"}],
    },
    "ModelConversion": {
        "source": {"trainingJob": "flowers-resnet"},
        "template": "TF-FrozenGraph-To-ONNX",
    },
    "Model": {
        "versions": [
            {
                "version": "1.0.0",
                "source": {
                    "uri": "s3://models/flowers/model.onnx",
                    "template": "image-classification",
                },
                "format": "onnx",
            }
        ]
    },
    "InferenceService": {"model": {"name": "flowers-resnet", "version": "1.0.0"}},
}

DEFAULTS = [
    pytest.param("Dataset", "spec.format", "ImageFolder", id="dataset-format"),
    pytest.param("Dataset", "spec.storage.deletePolicy", "Retain", id="dataset-delete-policy"),
    pytest.param("Dataset", "spec.limits.maxFiles", 1_000_000, id="dataset-max-files"),
    pytest.param("Dataset", "spec.versions[0].seed", 0, id="dataset-version-seed"),
    pytest.param("Dataset", "spec.versions[0].stratified", True, id="dataset-version-stratified"),
    pytest.param("Subscription", "spec.gallery", "default", id="subscription-gallery"),
    pytest.param("TrainingJob", "spec.inputs[0].name", "data", id="trainingjob-input-name"),
    pytest.param("TrainingJob", "spec.resources.pool", "cpu", id="trainingjob-pool"),
    pytest.param("TrainingJob", "spec.resources.count", 1, id="trainingjob-count"),
    pytest.param("TrainingJob", "spec.runPolicy.backoffLimit", 0, id="trainingjob-backoff"),
    pytest.param("TrainingJob", "spec.output", {}, id="trainingjob-output-workspace"),
    pytest.param("ModelConversion", "spec.options.inputFormat", "NHWC", id="conversion-format"),
    pytest.param("ModelConversion", "spec.options.precision", "FP32", id="conversion-precision"),
    pytest.param("ModelConversion", "spec.options.socVersion", "Ascend310", id="conversion-soc"),
    pytest.param("ModelConversion", "spec.options.opset", 13, id="conversion-opset"),
    pytest.param("ModelConversion", "spec.verify.samples", 8, id="conversion-verify-samples"),
    pytest.param("ModelConversion", "spec.verify.tolerance", 1e-4, id="conversion-tolerance"),
    pytest.param(
        "Model",
        "spec.versions[0].source.inputOutputMode",
        "image-classification",
        id="model-io-mode",
    ),
    pytest.param("InferenceService", "spec.mode", "online", id="inferenceservice-mode"),
    pytest.param("InferenceService", "spec.replicas", 1, id="inferenceservice-replicas"),
    pytest.param("InferenceService", "spec.resources.pool", "cpu", id="inferenceservice-pool"),
    pytest.param("InferenceService", "spec.resources.count", 1, id="inferenceservice-count"),
]


@pytest.mark.parametrize(("kind", "path", "expected"), DEFAULTS)
def test_api_server_applies_default(
    kube: Kube, crds: Any, kind: str, path: str, expected: Any
) -> None:
    manifest = {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "minimal"},
        "spec": MINIMAL[kind],
    }
    result = dry_run_create(kube, manifest)
    assert result.returncode == 0, result.stderr
    assert cases.get_path(json.loads(result.stdout), path) == expected


# --- Refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c["id"] for c in INVALID_CASES])
def test_invalid_manifest_is_refused_naming_the_field(
    kube: Kube, crds: Any, case: dict[str, Any]
) -> None:
    result = dry_run_create(kube, cases.invalid_manifest(case))
    assert result.returncode != 0, f"accepted: {case['id']}"
    message = result.stderr
    assert "is invalid" in message, message
    assert names_field(message, case["field"]), f"{case['field']} not named in: {message}"
    assert case["says"] in message, message


# --- Status subresource -------------------------------------------------------------------


def _created(kube: Kube, namespace: str, kind: str) -> dict[str, Any]:
    manifest: dict[str, Any] = example_of(kind)
    kube.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest))
    return manifest


@pytest.mark.parametrize("kind", KINDS)
def test_full_status_survives_a_round_trip(
    kube: Kube, crds: Any, namespace: str, kind: str
) -> None:
    """Every status field the operator writes is declared, so none is pruned."""
    manifest = _created(kube, namespace, kind)
    api = _custom_objects_api(kube)
    args = ("kubearts.io", "v1alpha1", namespace, plural_of(kind), manifest["metadata"]["name"])
    api.patch_namespaced_custom_object_status(*args, {"status": STATUSES[kind]})
    assert api.get_namespaced_custom_object(*args)["status"] == STATUSES[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_status_is_not_written_through_the_main_resource(
    kube: Kube, crds: Any, namespace: str, kind: str
) -> None:
    manifest = _created(kube, namespace, kind)
    name = manifest["metadata"]["name"]
    patch = json.dumps({"status": {"phase": "Forged"}})
    kube.kubectl("patch", plural_of(kind), name, "-n", namespace, "--type=merge", "-p", patch)
    got = json.loads(
        kube.kubectl("get", plural_of(kind), name, "-n", namespace, "-o", "json").stdout
    )
    assert got.get("status", {}).get("phase") != "Forged"


@pytest.mark.parametrize("kind", KINDS)
def test_status_with_bad_condition_is_refused(
    kube: Kube, crds: Any, namespace: str, kind: str
) -> None:
    from kubernetes.client.exceptions import ApiException

    manifest = _created(kube, namespace, kind)
    api = _custom_objects_api(kube)
    args = ("kubearts.io", "v1alpha1", namespace, plural_of(kind), manifest["metadata"]["name"])
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}}
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object_status(*args, bad)
    assert refused.value.status == 422
    assert names_field(str(refused.value.body), "status.conditions[0].status")
