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
    Watcher,
    condition_true,
    connect,
    cpu_seconds,
    has_observed_generation,
    percentile,
    prepare,
    rss_kib,
    settle,
    start_operator,
    stop_operator,
)
from kubernetes import client

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


def observe(namespace: str) -> Watcher:
    """When each Subscription first had observedGeneration ("status"), and when each first
    showed UpdateAvailable=True ("update")."""
    marks = {
        "status": has_observed_generation,
        "update": lambda obj: condition_true(obj, "UpdateAvailable"),
    }
    return Watcher(GROUP, VERSION, namespace, PLURAL, marks)


# --- the measurements ------------------------------------------------------------------------


def burst(namespace: str, gallery: str, count: int, seen: Watcher) -> tuple[float, float]:
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
    if not seen.wait_all("status", names, 600):
        raise SystemExit(f"only {len(seen.times['status'])} of {count} got a status in 600 s")
    elapsed = max(seen.times["status"][n] for n in names) - started
    return count / elapsed, elapsed


def probe(namespace: str, gallery: str, seen: Watcher) -> list[float]:
    """Create Subscriptions one by one; each one's create → first status, in seconds."""
    api = client.CustomObjectsApi()
    latencies = []
    for i in range(PROBES):
        name = f"probe{i:02d}"
        created = time.monotonic()
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, subscription(name, gallery)
        )
        if not seen.wait_all("status", [name], 60):
            raise SystemExit(f"{name} got no status in 60 s")
        latencies.append(seen.times["status"][name] - created)
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
    seen = observe(namespace)
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
        updated = seen.times["update"]
        if not seen.wait(lambda: len(updated) >= total, 600):
            raise SystemExit(f"only {len(updated)} of {total} saw the new version")
        edit_s = max(updated.values()) - edited
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
