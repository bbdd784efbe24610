"""kubearts.builders.meta and .security: children's names, labels, owners, security."""

from __future__ import annotations

from typing import Any

import pytest

import pss
from kubearts.builders.meta import child_labels, child_name, owner_reference
from kubearts.builders.placement import build_placement
from kubearts.builders.security import container_security_context, pod_security_context
from kubearts.config import DEFAULT_POOLS
from kubearts.constants import DATASET, TRAINING_JOB


def test_owner_reference_points_at_the_owner_as_controller() -> None:
    body = {"metadata": {"name": "mnist", "uid": "1234", "namespace": "ml"}}
    assert owner_reference(TRAINING_JOB, body) == {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "TrainingJob",
        "name": "mnist",
        "uid": "1234",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_owner_reference_needs_name_and_uid() -> None:
    with pytest.raises(ValueError, match=r"TrainingJob body lacks metadata.name or metadata.uid"):
        owner_reference(TRAINING_JOB, {"metadata": {"name": "mnist"}})


def test_child_labels() -> None:
    assert child_labels(DATASET, "digits", **{"kubearts.io/role": "split"}) == {
        "app.kubernetes.io/managed-by": "kubearts",
        "kubearts.io/dataset": "digits",
        "kubearts.io/role": "split",
    }


@pytest.mark.parametrize(
    ("owner", "suffix", "expected"),
    [
        pytest.param("mnist", "train", "mnist-train", id="plain"),
        pytest.param("My.Model", "v1", "my-model-v1", id="sanitised"),
    ],
)
def test_child_name(owner: str, suffix: str, expected: str) -> None:
    assert child_name(owner, suffix) == expected


def test_long_child_names_are_cut_with_a_distinguishing_hash() -> None:
    first = child_name("a" * 70 + "-one", "train")
    second = child_name("a" * 70 + "-two", "train")
    assert len(first) <= 63
    assert len(second) <= 63
    assert first != second
    assert first == child_name("a" * 70 + "-one", "train")


def test_pod_with_builders_output_meets_the_restricted_standard() -> None:

    placement = build_placement("gpu", 1, DEFAULT_POOLS)
    pod_spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "nodeSelector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "containers": [
            {
                "name": "trainer",
                "image": "ghcr.io/kubearts/trainer:0.1.0",
                "resources": placement["resources"],
                "securityContext": container_security_context(),
            }
        ],
    }
    assert pss.restricted_violations(pod_spec) == []


def test_container_context_alone_meets_the_restricted_standard() -> None:

    pod_spec = {
        "containers": [{"name": "c", "image": "i", "securityContext": container_security_context()}]
    }
    assert pss.restricted_violations(pod_spec) == []
