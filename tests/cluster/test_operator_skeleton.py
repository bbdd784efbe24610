"""Every kind is reconciled far enough to report an honest status: observedGeneration and
a Ready condition (never a fake success)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner

from clusterkit import Kube, wait_for

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def example_objects() -> list[dict]:
    return [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize(
    "obj", example_objects(), ids=lambda o: f"{o['kind']}-{o['metadata']['name']}"
)
def test_each_kind_gets_observed_generation_and_ready_condition(
    kube: Kube, kubearts_operator: KopfRunner, namespace: str, obj: dict
) -> None:
    kube.apply(obj, namespace)
    kind, name = obj["kind"].lower(), obj["metadata"]["name"]

    def reconciled() -> dict | None:
        current = kube.get(f"{kind}.kubearts.io", name, "-n", namespace)
        status = current.get("status") or {}
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        if status.get("observedGeneration") == current["metadata"]["generation"] and ready:
            return ready[0]
        return None

    ready = wait_for(reconciled, 60, f"{kind}/{name} to be reconciled")
    assert ready["status"] in {"True", "False", "Unknown"}
    assert ready["reason"]
