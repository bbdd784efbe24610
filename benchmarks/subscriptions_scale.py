"""Subscriptions at scale: the operator (``kopf run -m kubearts.main`` in a subprocess)
against the local cluster, with N Subscriptions of one gallery created at once.

Prints one table:

- burst rate: N Subscriptions created at once, objects per second until the last one has a
  first status (``status.observedGeneration`` set);
- latency: create → first status with observedGeneration, p50/p99 of 20 Subscriptions
  created one by one while the N exist;
- idle CPU: the operator's CPU time over ``--idle-seconds`` after everything settled;
- RSS with 0 and with N + 20 Subscriptions, and the difference per Subscription;
- gallery edit: a new version published, until all Subscriptions show UpdateAvailable=True.

Targets: p99 ≤ 1 s, idle CPU ≈ 0, RSS ≤ 150 MiB at 1,000 Subscriptions. Start a cluster
first (``PYTHONPATH=hack .venv/bin/python -m localcluster up``), apply nothing: the script
applies the CRDs, makes its gallery and namespace and removes both at the end.

    .venv/bin/python benchmarks/subscriptions_scale.py [--subscriptions 1000]
        [--kubeconfig .localcluster/kubeconfig] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from _operator_process import (
    DEFAULT_KUBECONFIG,
    GALLERY_FILE,
    GROUP,
    OPERATOR_NAMESPACE,
    VERSION,
    connect,
    cpu_seconds,
    percentile,
    prepare,
    rss_kib,
    settle,
    start_operator,
    stop_operator,
)
from kubernetes import client, watch

PLURAL = "subscriptions"
PROBES = 20


# --- cluster objects -------------------------------------------------------------------------


def subscription(name: str, gallery: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Subscription",
        "metadata": {"name": name},
        "spec": {"gallery": gallery, "algorithm": "resnet_v1_50", "version": "latest"},
    }


class Observer:
    """Watches the namespace's Subscriptions: when each first had observedGeneration, and
    when each first showed UpdateAvailable=True."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.first_status: dict[str, float] = {}
        self.update_seen: dict[str, float] = {}
        self.changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        api = client.CustomObjectsApi()
        while not self._stop:
            stream = watch.Watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                timeout_seconds=60,
            )
            for event in stream:
                self._seen(event["object"], time.monotonic())
                if self._stop:
                    return

    def _seen(self, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        with self.changed:
            if status.get("observedGeneration") and name not in self.first_status:
                self.first_status[name] = now
            update = [c for c in status.get("conditions", []) if c["type"] == "UpdateAvailable"]
            if update and update[0]["status"] == "True" and name not in self.update_seen:
                self.update_seen[name] = now
            self.changed.notify_all()

    def wait(self, done: Any, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(done, timeout)

    def stop(self) -> None:
        self._stop = True


# --- the measurements ------------------------------------------------------------------------


def burst(namespace: str, gallery: str, count: int, seen: Observer) -> tuple[float, float]:
    """Create ``count`` Subscriptions at once; (objects/s to the last first status, seconds)."""
    api = client.CustomObjectsApi()
    names = [f"s{i:05d}" for i in range(count)]
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: api.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, subscription(n, gallery)
                ),
                names,
            )
        )
    if not seen.wait(lambda: all(n in seen.first_status for n in names), 600):
        raise SystemExit(f"only {len(seen.first_status)} of {count} got a status in 600 s")
    elapsed = max(seen.first_status[n] for n in names) - started
    return count / elapsed, elapsed


def probe(namespace: str, gallery: str, seen: Observer) -> list[float]:
    """Create Subscriptions one by one; each one's create → first status, in seconds."""
    api = client.CustomObjectsApi()
    latencies = []
    for i in range(PROBES):
        name = f"probe{i:02d}"
        created = time.monotonic()
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, subscription(name, gallery)
        )
        if not seen.wait(lambda n=name: n in seen.first_status, 60):  # type: ignore[misc]
            raise SystemExit(f"{name} got no status in 60 s")
        latencies.append(seen.first_status[name] - created)
    return latencies


def publish_new_version(gallery: str) -> None:
    core = client.CoreV1Api()
    data = yaml.safe_load(GALLERY_FILE.read_text(encoding="utf-8"))
    key = "algorithm.resnet_v1_50.yaml"
    entry = yaml.safe_load(data[key])
    entry["versions"].append({**entry["versions"][-1], "version": "99.0.0"})
    data[key] = yaml.safe_dump(entry, sort_keys=False)
    core.patch_namespaced_config_map(f"gallery-{gallery}", OPERATOR_NAMESPACE, {"data": data})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--kubeconfig", default=str(DEFAULT_KUBECONFIG))
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--log", default="/tmp/subscriptions_scale-operator.log")
    args = parser.parse_args()
    connect(args.kubeconfig)
    run = uuid.uuid4().hex[:6]
    gallery, namespace = f"bench-{run}", f"bench-subs-{run}"
    prepare(gallery)
    client.CoreV1Api().create_namespace({"metadata": {"name": namespace}})
    operator = start_operator(args.kubeconfig, Path(args.log))
    seen = Observer(namespace)
    try:
        settle(operator.pid)
        rss_empty = rss_kib(operator.pid)
        rate, burst_s = burst(namespace, gallery, args.subscriptions, seen)
        settle(operator.pid)
        latencies = probe(namespace, gallery, seen)
        settle(operator.pid)
        rss_full = rss_kib(operator.pid)
        before = cpu_seconds(operator.pid)
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(operator.pid) - before) / args.idle_seconds * 100
        total = args.subscriptions + PROBES
        edited = time.monotonic()
        publish_new_version(gallery)
        if not seen.wait(lambda: len(seen.update_seen) >= total, 600):
            raise SystemExit(f"only {len(seen.update_seen)} of {total} saw the new version")
        edit_s = max(seen.update_seen.values()) - edited
    finally:
        seen.stop()
        stop_operator(operator)
        client.CoreV1Api().delete_namespace(namespace)
        client.CoreV1Api().delete_namespaced_config_map(f"gallery-{gallery}", OPERATOR_NAMESPACE)

    per_object = (rss_full - rss_empty) / total
    rows = [
        ("Subscriptions", f"{args.subscriptions} at once, then {PROBES} one by one"),
        ("burst rate", f"{rate:.0f} objects/s to first status ({burst_s:.1f} s for all)"),
        (
            "create → first status (p50 / p99)",
            f"{statistics.median(latencies) * 1000:.0f} ms / "
            f"{percentile(latencies, 0.99) * 1000:.0f} ms  (target p99 ≤ 1000 ms)",
        ),
        (f"idle CPU over {args.idle_seconds:.0f} s", f"{idle:.2f} %  (target ≈ 0)"),
        ("RSS with 0 Subscriptions", f"{rss_empty / 1024:.1f} MiB"),
        (
            f"RSS with {total}",
            f"{rss_full / 1024:.1f} MiB, {per_object:.1f} KiB per Subscription "
            "(target ≤ 150 MiB at 1,000)",
        ),
        (f"gallery edit → all {total} show UpdateAvailable", f"{edit_s:.1f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print(json.dumps({"operator_log": args.log}))


if __name__ == "__main__":
    main()
