"""Prometheus metrics of the operator and the helpers handlers use to record them.

- ``kubearts_reconciles_total{kind, outcome}``: handler runs by outcome (success, retry,
  permanent_error, error);
- ``kubearts_reconcile_errors_total{kind, error}``: failed runs by exception class;
- ``kubearts_reconcile_duration_seconds{kind}``: how long handlers take;
- ``kubearts_objects{kind, condition, status}``: objects per condition status, kept from the
  conditions the operator writes (:func:`record_conditions`, :func:`forget_object`).

Handlers are wrapped with :func:`instrumented`; :func:`start_server` serves ``/metrics``.
"""

from __future__ import annotations

import functools
import socketserver
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import kopf
import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "OBJECTS",
    "RECONCILES",
    "RECONCILE_DURATION",
    "RECONCILE_ERRORS",
    "forget_object",
    "instrumented",
    "record_conditions",
    "start_server",
]

OUTCOME_SUCCESS: Final = "success"
OUTCOME_RETRY: Final = "retry"
OUTCOME_PERMANENT_ERROR: Final = "permanent_error"
OUTCOME_ERROR: Final = "error"

RECONCILES: Final = Counter(
    "kubearts_reconciles",
    "Handler runs, by kind and outcome (success, retry, permanent_error, error).",
    ["kind", "outcome"],
)
RECONCILE_ERRORS: Final = Counter(
    "kubearts_reconcile_errors",
    "Handler runs that raised, by kind and exception class.",
    ["kind", "error"],
)
RECONCILE_DURATION: Final = Histogram(
    "kubearts_reconcile_duration_seconds",
    "Duration of handler runs, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OBJECTS: Final = Gauge(
    "kubearts_objects",
    "Objects by kind and the status of each of their conditions.",
    ["kind", "condition", "status"],
)

P = ParamSpec("P")
R = TypeVar("R")


def instrumented(kind: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a sync handler of ``kind`` to count its runs, errors and duration.

    Put it under the ``@kopf.on...`` decorator. kopf's own control-flow exceptions are
    counted by meaning: TemporaryError is a retry, PermanentError a permanent error.
    """

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.monotonic()
            outcome = OUTCOME_ERROR
            try:
                result = fn(*args, **kwargs)
            except kopf.TemporaryError:
                outcome = OUTCOME_RETRY
                raise
            except kopf.PermanentError as exc:
                outcome = OUTCOME_PERMANENT_ERROR
                RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
                raise
            except Exception as exc:
                RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
                raise
            else:
                outcome = OUTCOME_SUCCESS
                return result
            finally:
                RECONCILE_DURATION.labels(kind).observe(time.monotonic() - started)
                RECONCILES.labels(kind, outcome).inc()

        return wrapper

    return decorator


# (kind, namespace, name) → {condition type: status}; the gauge is recomputed from it for
# the affected kind. Handlers run in kopf's thread pool, hence the lock.
_object_conditions: dict[tuple[str, str, str], dict[str, str]] = {}
# Gauge label sets ever set, so that series dropping to zero can be set to zero.
_series: set[tuple[str, str, str]] = set()
_lock = threading.Lock()


def record_conditions(
    kind: str, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]
) -> None:
    """Remember the current conditions of one object and update ``kubearts_objects``."""
    statuses = {str(c.get("type")): str(c.get("status")) for c in conditions}
    with _lock:
        _object_conditions[(kind, namespace, name)] = statuses
        _refresh(kind)


def forget_object(kind: str, namespace: str, name: str) -> None:
    """Drop a deleted object from ``kubearts_objects``."""
    with _lock:
        if _object_conditions.pop((kind, namespace, name), None) is not None:
            _refresh(kind)


def _refresh(kind: str) -> None:
    counts = Tally(
        (condition, status)
        for (k, _, _), statuses in _object_conditions.items()
        if k == kind
        for condition, status in statuses.items()
    )
    # Series that dropped to zero are set to 0 rather than removed, so graphs show the drop.
    for series in _series:
        if series[0] == kind and (series[1], series[2]) not in counts:
            OBJECTS.labels(*series).set(0)
    for (condition, status), count in counts.items():
        OBJECTS.labels(kind, condition, status).set(count)
        _series.add((kind, condition, status))


_server_lock = threading.Lock()
_server_port: int | None = None


class _MetricsServer(socketserver.ThreadingMixIn, WSGIServer):
    """prometheus-client's server, minus the reverse DNS lookup of the bind address that
    ``HTTPServer.server_bind`` makes (``socket.getfqdn``): where the pod's resolver does not
    answer, that alone held the operator's start-up for ten seconds."""

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


class _QuietHandler(WSGIRequestHandler):
    """No access log: Prometheus scrapes every few seconds."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_server(port: int) -> bool:
    """Serve ``/metrics`` on ``port`` (all interfaces) once per process.

    Returns True when a server is listening on ``port`` after the call; 0 turns metrics
    serving off. A second call with the same port is harmless (tests start the operator
    several times in one process); a different port after the first is an error.
    """
    global _server_port
    if port == 0:
        return False
    with _server_lock:
        if _server_port is None:
            server = _MetricsServer(("0.0.0.0", port), _QuietHandler)
            server.set_app(prometheus_client.make_wsgi_app())
            threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
            _server_port = port
        elif _server_port != port:
            raise RuntimeError(
                f"the metrics server already listens on port {_server_port}, not {port}"
            )
    return True
