"""The operator's own cost: fan-out, reaction latency, memory, and its share of the demo.

Runs the operator (``kopf run -m kubearts.main`` in a subprocess) against the local cluster
and prints one table, each figure next to its target with pass or miss:

- fan-out: N TrainingJobs of a trivial algorithm (a gallery entry of this run whose
  container runs ``true``) created at ``--concurrency`` at once; seconds from the first
  create call until all N Jobs exist, next to a plain client creating N equivalent
  batch/v1 Jobs (copies of an operator-made Job) at the same concurrency against the same
  API server; the ratio operator / plain (target ≤ 1.2). Each batch starts when the
  previous one's Jobs have finished.
- latency: create → first status with ``observedGeneration``, p50 / p99 of
  ``--probes`` Subscriptions created one by one while about 1,000 objects exist (the
  ``--objects`` step nearest to 1,000; target p99 ≤ 1 s).
- memory: the operator's RSS (a fresh process) with each ``--objects`` count of
  Subscriptions watched, and the slope per extra object between the first and the last
  (targets ≤ 150 MiB at 1,000 and ≤ 50 KiB per object).
- demo split: in a namespace where the offline flow ran (``make demo``), time in worker
  pods, in Kubernetes and in the operator's reactions, and the operator's share
  (target ≤ 5 %; see ``benchmarks/_demo_split.py``). Skipped, saying how to produce it,
  when the namespace does not exist.

Start a cluster first (``PYTHONPATH=hack .venv/bin/python -m localcluster up``); the script
applies the CRDs, makes its gallery and namespaces, serves a small data set from this
machine on the cluster bridge, and removes all of it at the end. Figures are printed,
never asserted. Full sizes take tens of minutes on two cores; shrink them while trying:

    .venv/bin/python benchmarks/operator_overhead.py [--fanout 100,500] [--objects 100,1000,5000]
        [--concurrency 8] [--probes 20] [--kubeconfig .localcluster/kubeconfig]
        [--demo-namespace kubearts-demo] [--demo-kubeconfig PATH]
        [--only fanout,latency,memory,demo]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import io
import os
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _demo_split
import yaml
from _operator_process import (
    DEFAULT_KUBECONFIG,
    GROUP,
    REPO,
    VERSION,
    Watcher,
    condition_true,
    connect,
    cpu_seconds,
    create_namespace,
    custom_object,
    default_gallery,
    has_observed_generation,
    percentile,
    prepare,
    remove,
    rss_kib,
    settle,
    start_operator,
    stop_operator,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubearts.constants import ALL_KINDS

FANOUT_RATIO_TARGET = 1.2
P99_TARGET_S = 1.0
RSS_TARGET_MIB = 150.0
RSS_TARGET_AT = 1000
SLOPE_TARGET_KIB = 50.0
SHARE_TARGET = 0.05
NOOP = "noop"  # the trivial algorithm's name in this run's gallery
KINDS = tuple(kind.plural for kind in ALL_KINDS)

# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    measured: str
    target: str = ""
    passed: bool | None = None  # None: no target, or not measured


def verdict(passed: bool | None) -> str:
    return "" if passed is None else ("pass" if passed else "MISS")


def format_table(rows: Sequence[Row]) -> str:
    """Rows as aligned columns under a header: figure, measured, target, result."""
    header = ("figure", "measured", "target", "result")
    cells = [header, *((r.figure, r.measured, r.target, verdict(r.passed)) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in cells[1:])])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def parse_counts(text: str) -> list[int]:
    """``"100,1000"`` → ``[100, 1000]``; empty text → ``[]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def slope_kib(points: Sequence[tuple[int, int]]) -> float | None:
    """KiB per extra object between the first and the last (count, RSS KiB) point."""
    if len(points) < 2 or points[-1][0] == points[0][0]:
        return None
    (n0, r0), (n1, r1) = points[0], points[-1]
    return (r1 - r0) / (n1 - n0)


def nearest(counts: Sequence[int], wanted: int) -> int:
    return min(counts, key=lambda n: (abs(n - wanted), n))


def judged_count(counts: Sequence[int]) -> int | None:
    """The count the RSS target is checked at: the one nearest 1,000, if within 10 %."""
    if not counts:
        return None
    count = nearest(counts, RSS_TARGET_AT)
    return count if abs(count - RSS_TARGET_AT) <= RSS_TARGET_AT // 10 else None


# --- watching --------------------------------------------------------------------------------


def job_finished(job: dict[str, Any]) -> bool:
    status = job.get("status") or {}
    return bool(status.get("succeeded") or status.get("failed") or status.get("completionTime"))


# --- the trivial algorithm and its inputs ----------------------------------------------------


def noop_gallery() -> dict[str, str]:
    """The default gallery plus ``noop``: the ResNet entry's last version whose container
    runs ``true`` (the local cluster runs image ``busybox`` commands on the host)."""
    data = default_gallery()
    entry: dict[str, Any] = yaml.safe_load(data["algorithm.resnet_v1_50.yaml"])
    version = {
        **entry["versions"][-1],
        "version": "1.0.0",
        "image": "busybox:1.36",
        "entrypoint": {"command": ["true"]},
        "hyperparameters": [],
    }
    data[f"algorithm.{NOOP}.yaml"] = yaml.safe_dump(
        {**entry, "displayName": "no-op", "versions": [version]}, sort_keys=False
    )
    return data


def tiny_image_folders() -> bytes:
    """A tar.gz of two classes of ten 8x8 PNGs each: a data set that ingests in seconds."""
    from PIL import Image

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for label, shade in (("dark", 40), ("light", 215)):
            for index in range(10):
                png = io.BytesIO()
                Image.new("L", (8, 8), shade + index).save(png, "PNG")
                info = tarfile.TarInfo(f"{label}/{index:02d}.png")
                info.size = png.tell()
                tar.addfile(info, io.BytesIO(png.getvalue()))
    return buffer.getvalue()


@contextlib.contextmanager
def serve_tiny_dataset(kubeconfig: str) -> Iterator[str]:
    """Serve the tiny data set over http on the local cluster's bridge address (where pods
    reach this machine); yields its URL."""
    sys.path.insert(0, str(REPO / "hack"))
    from localcluster import layout as layout_mod

    layout = layout_mod.load(Path(kubeconfig).resolve().parent)
    if layout is None:
        raise SystemExit(f"{kubeconfig} is not a local cluster's kubeconfig")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "tiny.tar.gz").write_bytes(tiny_image_folders())
        handler = functools.partial(_QuietFiles, directory=folder)
        server = http.server.ThreadingHTTPServer((str(layout.gateway), 0), handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield f"http://{layout.gateway}:{server.server_address[1]}/tiny.tar.gz"
        finally:
            server.shutdown()
            server.server_close()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def create(namespace: str, plural: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, body
    )


def training_job(name: str) -> dict[str, Any]:
    spec = {
        "algorithm": {"subscription": NOOP},
        "inputs": [{"dataset": "tiny", "version": "v1"}],
        "resources": {"pool": "cpu"},
        "runPolicy": {"backoffLimit": 0},
    }
    return custom_object("TrainingJob", name, spec)


def wait_ready(namespace: str, plural: str, name: str, kind: str, timeout: float) -> None:
    api = client.CustomObjectsApi()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        if condition_true(obj, kind):
            return
        time.sleep(0.5)
    raise SystemExit(f"{plural}/{name} in {namespace} was not {kind} within {timeout:.0f} s")


def training_inputs(namespace: str, gallery: str, dataset_uri: str) -> None:
    """A Ready split Dataset ``tiny`` (version v1) and a Ready Subscription ``noop``."""
    dataset = {"source": {"uri": dataset_uri}, "versions": [{"name": "v1", "trainRatio": 0.8}]}
    create(namespace, "datasets", custom_object("Dataset", "tiny", dataset))
    subscription = {"gallery": gallery, "algorithm": NOOP, "version": "latest"}
    create(namespace, "subscriptions", custom_object("Subscription", NOOP, subscription))
    wait_ready(namespace, "subscriptions", NOOP, "Ready", 120)
    wait_ready(namespace, "datasets", "tiny", "Ready", 300)


# --- fan-out ---------------------------------------------------------------------------------


def plain_job_template(namespace: str, job_name: str) -> dict[str, Any]:
    """An operator-made Job as a plain client would create it: its spec and pod template,
    without owner, selector or the Job controller's labels."""
    api = client.CustomObjectsApi()
    job = api.get_namespaced_custom_object("batch", "v1", namespace, "jobs", job_name)
    spec = dict(job["spec"])
    spec.pop("selector", None)
    spec.pop("manualSelector", None)
    template = dict(spec["template"])
    labels = dict(template["metadata"].get("labels") or {})
    for key in ("controller-uid", "job-name"):
        labels.pop(key, None)
    template["metadata"] = {"labels": {**labels, "bench": "plain"}}
    spec["template"] = template
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": spec}


def in_parallel(concurrency: int, call: Callable[[str], Any], names: Sequence[str]) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(call, names))


def timed_burst(
    jobs: Watcher,
    job_names: Sequence[str],
    create_one: Callable[[str], Any],
    names: Sequence[str],
    concurrency: int,
) -> float:
    """Seconds from the first create call until every Job of ``job_names`` was seen."""
    started = time.monotonic()
    in_parallel(concurrency, create_one, names)
    if not jobs.wait_all("exists", job_names, 600 + len(names)):
        raise SystemExit(f"not all of {len(job_names)} Jobs appeared within the time allowed")
    return max(jobs.times["exists"][n] for n in job_names) - started


def let_finish(jobs: Watcher, job_names: Sequence[str]) -> None:
    """Wait (bounded) until the Jobs finished, so the next burst does not share the
    machine with their pods."""
    if not jobs.wait_all("finished", job_names, 120 + len(job_names)):
        done = sum(n in jobs.times["finished"] for n in job_names)
        print(f"note: {done} of {len(job_names)} Jobs finished; going on", file=sys.stderr)


@dataclass(frozen=True)
class Fanout:
    count: int
    operator_s: float  # first TrainingJob create call → last of their Jobs seen
    plain_s: float  # first plain Job create call → last plain Job seen
    operator_cpu_s: float  # the operator's CPU time over operator_s


def fanout(namespace: str, counts: Sequence[int], concurrency: int, pid: int) -> list[Fanout]:
    """One :class:`Fanout` for each N, after one warm-up TrainingJob whose Job is the
    plain client's template."""
    jobs = Watcher(
        "batch", "v1", namespace, "jobs", {"exists": lambda _: True, "finished": job_finished}
    )
    try:
        create(namespace, "trainingjobs", training_job("warmup"))
        if not jobs.wait_all("exists", ["warmup-train"], 120):
            raise SystemExit("the warm-up TrainingJob got no Job within 120 s")
        template = plain_job_template(namespace, "warmup-train")
        return [fanout_once(jobs, namespace, template, n, concurrency, pid) for n in counts]
    finally:
        jobs.stop()


def fanout_once(
    jobs: Watcher, namespace: str, template: dict[str, Any], n: int, concurrency: int, pid: int
) -> Fanout:
    """N plain Jobs, then N TrainingJobs, each batch left to finish before the next."""
    batch = client.BatchV1Api()

    def create_plain(name: str) -> None:
        batch.create_namespaced_job(namespace, {**template, "metadata": {"name": name}})

    def create_training(name: str) -> None:
        create(namespace, "trainingjobs", training_job(name))

    plain = [f"plain{n}-{i:04d}" for i in range(n)]
    seconds_plain = timed_burst(jobs, plain, create_plain, plain, concurrency)
    let_finish(jobs, plain)
    names = [f"tj{n}-{i:04d}" for i in range(n)]
    made = [f"{name}-train" for name in names]
    cpu_before = cpu_seconds(pid)
    seconds_operator = timed_burst(jobs, made, create_training, names, concurrency)
    cpu = cpu_seconds(pid) - cpu_before
    let_finish(jobs, made)
    return Fanout(n, seconds_operator, seconds_plain, cpu)


def fanout_rows(results: Sequence[Fanout], concurrency: int) -> list[Row]:
    rows = []
    for result in results:
        ratio = result.operator_s / result.plain_s
        per_object = result.operator_cpu_s / result.count
        rows.append(
            Row(
                f"fan-out {result.count} TrainingJobs → Jobs ({concurrency} creates at once)",
                f"{result.operator_s:.1f} s vs plain Jobs {result.plain_s:.1f} s, "
                f"ratio {ratio:.2f}; operator CPU {ms(per_object)} per TrainingJob",
                f"ratio ≤ {FANOUT_RATIO_TARGET}",
                ratio <= FANOUT_RATIO_TARGET,
            )
        )
    return rows


# --- memory and latency ----------------------------------------------------------------------


def subscription(name: str, gallery: str) -> dict[str, Any]:
    spec = {"gallery": gallery, "algorithm": NOOP, "version": "latest"}
    return custom_object("Subscription", name, spec)


def probe(namespace: str, gallery: str, seen: Watcher, count: int) -> list[float]:
    """Create Subscriptions one by one; each one's create → first observedGeneration."""
    latencies = []
    for i in range(count):
        name = f"probe{i:03d}"
        created = time.monotonic()
        create(namespace, "subscriptions", subscription(name, gallery))
        if not seen.wait_all("status", [name], 60):
            raise SystemExit(f"{name} got no status in 60 s")
        latencies.append(seen.times["status"][name] - created)
    return latencies


@dataclass
class MemoryRun:
    points: list[tuple[int, int]]  # (objects watched, RSS KiB)
    empty_kib: int
    latencies: list[float]
    probed_at: int


def memory_and_latency(
    kubeconfig: str, namespace: str, gallery: str, counts: Sequence[int], probes: int, log: Path
) -> MemoryRun:
    """A fresh operator: RSS at each count of Subscriptions, probes at the count nearest
    1,000 (the probes stay, and are counted in the later points)."""
    operator = start_operator(kubeconfig, log)
    seen = Watcher(GROUP, VERSION, namespace, "subscriptions", {"status": has_observed_generation})
    api = client.CustomObjectsApi()
    probe_at = nearest(counts, RSS_TARGET_AT) if probes else -1
    run = MemoryRun([], 0, [], probe_at)
    try:
        settle(operator.pid)
        run.empty_kib = rss_kib(operator.pid)
        made: list[str] = []
        for count in counts:
            names = [f"s{i:05d}" for i in range(len(made), count)]
            in_parallel(
                8,
                lambda n: api.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, "subscriptions", subscription(n, gallery)
                ),
                names,
            )
            made += names
            if not seen.wait_all("status", made, 600 + len(names)):
                raise SystemExit(f"not all {len(made)} Subscriptions got a status")
            settle(operator.pid)
            if count == probe_at:
                run.latencies = probe(namespace, gallery, seen, probes)
                settle(operator.pid)
            watched = len(seen.times["status"])
            run.points.append((watched, rss_kib(operator.pid)))
    finally:
        seen.stop()
        stop_operator(operator)
    return run


def memory_rows(run: MemoryRun) -> list[Row]:
    rows = [Row("RSS, fresh operator, nothing watched", f"{run.empty_kib / 1024:.1f} MiB")]
    judged = judged_count([c for c, _ in run.points])
    for count, kib in run.points:
        near = count == judged
        rows.append(
            Row(
                f"RSS with {count} Subscriptions watched",
                f"{kib / 1024:.1f} MiB",
                f"≤ {RSS_TARGET_MIB:.0f} MiB at {RSS_TARGET_AT:,}" if near else "",
                kib / 1024 <= RSS_TARGET_MIB if near else None,
            )
        )
    slope = slope_kib(run.points)
    if slope is not None:
        (n0, _), (n1, _) = run.points[0], run.points[-1]
        rows.append(
            Row(
                f"RSS per extra object ({n0} → {n1})",
                f"{slope:.1f} KiB",
                f"≤ {SLOPE_TARGET_KIB:.0f} KiB",
                slope <= SLOPE_TARGET_KIB,
            )
        )
    return rows


def latency_rows(latencies: Sequence[float], present: int) -> list[Row]:
    if not latencies:
        return []
    p50, p99 = percentile(list(latencies), 0.5), percentile(list(latencies), 0.99)
    return [
        Row(
            f"create → observedGeneration, {len(latencies)} probes, {present} present",
            f"p50 {ms(p50)}, p99 {ms(p99)}",
            f"p99 ≤ {ms(P99_TARGET_S)}",
            p99 <= P99_TARGET_S,
        )
    ]


# --- the demo's time split -------------------------------------------------------------------


def read_flow(namespace: str) -> dict[str, list[dict[str, Any]]] | None:
    """Every KubeArts object, Job, Deployment, ReplicaSet and Pod of ``namespace``;
    None when the namespace does not exist."""
    try:
        client.CoreV1Api().read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    api = client.CustomObjectsApi()
    found = {
        plural: api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
        for plural in KINDS
    }
    for group, version, plural in (
        ("batch", "v1", "jobs"),
        ("apps", "v1", "deployments"),
        ("apps", "v1", "replicasets"),
        ("", "v1", "pods"),
    ):
        if group:
            items = api.list_namespaced_custom_object(group, version, namespace, plural)["items"]
        else:
            items = client.ApiClient().sanitize_for_serialization(
                client.CoreV1Api().list_namespaced_pod(namespace)
            )["items"]
        found[plural] = items
    return found


def demo_rows(flow: dict[str, list[dict[str, Any]]] | None, namespace: str) -> list[Row]:
    if flow is None:
        return [
            Row(
                "demo split: operator share",
                f"skipped: no namespace {namespace} (run `make demo`, then this again)",
                f"≤ {SHARE_TARGET:.0%}",
            )
        ]
    split = _demo_split.compute(
        {plural: flow[plural] for plural in KINDS},
        flow["jobs"],
        flow["pods"],
        flow["deployments"],
        flow["replicasets"],
    )
    return split_rows(split, namespace)


def split_rows(split: _demo_split.Split, namespace: str) -> list[Row]:
    if not split.intervals:
        return [Row("demo split: operator share", f"nothing to count in {namespace}")]
    worker = split.total(_demo_split.WORKER)
    kube = split.total(_demo_split.KUBERNETES)
    operator = split.total(_demo_split.OPERATOR)
    largest = split.largest(_demo_split.OPERATOR)
    detail = (
        f"; largest: {largest.subject} {largest.what} {largest.seconds:.0f} s" if largest else ""
    )
    return [
        Row(
            f"demo split ({namespace})",
            f"worker pods {worker:.0f} s, Kubernetes {kube:.0f} s, operator {operator:.0f} s",
        ),
        Row(
            "demo split: operator share",
            f"{split.operator_share:.1%}{detail}",
            f"≤ {SHARE_TARGET:.0%}",
            split.operator_share <= SHARE_TARGET,
        ),
    ]


# --- main ------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--fanout", default="100,500", help="TrainingJob counts, comma-separated")
    parser.add_argument("--objects", default="100,1000,5000", help="watched-object counts")
    parser.add_argument("--concurrency", type=int, default=8, help="create calls at once")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--kubeconfig", default=str(DEFAULT_KUBECONFIG))
    parser.add_argument("--demo-namespace", default="kubearts-demo")
    parser.add_argument("--demo-kubeconfig", help="the demo cluster's (default: --kubeconfig)")
    parser.add_argument("--only", default="fanout,latency,memory,demo", help="parts to run")
    parser.add_argument("--log", default="/tmp/benchmark-operator.log", help="operator log")
    return parser.parse_args()


def run_fanout(args: argparse.Namespace, gallery: str, namespace: str) -> list[Row]:
    log = Path(args.log)
    operator = start_operator(args.kubeconfig, log)
    try:
        with serve_tiny_dataset(args.kubeconfig) as uri:
            training_inputs(namespace, gallery, uri)
        counts = parse_counts(args.fanout)
        results = fanout(namespace, counts, args.concurrency, operator.pid)
        delete_and_wait(namespace)  # while the operator runs: TrainingJobs have finalizers
    finally:
        stop_operator(operator)
    return fanout_rows(results, args.concurrency)


def delete_and_wait(namespace: str, timeout: float = 600) -> None:
    core = client.CoreV1Api()
    with contextlib.suppress(ApiException):
        core.delete_namespace(namespace)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1)
    print(f"note: namespace {namespace} still exists after {timeout:.0f} s", file=sys.stderr)


def measure(args: argparse.Namespace, parts: set[str]) -> list[Row]:
    """The parts that run the operator, in a gallery and namespaces of this run that are
    removed at the end."""
    run = uuid.uuid4().hex[:6]
    gallery = f"bench-op-{run}"
    fanout_ns, objects_ns = f"bench-op-fanout-{run}", f"bench-op-objects-{run}"
    rows: list[Row] = []
    prepare(gallery, noop_gallery())
    try:
        if "fanout" in parts and parse_counts(args.fanout):
            create_namespace(fanout_ns)
            rows += run_fanout(args, gallery, fanout_ns)
        if parts & {"latency", "memory"}:
            create_namespace(objects_ns)
            counts = parse_counts(args.objects) if "memory" in parts else [RSS_TARGET_AT]
            probes = args.probes if "latency" in parts else 0
            log = Path(args.log).with_suffix(".memory.log")
            memory = memory_and_latency(args.kubeconfig, objects_ns, gallery, counts, probes, log)
            rows += latency_rows(memory.latencies, memory.probed_at)
            rows += memory_rows(memory) if "memory" in parts else []
    finally:
        remove([fanout_ns, objects_ns], gallery)
    return rows


def main() -> None:
    args = arguments()
    parts = set(args.only.split(","))
    rows: list[Row] = []
    if parts & {"fanout", "latency", "memory"}:
        connect(args.kubeconfig)
        rows += measure(args, parts)
    if "demo" in parts:
        connect(args.demo_kubeconfig or args.kubeconfig)
        rows += demo_rows(read_flow(args.demo_namespace), args.demo_namespace)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    rows.insert(0, Row("machine", f"{os.cpu_count()} CPUs, load average {load} (1, 5, 15 min)"))
    print(format_table(rows))


if __name__ == "__main__":
    main()
