"""Specification of Subscription pinning (kubearts.subscription_plan): what is pinned, when a
pin moves, and which conditions say so. Each evaluation is written as the handler writes
it (common.status_changes), so the tests read whole statuses."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from gallerykit import (
    LATEST_SPEC,
    algorithm_doc,
    api_roundtrip,
    conditions,
    configmap,
    net_gallery,
    pin_of,
    sync,
    version_doc,
)

from kubearts import gallery as g
from kubearts import subscription_plan

# --- subscriptions: resolving and pinning ----------------------------------------------------


def test_latest_pins_the_newest_version() -> None:
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, None)
    assert status["resolvedVersion"] == "1.1.0"
    assert status["requestedVersion"] == "latest"
    assert status["image"] == "registry.example/trainer:1.1.0"
    assert status["hyperparameters"][0]["name"] == "epochs"
    assert status["availableVersions"] == []
    assert conditions(status) == {
        "Ready": ("True", "Resolved"),
        "Synced": ("True", "Resolved"),
        "UpdateAvailable": ("False", "UpToDate"),
    }


def test_an_exact_older_version_reports_the_newer_ones() -> None:
    spec = {**LATEST_SPEC, "version": "1.0.0"}
    status = sync(net_gallery("1.0.0", "1.1.0", "1.2.0"), spec, None)
    assert status["resolvedVersion"] == "1.0.0"
    assert status["availableVersions"] == ["1.1.0", "1.2.0"]
    assert status["latestVersion"] == "1.2.0"
    assert conditions(status)["UpdateAvailable"] == ("True", "UpdateAvailable")


def test_a_new_gallery_version_does_not_move_a_latest_pin() -> None:
    first = api_roundtrip(sync(net_gallery("1.0.0"), LATEST_SPEC, None))
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, first)
    assert pin_of(status) == pin_of(first)
    assert status["resolvedVersion"] == "1.0.0"
    assert status["availableVersions"] == ["1.1.0"]
    assert conditions(status) == {
        "Ready": ("True", "Resolved"),
        "Synced": ("True", "Resolved"),
        "UpdateAvailable": ("True", "UpdateAvailable"),
    }
    message = next(c for c in status["conditions"] if c["type"] == "UpdateAvailable")["message"]
    assert "1.1.0" in message
    assert "spec.version" in message


def test_editing_spec_version_moves_the_pin() -> None:
    gallery = net_gallery("1.0.0", "1.1.0")
    first = api_roundtrip(sync(net_gallery("1.0.0"), LATEST_SPEC, None))
    status = sync(gallery, {**LATEST_SPEC, "version": "1.1.0"}, first)
    assert (status["resolvedVersion"], status["requestedVersion"]) == ("1.1.0", "1.1.0")
    assert conditions(status)["UpdateAvailable"] == ("False", "UpToDate")


def test_editing_spec_version_back_to_latest_repins_the_newest() -> None:
    spec = {**LATEST_SPEC, "version": "1.0.0"}
    first = api_roundtrip(sync(net_gallery("1.0.0", "1.1.0"), spec, None))
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, first)
    assert (status["resolvedVersion"], status["requestedVersion"]) == ("1.1.0", "latest")


def test_spec_version_defaults_to_latest() -> None:
    status = sync(net_gallery("1.0.0", "1.1.0"), {"algorithm": "net"}, None)
    assert (status["gallery"], status["requestedVersion"], status["resolvedVersion"]) == (
        "default",
        "latest",
        "1.1.0",
    )


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        pytest.param(
            {"algorithm": "nett"},
            "AlgorithmNotFound",
            "algorithm 'nett' is not in gallery 'default'; did you mean 'net'? available: net",
            id="unknown-algorithm",
        ),
        pytest.param(
            {"algorithm": "net", "version": "9.0.0"},
            "VersionNotFound",
            "available: 1.0.0, 1.1.0 (or 'latest')",
            id="unknown-version",
        ),
        pytest.param(
            {"algorithm": ""}, "InvalidSpec", "spec.algorithm is empty", id="empty-algorithm"
        ),
    ],
)
def test_unresolvable_spec_is_not_ready(spec: dict[str, str], reason: str, message: str) -> None:
    status = sync(net_gallery("1.0.0", "1.1.0"), spec, None)
    assert conditions(status)["Ready"] == ("False", reason)
    assert conditions(status)["Synced"] == ("False", reason)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert message in ready["message"]
    assert "resolvedVersion" not in status


def test_unknown_version_still_lists_the_versions_that_exist() -> None:
    status = sync(net_gallery("1.0.0", "1.1.0"), {"algorithm": "net", "version": "2.0.0"}, None)
    assert status["availableVersions"] == ["1.0.0", "1.1.0"]


def test_requesting_a_broken_version_says_it_is_invalid() -> None:
    doc = algorithm_doc(version_doc("1.0.0"), version_doc("1.1.0", image=""))
    gallery = g.parse_gallery([configmap("gallery-a", {"algorithm.net.yaml": doc})])
    status = sync(gallery, {"algorithm": "net", "version": "1.1.0"}, None)
    assert conditions(status)["Ready"] == ("False", "VersionInvalid")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "versions[1].image" in ready["message"]


def test_requesting_a_broken_algorithm_says_it_is_invalid() -> None:
    gallery = g.parse_gallery([configmap("gallery-a", {"algorithm.net.yaml": "task: [\n"})])
    status = sync(gallery, {"algorithm": "net"}, None)
    assert conditions(status)["Ready"] == ("False", "AlgorithmInvalid")


def test_unreadable_gallery_without_pin_is_unavailable() -> None:
    status = sync(None, LATEST_SPEC, None)
    assert conditions(status)["Ready"] == ("False", "GalleryUnavailable")


def test_a_failed_edit_keeps_the_old_pin_but_is_not_ready() -> None:
    first = api_roundtrip(sync(net_gallery("1.0.0"), LATEST_SPEC, None))
    status = sync(net_gallery("1.0.0"), {**LATEST_SPEC, "version": "3.0.0"}, first)
    assert pin_of(status) == pin_of(first)
    assert conditions(status)["Ready"] == ("False", "VersionNotFound")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "still pinned net 1.0.0" in ready["message"]


# --- subscriptions: the gallery changes under a pin ------------------------------------------


@pytest.fixture
def pinned() -> dict[str, Any]:
    """A subscription pinned to net 1.1.0 via latest, as read back from the API server."""
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, None)
    return api_roundtrip(dict(status))


@pytest.mark.parametrize(
    ("gallery", "synced_reason"),
    [
        pytest.param(
            net_gallery("1.0.0", "1.1.0", name="other"), "AlgorithmRemoved", id="algorithm-removed"
        ),
        pytest.param(net_gallery("1.0.0"), "VersionRemoved", id="version-removed"),
        pytest.param(None, "GalleryUnavailable", id="gallery-unreadable"),
        pytest.param(
            g.parse_gallery([], name="default"), "GalleryUnavailable", id="gallery-deleted"
        ),
        pytest.param(
            g.parse_gallery(
                [
                    configmap(
                        "gallery-a",
                        {
                            "algorithm.net.yaml": algorithm_doc(
                                version_doc("1.0.0"), version_doc("1.1.0", image="evil:latest")
                            )
                        },
                    )
                ]
            ),
            "VersionChanged",
            id="published-version-edited",
        ),
    ],
)
def test_gallery_changes_never_touch_the_pin(
    pinned: dict[str, Any], gallery: g.Gallery | None, synced_reason: str
) -> None:
    status = sync(gallery, LATEST_SPEC, pinned)
    assert pin_of(status) == pin_of(pinned)
    assert conditions(status)["Synced"] == ("False", synced_reason)
    assert conditions(status)["Ready"] == ("True", "Pinned")


def test_an_unchanged_gallery_keeps_the_subscription_in_sync(pinned: dict[str, Any]) -> None:
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, pinned)
    assert pin_of(status) == pin_of(pinned)
    assert conditions(status)["Synced"] == ("True", "Resolved")


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(LATEST_SPEC, id="resolved"),
        pytest.param({**LATEST_SPEC, "version": "1.0.0"}, id="update-available"),
        pytest.param({**LATEST_SPEC, "algorithm": "nett"}, id="algorithm-not-found"),
        pytest.param({**LATEST_SPEC, "version": "9.0.0"}, id="version-not-found"),
    ],
)
def test_a_resync_against_the_same_gallery_changes_nothing(spec: dict[str, str]) -> None:
    """Re-syncing on a timer must not rewrite the status (no churn, no new messages)."""
    gallery = net_gallery("1.0.0", "1.1.0")
    first = api_roundtrip(sync(gallery, spec, None, now=datetime(2025, 1, 1, tzinfo=UTC)))
    again = api_roundtrip(sync(gallery, spec, first, now=datetime(2025, 1, 2, tzinfo=UTC)))
    assert again == first


def test_removed_algorithm_has_no_updates(pinned: dict[str, Any]) -> None:
    status = sync(net_gallery("1.0.0", name="other"), LATEST_SPEC, pinned)
    assert status["availableVersions"] == []
    assert conditions(status)["UpdateAvailable"] == ("False", "AlgorithmRemoved")


def test_unreadable_gallery_keeps_the_last_known_updates(pinned: dict[str, Any]) -> None:
    previous = {**pinned, "availableVersions": ["1.2.0"]}
    status = sync(None, LATEST_SPEC, previous)
    assert status["availableVersions"] == ["1.2.0"]
    assert conditions(status)["UpdateAvailable"] == ("Unknown", "GalleryUnavailable")


def test_the_status_shares_nothing_with_the_gallery() -> None:
    gallery = net_gallery("1.0.0")
    before = copy.deepcopy(gallery.algorithms["net"])
    status = sync(gallery, LATEST_SPEC, None)
    status["hyperparameters"][0]["default"] = 99
    status["entrypoint"]["args"].append("--oops")
    assert gallery.algorithms["net"] == before


def test_a_gallery_for_another_name_is_a_programming_error() -> None:
    gallery = g.parse_gallery([configmap("gallery-a", {}, gallery="team")])
    with pytest.raises(ValueError, match=re.escape("passed for spec.gallery 'default'")):
        sync(gallery, LATEST_SPEC, None)


# --- subscriptions: conditions ---------------------------------------------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2025, 1, 2, tzinfo=UTC)


def test_status_carries_generation_phase_and_timestamps() -> None:
    status = sync(net_gallery("1.0.0"), LATEST_SPEC, None, generation=3, now=T0)
    assert status["observedGeneration"] == 3
    assert status["phase"] == "Ready"
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"2025-01-01T00:00:00Z"}
    assert {c["observedGeneration"] for c in status["conditions"]} == {3}


def test_an_unchanged_condition_keeps_its_transition_time() -> None:
    first = api_roundtrip(sync(net_gallery("1.0.0"), LATEST_SPEC, None, now=T0))
    status = sync(net_gallery("1.0.0", "1.1.0"), LATEST_SPEC, first, generation=2, now=T1)
    times = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
    assert times == {
        "Ready": "2025-01-01T00:00:00Z",
        "Synced": "2025-01-01T00:00:00Z",
        "UpdateAvailable": "2025-01-02T00:00:00Z",  # flipped False -> True
    }


def test_conditions_of_other_types_are_kept() -> None:
    previous = {"conditions": [{"type": "Custom", "status": "True", "reason": "Set"}]}
    status = sync(net_gallery("1.0.0"), LATEST_SPEC, previous)
    assert [c["type"] for c in status["conditions"]] == [
        "Custom",
        "Ready",
        "Synced",
        "UpdateAvailable",
    ]


def test_a_failed_resolution_is_not_ready() -> None:
    status = sync(net_gallery("1.0.0"), {"algorithm": "missing"}, None)
    assert status["phase"] == "NotReady"


def test_a_verdict_is_fields_and_condition_updates_only() -> None:
    verdict = subscription_plan.subscription_sync(net_gallery("1.0.0"), LATEST_SPEC, None)
    assert not {"conditions", "observedGeneration", "phase"} & set(verdict.fields)
    assert [u.type for u in verdict.updates] == ["Ready", "Synced", "UpdateAvailable"]


def test_fields_the_verdict_drops_are_null_so_a_merge_patch_deletes_them() -> None:
    pinned = api_roundtrip(sync(net_gallery("1.0.0"), LATEST_SPEC, None))
    gone = subscription_plan.subscription_sync(
        net_gallery("1.0.0", name="other"), LATEST_SPEC, pinned
    )
    assert gone.fields["latestVersion"] is None
    assert "latestVersion" not in sync(net_gallery("1.0.0", name="other"), LATEST_SPEC, pinned)
