"""Gallery data for unit tests: algorithm and version documents, ConfigMaps as the API
returns them, small parsed galleries."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import yaml

from kubearts import gallery as g
from kubearts import subscription_plan
from kubearts.constants import GALLERY_LABEL
from kubearts.handlers import common


def version_doc(number: str, **overrides: object) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "version": number,
        "image": f"registry.example/trainer:{number}",
        "entrypoint": {"command": ["python", "-m", "trainer"], "args": ["--model", "net"]},
        "hyperparameters": [
            {"name": "epochs", "type": "int", "default": 10, "minimum": 1, "maximum": 100}
        ],
        "trainingDevices": ["cpu", "gpu"],
        "inferenceDevices": ["cpu"],
        "contract": {"requiresSplitVersion": True, "formats": ["ImageFolder"]},
        "outputs": [
            {
                "format": "saved_model",
                "path": "saved_model",
                "inputs": [{"name": "images", "dtype": "float32", "shape": [-1, -1, -1, 3]}],
                "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, -1]}],
            }
        ],
    }
    doc.update(overrides)
    return doc


def algorithm_doc(*versions: dict[str, Any], **overrides: object) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "displayName": "Net",
        "task": "image_classification",
        "framework": "TensorFlow-2.x",
        "versions": list(versions),
    }
    doc.update(overrides)
    return doc


def configmap(name: str, data: dict[str, object], gallery: str = "default") -> dict[str, Any]:
    """A ConfigMap as the API returns it: values are YAML text."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {GALLERY_LABEL: gallery}},
        "data": {k: v if isinstance(v, str) else yaml.safe_dump(v) for k, v in data.items()},
    }


def net_gallery(*numbers: str, name: str = "net") -> g.Gallery:
    doc = algorithm_doc(*(version_doc(n) for n in numbers))
    return g.parse_gallery([configmap("gallery-a", {f"algorithm.{name}.yaml": doc})])


# --- evaluating Subscriptions ----------------------------------------------------------------

LATEST_SPEC = {"gallery": "default", "algorithm": "net", "version": "latest"}


def api_roundtrip(status: dict[str, Any]) -> dict[str, Any]:
    """What reading the status back from the API server gives: JSON, no shared objects."""
    result: dict[str, Any] = json.loads(json.dumps(status))
    return result


def sync(
    gallery: g.Gallery | None,
    spec: dict[str, str],
    previous: dict[str, Any] | None,
    generation: int = 1,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One evaluation of a Subscription written as the handler writes it (the verdict through
    ``common.status_changes``, then a merge patch): the status afterwards."""
    verdict = subscription_plan.subscription_sync(gallery, spec, previous)
    changes = common.status_changes(
        previous, generation, verdict.updates, fields=verdict.fields, now=now
    )
    merged = {**(previous or {}), **changes}
    return {key: value for key, value in merged.items() if value is not None}


def pin_of(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in subscription_plan.PIN_FIELDS if k in status}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
