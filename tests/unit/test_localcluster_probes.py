"""Probes decide readiness and restarts as the kubelet's prober does."""

from __future__ import annotations

from typing import Any

from localcluster.probes import ProbeSet


def answers(*results: bool) -> Any:
    """A probe check that returns ``results`` in turn."""
    left = list(results)
    return lambda spec: left.pop(0)


def test_no_probes_means_ready_at_start() -> None:
    assert ProbeSet.for_container({"name": "c"}, 0.0).ready_at_start


def test_readiness_waits_for_its_initial_delay_then_follows_the_check() -> None:
    probes = ProbeSet.for_container(
        {"readinessProbe": {"initialDelaySeconds": 5, "periodSeconds": 1}}, 0.0
    )
    assert probes.step(1.0, False, answers()) == (False, None)
    assert probes.step(5.0, False, answers(True)) == (True, None)


def test_liveness_restarts_after_failure_threshold() -> None:
    probes = ProbeSet.for_container(
        {"livenessProbe": {"periodSeconds": 1, "failureThreshold": 2}}, 0.0
    )
    check = answers(False, False)
    assert probes.step(0.0, True, check) == (True, None)
    assert probes.step(1.0, True, check) == (True, "liveness probe failed")


def test_startup_probe_holds_back_readiness_until_it_succeeds() -> None:
    probes = ProbeSet.for_container(
        {"startupProbe": {"periodSeconds": 1}, "livenessProbe": {"periodSeconds": 1}}, 0.0
    )
    assert probes.step(0.0, False, answers(False)) == (False, None)
    assert probes.step(1.0, False, answers(True)) == (True, None)
    assert probes.step(1.0, True, answers(True)) == (True, None)  # liveness now runs
