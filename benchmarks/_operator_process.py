"""What the operator benchmarks share: the operator as a subprocess (``kopf run -m
kubearts.main``), its RSS and CPU time read from ``/proc``, the Kubernetes client set up
from a kubeconfig, and the cluster objects every run needs (CRDs, the operator namespace,
a gallery ConfigMap of its own).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[1]
GALLERY_FILE = REPO / "charts" / "kubearts" / "files" / "gallery" / "default.yaml"
DEFAULT_KUBECONFIG = REPO / ".localcluster" / "kubeconfig"
OPERATOR_NAMESPACE = "kubearts-system"
GROUP, VERSION = "kubearts.io", "v1alpha1"
LIVENESS_PORT = 18081
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def connect(kubeconfig: str, *, pool_size: int = 16) -> None:
    """Point the default Kubernetes client at ``kubeconfig``, with a connection pool big
    enough for the benchmarks' worker threads (urllib3 would otherwise drop and reopen
    connections beyond its default of 4)."""
    configuration = client.Configuration()
    config.load_kube_config(kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    client.Configuration.set_default(configuration)


# --- the operator process --------------------------------------------------------------------


def start_operator(
    kubeconfig: str, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run the operator as ``kopf run`` in a subprocess and wait until it is live."""
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PYTHONPATH": str(REPO / "operator"),
        "KUBEARTS_NAMESPACE": OPERATOR_NAMESPACE,
        "KUBEARTS_METRICS_PORT": "0",
        "KUBEARTS_LOG_FORMAT": "plain",
        **(extra_env or {}),
    }
    kopf = Path(sys.executable).parent / "kopf"
    args = [str(kopf), "run", "--standalone", "--all-namespaces", "-m", "kubearts.main"]
    args += [f"--liveness=http://127.0.0.1:{LIVENESS_PORT}/healthz"]
    process = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the operator exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{LIVENESS_PORT}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the operator did not become live within 60 s; see {log}")


def stop_operator(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def settle(pid: int, quiet_seconds: float = 3.0, limit: float = 300.0) -> None:
    """Wait until the operator used (almost) no CPU for ``quiet_seconds``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(quiet_seconds)
        if cpu_seconds(pid) - before < 0.02 * quiet_seconds:
            return


# --- watching ------------------------------------------------------------------------------


class Watcher:
    """Watches one plural in a namespace and records, per object name, when each of
    ``marks`` (name → predicate on the object) first held."""

    def __init__(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        marks: dict[str, Callable[[dict[str, Any]], bool]],
    ) -> None:
        self.args = (group, version, namespace, plural)
        self.marks = marks
        self.times: dict[str, dict[str, float]] = {mark: {} for mark in marks}
        self.changed = threading.Condition()
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        api = client.CustomObjectsApi()
        while not self._stop:
            stream = watch.Watch().stream(
                api.list_namespaced_custom_object, *self.args, timeout_seconds=60
            )
            for event in stream:
                self._seen(event["object"], time.monotonic())
                if self._stop:
                    return

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        with self.changed:
            for mark, holds in self.marks.items():
                if name not in self.times[mark] and holds(obj):
                    self.times[mark][name] = now
            self.changed.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` holds (checked after each event); False on timeout."""
        with self.changed:
            return self.changed.wait_for(done, timeout)

    def wait_all(self, mark: str, names: Sequence[str], timeout: float) -> bool:
        seen = self.times[mark]
        return self.wait(lambda: all(n in seen for n in names), timeout)

    def stop(self) -> None:
        self._stop = True


def has_observed_generation(obj: dict[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("observedGeneration"))


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


# --- cluster objects -------------------------------------------------------------------------


def default_gallery() -> dict[str, str]:
    """The chart's default gallery: ConfigMap data, one YAML text per entry."""
    data: dict[str, str] = yaml.safe_load(GALLERY_FILE.read_text(encoding="utf-8"))
    return data


def prepare(gallery: str, data: dict[str, str] | None = None) -> None:
    """CRDs, the operator namespace and a gallery ConfigMap named after ``gallery`` holding
    ``data`` (default: the chart's default gallery)."""
    extensions = client.ApiextensionsV1Api()
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            extensions.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
    create_namespace(OPERATOR_NAMESPACE)
    client.CoreV1Api().create_namespaced_config_map(
        OPERATOR_NAMESPACE,
        {
            "metadata": {
                "name": gallery_configmap(gallery),
                "labels": {f"{GROUP}/gallery": gallery},
            },
            "data": data if data is not None else default_gallery(),
        },
    )
    while True:  # CRDs established
        try:
            client.CustomObjectsApi().list_cluster_custom_object(
                GROUP, VERSION, "subscriptions", limit=1
            )
            return
        except ApiException:
            time.sleep(0.2)


def gallery_configmap(gallery: str) -> str:
    return f"gallery-{gallery}"


def create_namespace(name: str) -> None:
    """Create ``name`` (harmless when it exists)."""
    try:
        client.CoreV1Api().create_namespace({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise


def remove(namespaces: list[str], gallery: str) -> None:
    """Delete the run's namespaces and gallery ConfigMap (without waiting)."""
    core = client.CoreV1Api()
    for name in namespaces:
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    try:
        core.delete_namespaced_config_map(gallery_configmap(gallery), OPERATOR_NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise


def custom_object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in [0, 1]): the smallest value with at
    least that fraction of ``values`` at or below it; p99 of 20 values is the largest."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = math.ceil(round(fraction * len(ordered), 9))  # 0.07 * 100 is 7.000000000000001
    return ordered[min(len(ordered), max(rank, 1)) - 1]
