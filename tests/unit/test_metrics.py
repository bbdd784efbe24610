"""kubearts.metrics: handler instrumentation and the metrics endpoint."""

from __future__ import annotations

import contextlib
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from kubearts import metrics


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def raising(error: BaseException) -> Callable[[], None]:
    def handler() -> None:
        raise error

    return handler


@pytest.mark.parametrize(
    ("kind", "handler", "outcome", "error"),
    [
        pytest.param("KindOk", lambda: None, "success", None, id="success"),
        pytest.param(
            "KindRetry", raising(kopf.TemporaryError("wait", delay=1)), "retry", None, id="retry"
        ),
        pytest.param(
            "KindPermanent",
            raising(kopf.PermanentError("bad spec")),
            "permanent_error",
            "PermanentError",
            id="permanent",
        ),
        pytest.param("KindError", raising(KeyError("x")), "error", "KeyError", id="unexpected"),
    ],
)
def test_instrumented_counts_runs_by_outcome(
    kind: str, handler: Callable[[], None], outcome: str, error: str | None
) -> None:
    wrapped = metrics.instrumented(kind)(handler)
    runs = sample("kubearts_reconciles_total", kind=kind, outcome=outcome)
    durations = sample("kubearts_reconcile_duration_seconds_count", kind=kind)
    errors = sample("kubearts_reconcile_errors_total", kind=kind, error=error or "")
    with contextlib.suppress(Exception):
        wrapped()
    assert sample("kubearts_reconciles_total", kind=kind, outcome=outcome) == runs + 1
    assert sample("kubearts_reconcile_duration_seconds_count", kind=kind) == durations + 1
    if error is not None:
        assert sample("kubearts_reconcile_errors_total", kind=kind, error=error) == errors + 1


def test_instrumented_reraises_and_returns_unchanged() -> None:
    assert metrics.instrumented("KindValue")(lambda: 42)() == 42
    with pytest.raises(KeyError):
        metrics.instrumented("KindValue")(raising(KeyError("x")))()


def test_instrumented_keeps_the_kopf_handler_id() -> None:
    def trainingjobs_create(**_: Any) -> None:
        pass

    wrapped = metrics.instrumented("TrainingJob")(trainingjobs_create)
    assert wrapped.__name__ == "trainingjobs_create"
    assert wrapped.__wrapped__ is trainingjobs_create  # type: ignore[attr-defined]


def test_objects_gauge_follows_recorded_conditions() -> None:
    ready = [{"type": "Ready", "status": "True"}]
    not_ready = [{"type": "Ready", "status": "False"}]
    metrics.record_conditions("KindGauge", "ns", "a", ready)
    metrics.record_conditions("KindGauge", "ns", "b", ready)
    assert sample("kubearts_objects", kind="KindGauge", condition="Ready", status="True") == 2
    metrics.record_conditions("KindGauge", "ns", "a", not_ready)
    assert sample("kubearts_objects", kind="KindGauge", condition="Ready", status="True") == 1
    assert sample("kubearts_objects", kind="KindGauge", condition="Ready", status="False") == 1
    metrics.forget_object("KindGauge", "ns", "a")
    metrics.forget_object("KindGauge", "ns", "b")
    assert sample("kubearts_objects", kind="KindGauge", condition="Ready", status="True") == 0
    assert sample("kubearts_objects", kind="KindGauge", condition="Ready", status="False") == 0


def test_port_zero_serves_nothing() -> None:
    assert metrics.start_server(0) is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_serves_metrics_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns(name: str = "") -> str:
        raise AssertionError(f"the metrics server looked up {name!r} in DNS")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    port = metrics._server_port or _free_port()
    assert metrics.start_server(port) is True
    assert metrics.start_server(port) is True  # again: harmless
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"kubearts_reconciles_total" in response.read()
    with pytest.raises(RuntimeError, match=f"already listens on port {port}"):
        metrics.start_server(port + 1 if port < 65535 else port - 1)
