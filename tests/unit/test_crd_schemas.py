"""Offline checks of crds/, examples/ and docs/api.md: the rules a CRD must follow before
any API server sees it.

The API server checks that a schema is structural; these tests add the project's own
rules (a description on every property so ``kubectl explain`` is useful, the names, the
category, the Ready column) and run the examples and the invalid cases of
tests/cluster/crd_cases/invalid.yaml through the schemas with a JSON-schema validator, so a
broken example or a case that no longer fails is caught without a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

import crdkit as cases

CRDS: dict[str, dict[str, Any]] = cases.load_crds()
EXAMPLES: dict[str, list[dict[str, Any]]] = cases.load_examples()
INVALID_CASES: list[dict[str, Any]] = cases.invalid_cases()

#: kind -> (plural, short name), as every other part of the project names them.
NAMES = {
    "Dataset": ("datasets", "kads"),
    "Subscription": ("subscriptions", "kasub"),
    "TrainingJob": ("trainingjobs", "katj"),
    "ModelConversion": ("modelconversions", "kaconv"),
    "Model": ("models", "kamodel"),
    "InferenceService": ("inferenceservices", "kaisvc"),
}
KINDS = sorted(NAMES)
#: Short names of core kinds, KServe, OLM and other common CRDs that ours must not shadow.
TAKEN_SHORT_NAMES = {"ds", "sub", "isvc", "tj", "ing", "svc", "deploy", "po", "pv", "pvc", "cm"}
READY_PATH = '.status.conditions[?(@.type=="Ready")].status'
#: Keywords the API server forbids inside oneOf/anyOf/allOf/not of a structural schema.
JUNCTOR_FORBIDDEN = {"type", "description", "default", "additionalProperties", "nullable"}


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = cases.schema_of(CRDS[kind])
    return schema


def walk(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema with its field path (``spec.versions[].name``, ``spec.map{}``)."""
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}" if path else name)
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def field_paths(kind: str) -> list[str]:
    """Paths of the documented fields: everything under spec and status."""
    return [
        path
        for path, _ in walk(schema_of(kind), "")
        if path.startswith(("spec.", "status.")) and not path.endswith(("[]", "{}"))
    ]


def doc_path(path: str) -> str:
    """How docs/api.md writes a field path: map entries as `.<key>`."""
    return path.replace("{}", ".<key>")


# --- Files and names ---------------------------------------------------------------------


def test_one_file_per_kind_named_after_the_plural() -> None:
    files = sorted(p.name for p in cases.CRD_DIR.glob("*.yaml"))
    assert files == sorted(f"kubearts.io_{plural}.yaml" for plural, _ in NAMES.values())
    assert sorted(CRDS) == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_names_group_and_scope(kind: str) -> None:
    crd = CRDS[kind]
    plural, short = NAMES[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.kubearts.io"
    assert crd["spec"]["group"] == "kubearts.io"
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert names["kind"] == kind
    assert names["plural"] == plural
    assert names["singular"] == kind.lower()
    assert names["shortNames"] == [short]
    assert names["categories"] == ["kubearts"]


def test_short_names_collide_with_nothing_common() -> None:
    shorts = [CRDS[kind]["spec"]["names"]["shortNames"][0] for kind in KINDS]
    assert len(set(shorts)) == len(shorts)
    assert not set(shorts) & TAKEN_SHORT_NAMES


@pytest.mark.parametrize("kind", KINDS)
def test_single_served_storage_version_with_status_subresource(kind: str) -> None:
    versions = CRDS[kind]["spec"]["versions"]
    assert [v["name"] for v in versions] == ["v1alpha1"]
    assert versions[0]["served"] is True
    assert versions[0]["storage"] is True
    assert "status" in versions[0]["subresources"]


# --- Schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    # metadata is the exception the API server imposes: it allows only `type` there.
    missing = [
        path
        for path, schema in walk(schema_of(kind), "")
        if not path.startswith("metadata") and not schema.get("description", "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_node_is_typed_or_explicitly_free_form(kind: str) -> None:
    untyped = [
        path
        for path, schema in walk(schema_of(kind), "")
        if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


@pytest.mark.parametrize("kind", KINDS)
def test_free_form_fields_say_so(kind: str) -> None:
    """Unknown fields are kept only where the description explains why (free-form maps)."""
    for path, schema in walk(schema_of(kind), ""):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            assert "free-form" in schema["description"].lower(), path


@pytest.mark.parametrize("kind", KINDS)
def test_no_features_newer_than_kubernetes_1_20(kind: str) -> None:
    text = str(CRDS[kind])
    assert "x-kubernetes-validations" not in text


@pytest.mark.parametrize("kind", KINDS)
def test_junctors_only_constrain_required_fields(kind: str) -> None:
    for path, schema in walk(schema_of(kind), ""):
        for junctor in ("oneOf", "anyOf", "allOf", "not"):
            for branch in schema.get(junctor, []):
                assert not set(branch) & JUNCTOR_FORBIDDEN, f"{path}.{junctor}"


@pytest.mark.parametrize("kind", KINDS)
def test_required_fields_exist(kind: str) -> None:
    for path, schema in walk(schema_of(kind), ""):
        for name in schema.get("required", []):
            assert name in schema.get("properties", {}), f"{path} requires unknown {name}"


@pytest.mark.parametrize("kind", KINDS)
def test_list_map_keys_are_required_or_defaulted(kind: str) -> None:
    for path, schema in walk(schema_of(kind), ""):
        for key in schema.get("x-kubernetes-list-map-keys", []):
            item = schema["items"]
            assert key in item.get("required", []) or "default" in item["properties"][key], path


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_satisfy_their_own_schema(kind: str) -> None:
    for path, schema in walk(schema_of(kind), ""):
        if "default" in schema:
            errors = list(jsonschema.Draft4Validator(schema).iter_errors(schema["default"]))
            assert errors == [], path


@pytest.mark.parametrize("kind", KINDS)
def test_status_has_the_common_fields(kind: str) -> None:
    status = schema_of(kind)["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    assert status["phase"]["type"] == "string"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    condition = conditions["items"]
    assert condition["required"] == ["type", "status"]
    assert set(condition["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert condition["properties"]["lastTransitionTime"]["format"] == "date-time"


@pytest.mark.parametrize("kind", KINDS)
def test_names_are_dns_labels(kind: str) -> None:
    name = schema_of(kind)["properties"]["metadata"]["properties"]["name"]
    assert name["maxLength"] == 63
    assert re.fullmatch(name["pattern"], "flowers-resnet")
    assert not re.fullmatch(name["pattern"], "flowers.resnet")


# --- Printer columns -----------------------------------------------------------------------


def _schema_at(kind: str, json_path: str) -> dict[str, Any] | None:
    """The schema a printer column's JSONPath points at, or None if it points nowhere."""
    node: dict[str, Any] | None = schema_of(kind)
    steps = re.sub(r"\[\?\(.*?\)\]|\[\d+\]", "[]", json_path).strip(".").split(".")
    for step in steps:
        name, is_list = step.removesuffix("[]"), step.endswith("[]")
        if node is None or name not in node.get("properties", {}):
            return None
        node = node["properties"][name]
        if is_list:
            node = node.get("items")
    return node


@pytest.mark.parametrize("kind", KINDS)
def test_ready_reason_and_age_columns(kind: str) -> None:
    columns = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Ready"]["jsonPath"] == READY_PATH
    assert by_name["Reason"]["jsonPath"] == READY_PATH.removesuffix("status") + "reason"
    assert by_name["Age"] == {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since creation.",
    }
    assert columns[-1]["name"] == "Age"


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_declared_fields(kind: str) -> None:
    for column in CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata"):
            continue
        target = _schema_at(kind, column["jsonPath"])
        assert target is not None, column["jsonPath"]
        expected = {"date": "string"}.get(column["type"], column["type"])
        assert target["type"] == expected, column["name"]


# --- Examples --------------------------------------------------------------------------------


def test_examples_cover_the_pipeline_in_order() -> None:
    kinds = [[doc["kind"] for doc in docs] for docs in EXAMPLES.values()]
    assert list(EXAMPLES) == [
        "01-dataset.yaml",
        "02-subscription.yaml",
        "03-trainingjob.yaml",
        "04-modelconversion.yaml",
        "05-model.yaml",
        "06-inferenceservice.yaml",
    ]
    assert [k[0] for k in kinds] == [
        "Dataset",
        "Subscription",
        "TrainingJob",
        "ModelConversion",
        "Model",
        "InferenceService",
    ]


EXAMPLE_DOCS = [
    pytest.param(doc, id=f"{name}:{doc['metadata']['name']}")
    for name, docs in EXAMPLES.items()
    for doc in docs
]


@pytest.mark.parametrize("doc", EXAMPLE_DOCS)
def test_example_satisfies_its_schema(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "kubearts.io/v1alpha1"
    assert "namespace" not in doc["metadata"], "examples apply to the current namespace"
    jsonschema.Draft4Validator(schema_of(doc["kind"])).validate(doc)


def test_examples_reference_each_other() -> None:
    """Each step names the objects of the steps before it, as a user applies them."""
    docs = [doc for docs in EXAMPLES.values() for doc in docs]
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc["spec"]
    job = next(iter(by_kind["TrainingJob"].values()))
    assert job["algorithm"]["subscription"] in by_kind["Subscription"]
    for channel in job["inputs"]:
        versions = by_kind["Dataset"][channel["dataset"]]["versions"]
        assert channel["version"] in [v["name"] for v in versions]
    for conversion in by_kind["ModelConversion"].values():
        assert conversion["source"]["trainingJob"] in by_kind["TrainingJob"]
    for model in by_kind["Model"].values():
        for version in model["versions"]:
            source = version["source"]
            assert (
                source.get("trainingJob", "") in by_kind["TrainingJob"]
                or source.get("conversion", "") in by_kind["ModelConversion"]
            )
    for service in by_kind["InferenceService"].values():
        target = by_kind["Model"][service["model"]["name"]]
        assert service["model"]["version"] in [v["version"] for v in target["versions"]]


def test_examples_follow_the_documented_pipeline() -> None:
    docs = {doc["kind"]: doc["spec"] for docs in EXAMPLES.values() for doc in docs}
    assert docs["Dataset"]["source"]["uri"] == "gallery://flowers"
    assert docs["Dataset"]["versions"][0] == {
        "name": "v1",
        "trainRatio": 0.8,
        "seed": 0,
        "stratified": True,
    }
    assert (docs["Subscription"]["algorithm"], docs["Subscription"]["version"]) == (
        "resnet_v1_50",
        "latest",
    )
    assert docs["TrainingJob"]["inputs"][0]["version"] == "v1"
    assert docs["ModelConversion"]["template"] == "TF-FrozenGraph-To-Ascend-C32"
    assert docs["ModelConversion"]["options"]["inputShape"] == "images:1,224,224,3"
    services = [doc["spec"] for doc in EXAMPLES["06-inferenceservice.yaml"]]
    assert [(s["model"]["version"], s["resources"]["pool"]) for s in services] == [
        ("1.0.0-ascend", "ascend310"),
        ("1.0.0", "cpu"),
    ]


# --- Invalid cases ---------------------------------------------------------------------------


def test_every_kind_has_at_least_five_refusal_cases() -> None:
    counts = dict.fromkeys(KINDS, 0)
    for case in INVALID_CASES:
        counts[case["kind"]] += 1
    assert min(counts.values()) >= 5, counts


def test_refusal_case_ids_are_unique() -> None:
    ids = [case["id"] for case in INVALID_CASES]
    assert len(ids) == len(set(ids))


def _error_fields(error: jsonschema.ValidationError) -> Iterator[str]:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    path = path.lstrip(".")
    if error.validator == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        assert missing is not None
        yield f"{path}.{missing.group(1)}".lstrip(".")
    else:
        yield path
    for sub in error.context or []:
        yield from _error_fields(sub)


OFFLINE_CASES = [
    pytest.param(case, id=case["id"]) for case in INVALID_CASES if case.get("offline", True)
]


@pytest.mark.parametrize("case", OFFLINE_CASES)
def test_invalid_case_breaks_the_schema_at_its_field(case: dict[str, Any]) -> None:
    manifest = cases.invalid_manifest(case)
    validator = jsonschema.Draft4Validator(schema_of(case["kind"]))
    fields = {f for error in validator.iter_errors(manifest) for f in _error_fields(error)}
    assert case["field"] in fields


# --- Documentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_api_reference_documents_every_field(kind: str) -> None:
    text = cases.API_DOC.read_text(encoding="utf-8")
    section = text.split(f"\n## {kind}\n", 1)[1].split("\n## ", 1)[0]
    undocumented = [path for path in field_paths(kind) if f"`{doc_path(path)}`" not in section]
    assert undocumented == []
