"""Pure helpers shared by the CRD tests (tests/cluster/test_crds.py, offline
tests/unit/test_crd_schemas.py): loading crds/ and examples/, building the invalid
manifests of invalid.yaml, and matching field paths in API server messages."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = ROOT / "crds"
EXAMPLES_DIR = ROOT / "examples"
API_DOC = ROOT / "docs" / "api.md"
CASES_DIR = ROOT / "tests" / "cluster" / "crd_cases"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def load_crds() -> dict[str, dict[str, Any]]:
    """The CRDs in crds/, by kind."""
    return {
        doc["spec"]["names"]["kind"]: doc
        for path in sorted(CRD_DIR.glob("*.yaml"))
        for doc in _documents(path)
    }


def load_examples() -> dict[str, list[dict[str, Any]]]:
    """Every document of examples/, by file name."""
    return {path.name: _documents(path) for path in sorted(EXAMPLES_DIR.glob("*.yaml"))}


def example_of(kind: str) -> dict[str, Any]:
    """A deep copy of the first example manifest of ``kind``."""
    for docs in load_examples().values():
        for doc in docs:
            if doc["kind"] == kind:
                return copy.deepcopy(doc)
    raise LookupError(f"examples/ has no {kind}")


def schema_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI schema of a CRD's only version."""
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def invalid_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(
        (CASES_DIR / "invalid.yaml").read_text(encoding="utf-8")
    )
    return cases


def statuses() -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = yaml.safe_load(
        (CASES_DIR / "statuses.yaml").read_text(encoding="utf-8")
    )
    return samples


# --- Editing manifests by path ---------------------------------------------------------------

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(path: str) -> list[str | int]:
    """``spec.versions[0].name`` -> ``["spec", "versions", 0, "name"]``."""
    return [key if key else int(index) for key, index in _STEP.findall(path)]


def get_path(doc: Any, path: str) -> Any:
    node = doc
    for step in parse_path(path):
        node = node[step]
    return node


def _parent(doc: Any, steps: list[str | int]) -> Any:
    node = doc
    for step in steps[:-1]:
        node = node[step]
    return node


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` to ``value``; a list index one past the end appends."""
    steps = parse_path(path)
    parent = _parent(doc, steps)
    last = steps[-1]
    if isinstance(last, int) and last == len(parent):
        parent.append(value)
    else:
        parent[last] = value


def unset_path(doc: dict[str, Any], path: str) -> None:
    steps = parse_path(path)
    del _parent(doc, steps)[steps[-1]]


def invalid_manifest(case: Mapping[str, Any]) -> dict[str, Any]:
    """The kind's example with the case's ``set`` and ``unset`` changes applied."""
    manifest = example_of(case["kind"])
    for path, value in case.get("set", {}).items():
        set_path(manifest, path, value)
    for path in case.get("unset", []):
        unset_path(manifest, path)
    return manifest


def names_field(message: str, field: str) -> bool:
    """Whether ``message`` names ``field`` itself (not merely a longer path starting with it).

    List indices are ignored on both sides: Kubernetes 1.20 leaves them out of the paths of
    schema errors inside lists (``spec.versions.trainRatio``) but keeps them elsewhere.
    """
    plain = re.sub(r"\[\d+\]", "", field)
    text = re.sub(r"\[\d+\]", "", message)
    return re.search(rf"(?<![\w.]){re.escape(plain)}(?![\w.\[])", text) is not None
