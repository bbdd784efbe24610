"""Subscriptions on a real control plane: subscribing to a gallery algorithm pins it,
gallery edits show up in status without ever moving the pin, and a gallery edit reaches
exactly the Subscriptions of that gallery (no timer per Subscription).

Each test gets a gallery of its own: the chart's default gallery
(charts/kubearts/files/gallery/default.yaml) copied into a ConfigMap in the operator
namespace under a unique ``kubearts.io/gallery`` name, which the test's Subscriptions name
in ``spec.gallery``. Tests therefore never see each other's gallery edits. Every wait polls
the object with a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner

from clusterkit import Kube, wait_for
from kubearts import gallery as g
from kubearts import subscription_plan
from kubearts.constants import FINALIZER, GALLERY_LABEL, GALLERY_REVISION_ANNOTATION

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
DEFAULT_GALLERY = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"
OPERATOR_NAMESPACE = "kubearts-system"
RESNET = "resnet_v1_50"
RESNET_KEY = f"algorithm.{RESNET}.yaml"
#: Generous for a loaded 2-core machine; a sync takes well under a second.
TIMEOUT_S = 60.0


def default_gallery_data() -> dict[str, str]:
    data: dict[str, str] = yaml.safe_load(DEFAULT_GALLERY.read_text(encoding="utf-8"))
    return data


def newest_version(data: dict[str, str], algorithm: str) -> g.AlgorithmVersion:
    """What ``latest`` means for ``algorithm`` of the gallery ``data``, computed by the same
    parser the operator uses, so the test follows the gallery file rather than copying it."""
    parsed = g.parse_gallery([{"metadata": {"name": "file"}, "data": data}], name=None)
    newest = g.latest_version(parsed.algorithms[algorithm])
    assert newest is not None
    return newest


def versions(data: dict[str, str], algorithm: str) -> list[str]:
    """The versions of ``algorithm`` in the gallery ``data``, oldest first."""
    parsed = g.parse_gallery([{"metadata": {"name": "file"}, "data": data}], name=None)
    return [v["version"] for v in parsed.algorithms[algorithm]["versions"]]


def with_new_version(entry_text: str, version: str) -> str:
    """The algorithm entry with one more version, a copy of its last one."""
    entry = yaml.safe_load(entry_text)
    entry["versions"].append({**entry["versions"][-1], "version": version})
    return yaml.safe_dump(entry, sort_keys=False)


@dataclass
class Gallery:
    """A test's own gallery: one ConfigMap in the operator namespace."""

    kube: Kube
    name: str
    """The ``kubearts.io/gallery`` label value, i.e. what ``spec.gallery`` names."""
    data: dict[str, str]

    @property
    def configmap(self) -> str:
        return f"gallery-{self.name}"

    def manifest(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.configmap,
                "namespace": OPERATOR_NAMESPACE,
                "labels": {GALLERY_LABEL: self.name},
            },
            "data": self.data,
        }

    def publish(self) -> None:
        """Create or replace the ConfigMap with ``data``."""
        text = json.dumps(self.manifest())
        created = self.kube.kubectl("create", "-f", "-", input=text, check=False)
        if created.returncode != 0:
            self.kube.kubectl("replace", "-f", "-", input=text)

    def remove_key(self, key: str) -> None:
        patch = json.dumps([{"op": "remove", "path": f"/data/{key}"}])
        self.kube.kubectl(
            "patch",
            "configmap",
            self.configmap,
            "-n",
            OPERATOR_NAMESPACE,
            "--type=json",
            "-p",
            patch,
        )

    def delete(self) -> None:
        self.kube.kubectl(
            "delete", "configmap", self.configmap, "-n", OPERATOR_NAMESPACE, "--ignore-not-found"
        )


@pytest.fixture
def new_gallery(kube: Kube, kubearts_operator: KopfRunner) -> Iterator[Gallery]:
    """A unique gallery holding the default gallery's entries, not yet published."""
    made = Gallery(kube, f"t-{uuid.uuid4().hex[:10]}", default_gallery_data())
    yield made
    made.delete()


@pytest.fixture
def gallery(new_gallery: Gallery) -> Gallery:
    """A unique gallery holding the default gallery's entries, published."""
    new_gallery.publish()
    return new_gallery


def subscribe(
    kube: Kube, namespace: str, gallery_name: str, algorithm: str, version: str, name: str = "sub"
) -> str:
    kube.apply(
        {
            "apiVersion": "kubearts.io/v1alpha1",
            "kind": "Subscription",
            "metadata": {"name": name},
            "spec": {"gallery": gallery_name, "algorithm": algorithm, "version": version},
        },
        namespace,
    )
    return name


def get_subscription(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return kube.get("kasub", name, "-n", namespace)


def wait_subscription(
    kube: Kube,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    def current() -> dict[str, Any] | None:
        obj = get_subscription(kube, namespace, name)
        return obj if check(obj) else None

    return wait_for(current, TIMEOUT_S, f"Subscription {namespace}/{name}: {what}")


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def wait_ready(kube: Kube, namespace: str, name: str, reason: str = "Resolved") -> dict[str, Any]:
    kube.wait_condition(
        "kasub", name, "-n", namespace, type="Ready", reason=reason, timeout=TIMEOUT_S
    )
    return get_subscription(kube, namespace, name)


def pin(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj["status"]
    return {key: status[key] for key in subscription_plan.PIN_FIELDS if key in status}


# --- Resolving -------------------------------------------------------------------------------


def test_latest_pins_the_newest_version(kube: Kube, namespace: str, gallery: Gallery) -> None:
    expected = newest_version(gallery.data, RESNET)
    name = subscribe(kube, namespace, gallery.name, RESNET, "latest")

    status = wait_ready(kube, namespace, name)["status"]

    assert (status["requestedVersion"], status["resolvedVersion"]) == (
        "latest",
        expected["version"],
    )
    assert (status["gallery"], status["algorithm"]) == (gallery.name, RESNET)
    assert status["displayName"] == "ResNet_v1_50"
    assert status["image"] == expected["image"]
    assert status["entrypoint"] == expected["entrypoint"]
    assert status["hyperparameters"] == json.loads(json.dumps(expected["hyperparameters"]))
    assert status["trainingDevices"] == ["cpu", "gpu", "ascend910"]
    assert status["inferenceDevices"] == ["cpu", "gpu", "ascend310"]
    assert status["contract"] == {
        "requiresSplitVersion": True,
        "formats": ["ImageFolder", "Manifest"],
    }
    assert [o["format"] for o in status["outputs"]] == ["saved_model", "frozen_graph"]
    assert status["versionDigest"] == g.version_digest(expected)
    assert (status["availableVersions"], status["latestVersion"]) == ([], expected["version"])
    assert status["phase"] == "Ready"


def test_status_is_reconciled_for_the_current_generation(
    kube: Kube, namespace: str, gallery: Gallery
) -> None:
    name = subscribe(kube, namespace, gallery.name, RESNET, "latest")
    obj = wait_ready(kube, namespace, name)
    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in obj["status"]["conditions"]} == {generation}
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]} == {
        "Ready": "True",
        "Synced": "True",
        "UpdateAvailable": "False",
    }


@pytest.mark.parametrize(
    ("algorithm", "version", "reason", "says"),
    [
        pytest.param(
            "resnet_v1_5000", "latest", "AlgorithmNotFound", "did you mean", id="unknown-algorithm"
        ),
        pytest.param(
            RESNET,
            "9.9.9",
            "VersionNotFound",
            f"available: {', '.join(versions(default_gallery_data(), RESNET))}",
            id="unknown-version",
        ),
    ],
)
def test_unresolvable_subscription_is_not_ready(
    kube: Kube,
    namespace: str,
    gallery: Gallery,
    algorithm: str,
    version: str,
    reason: str,
    says: str,
) -> None:
    name = subscribe(kube, namespace, gallery.name, algorithm, version)

    ready = kube.wait_condition(
        "kasub", name, "-n", namespace, type="Ready", status="False", reason=reason,
        timeout=TIMEOUT_S,
    )  # fmt: skip

    assert says in ready["message"]
    status = get_subscription(kube, namespace, name)["status"]
    assert conditions({"status": status})["Synced"]["reason"] == reason
    assert "resolvedVersion" not in status
    assert status["phase"] == "NotReady"


def test_missing_gallery_is_reported_and_picked_up_once_published(
    kube: Kube, namespace: str, new_gallery: Gallery
) -> None:
    name = subscribe(kube, namespace, new_gallery.name, RESNET, "latest")
    ready = kube.wait_condition(
        "kasub", name, "-n", namespace, type="Ready", status="False",
        reason="GalleryUnavailable", timeout=TIMEOUT_S,
    )  # fmt: skip
    assert new_gallery.name in ready["message"]

    new_gallery.publish()

    status = wait_ready(kube, namespace, name)["status"]
    assert status["resolvedVersion"] == newest_version(new_gallery.data, RESNET)["version"]


def test_algorithm_added_to_the_gallery_later_is_resolved(
    kube: Kube, namespace: str, gallery: Gallery
) -> None:
    name = subscribe(kube, namespace, gallery.name, "resnet_v1_50_custom", "latest")
    kube.wait_condition(
        "kasub", name, "-n", namespace, type="Ready", status="False",
        reason="AlgorithmNotFound", timeout=TIMEOUT_S,
    )  # fmt: skip

    gallery.data["algorithm.resnet_v1_50_custom.yaml"] = gallery.data[RESNET_KEY]
    gallery.publish()

    status = wait_ready(kube, namespace, name)["status"]
    assert status["algorithm"] == "resnet_v1_50_custom"


# --- Gallery edits never move a pin ----------------------------------------------------------


def test_new_gallery_version_is_offered_without_moving_the_pin(
    kube: Kube, namespace: str, gallery: Gallery
) -> None:
    name = subscribe(kube, namespace, gallery.name, RESNET, "latest")
    before = wait_ready(kube, namespace, name)
    pinned = before["status"]["resolvedVersion"]

    gallery.data[RESNET_KEY] = with_new_version(gallery.data[RESNET_KEY], "9.0.0")
    gallery.publish()

    kube.wait_condition("kasub", name, "-n", namespace, type="UpdateAvailable", timeout=TIMEOUT_S)
    after = get_subscription(kube, namespace, name)
    assert pin(after) == pin(before)
    assert after["status"]["resolvedVersion"] == pinned
    assert after["status"]["availableVersions"] == ["9.0.0"]
    assert after["status"]["latestVersion"] == "9.0.0"
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    update = conditions(after)["UpdateAvailable"]
    assert "9.0.0" in update["message"]
    assert "spec.version" in update["message"]
    # Ready and Synced did not flip, so their transition times stay.
    for kind in ("Ready", "Synced"):
        assert conditions(after)[kind]["status"] == "True"
        assert (
            conditions(after)[kind]["lastTransitionTime"]
            == conditions(before)[kind]["lastTransitionTime"]
        )


def test_editing_spec_version_moves_the_pin(kube: Kube, namespace: str, gallery: Gallery) -> None:
    oldest, *newer = versions(gallery.data, RESNET)
    newest = newest_version(gallery.data, RESNET)
    name = subscribe(kube, namespace, gallery.name, RESNET, oldest)
    before = wait_ready(kube, namespace, name)
    assert before["status"]["resolvedVersion"] == oldest
    assert conditions(before)["UpdateAvailable"]["status"] == "True"
    assert before["status"]["availableVersions"] == newer

    subscribe(kube, namespace, gallery.name, RESNET, newest["version"], name=name)

    after = wait_subscription(
        kube,
        namespace,
        name,
        lambda obj: (obj.get("status") or {}).get("resolvedVersion") == newest["version"],
        f"pinned to {newest['version']}",
    )
    assert after["status"]["requestedVersion"] == newest["version"]
    assert after["status"]["availableVersions"] == []
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert conditions(after)["UpdateAvailable"]["status"] == "False"
    assert after["status"]["hyperparameters"] == json.loads(json.dumps(newest["hyperparameters"]))


@pytest.mark.parametrize(
    ("remove", "synced_reason"),
    [
        pytest.param(lambda gal: gal.remove_key(RESNET_KEY), "AlgorithmRemoved", id="entry"),
        pytest.param(lambda gal: gal.delete(), "GalleryUnavailable", id="whole-gallery"),
    ],
)
def test_removing_the_gallery_entry_keeps_the_pinned_data(
    kube: Kube,
    namespace: str,
    gallery: Gallery,
    remove: Callable[[Gallery], None],
    synced_reason: str,
) -> None:
    name = subscribe(kube, namespace, gallery.name, RESNET, "latest")
    before = wait_ready(kube, namespace, name)

    remove(gallery)

    kube.wait_condition(
        "kasub", name, "-n", namespace, type="Synced", status="False", reason=synced_reason,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    after = get_subscription(kube, namespace, name)
    assert pin(after) == pin(before)
    ready = conditions(after)["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Pinned")
    assert after["status"]["phase"] == "Ready"


# --- Gallery changes reach exactly their Subscriptions ---------------------------------------


@pytest.fixture
def other_gallery(kube: Kube, kubearts_operator: KopfRunner) -> Iterator[Gallery]:
    """A second published gallery, to check what an edit of the first one leaves alone."""
    made = Gallery(kube, f"t-{uuid.uuid4().hex[:10]}", default_gallery_data())
    made.publish()
    yield made
    made.delete()


def test_a_gallery_edit_re_evaluates_only_its_subscribers(
    kube: Kube, namespace: str, gallery: Gallery, other_gallery: Gallery
) -> None:
    mine = subscribe(kube, namespace, gallery.name, RESNET, "latest", name="mine")
    theirs = subscribe(kube, namespace, other_gallery.name, RESNET, "latest", name="theirs")
    wait_ready(kube, namespace, mine)
    untouched = wait_ready(kube, namespace, theirs)

    gallery.data[RESNET_KEY] = with_new_version(gallery.data[RESNET_KEY], "9.0.0")
    gallery.publish()

    kube.wait_condition("kasub", mine, "-n", namespace, type="UpdateAvailable", timeout=TIMEOUT_S)
    woken = get_subscription(kube, namespace, mine)
    assert GALLERY_REVISION_ANNOTATION in woken["metadata"].get("annotations", {})
    after = get_subscription(kube, namespace, theirs)
    # The other gallery's Subscription was neither woken nor re-evaluated.
    assert GALLERY_REVISION_ANNOTATION not in after["metadata"].get("annotations", {})
    assert after["status"] == untouched["status"]


def test_subscriptions_carry_no_finalizer_since_nothing_runs_per_object_on_a_timer(
    kube: Kube, namespace: str, gallery: Gallery
) -> None:
    # kopf puts its finalizer on every object that has a timer or daemon, to stop it first.
    name = subscribe(kube, namespace, gallery.name, RESNET, "latest")
    obj = wait_ready(kube, namespace, name)
    assert FINALIZER not in (obj["metadata"].get("finalizers") or [])


# --- kubectl ---------------------------------------------------------------------------------


def test_kubectl_get_lists_algorithm_version_and_readiness(
    kube: Kube, namespace: str, gallery: Gallery
) -> None:
    parsed = g.parse_gallery([{"metadata": {"name": "file"}, "data": gallery.data}], name=None)
    first = parsed.algorithms[RESNET]["versions"][0]
    oldest, latest = first["version"], newest_version(gallery.data, RESNET)["version"]
    subscribe(kube, namespace, gallery.name, RESNET, oldest, name="resnet")
    subscribe(kube, namespace, gallery.name, "no_such_net", "latest", name="missing")
    wait_ready(kube, namespace, "resnet")
    kube.wait_condition(
        "kasub", "missing", "-n", namespace, type="Ready", status="False", timeout=TIMEOUT_S
    )

    header, rows = table(kube.kubectl("get", "kasub", "-n", namespace).stdout)

    assert header == ["NAME", "ALGORITHM", "VERSION", "READY", "REASON", "AGE"]
    assert rows["resnet"] | {"AGE": "-"} == {
        "NAME": "resnet",
        "ALGORITHM": RESNET,
        "VERSION": oldest,
        "READY": "True",
        "REASON": "Resolved",
        "AGE": "-",
    }
    assert rows["missing"] | {"AGE": "-"} == {
        "NAME": "missing",
        "ALGORITHM": "no_such_net",
        "VERSION": "",
        "READY": "False",
        "REASON": "AlgorithmNotFound",
        "AGE": "-",
    }

    _, wide = table(kube.kubectl("get", "kasub", "resnet", "-n", namespace, "-o", "wide").stdout)
    assert wide["resnet"] | {"AGE": "-"} == {
        "NAME": "resnet",
        "ALGORITHM": RESNET,
        "VERSION": oldest,
        "READY": "True",
        "REASON": "Resolved",
        "REQUESTED": oldest,
        "LATEST": latest,
        "GALLERY": gallery.name,
        "IMAGE": first["image"],
        "PHASE": "Ready",
        "AGE": "-",
    }


def table(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """Parse ``kubectl get`` output by column position (an unset field prints blank)."""
    lines = text.splitlines()
    columns = list(re.finditer(r"\S+", lines[0]))
    header = [column.group() for column in columns]
    starts = [column.start() for column in columns]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[1:]:
        cells = [
            line[start : starts[i + 1] if i + 1 < len(starts) else None].strip()
            for i, start in enumerate(starts)
        ]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return header, rows
