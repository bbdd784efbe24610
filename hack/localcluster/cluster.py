"""Bring a whole local cluster up or down: control plane, kube-proxy, node agent, default
storage."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from . import controlplane, network, proxy
from . import layout as layout_mod
from .layout import NODE_NAMES, Layout

HACK_DIR = Path(__file__).resolve().parents[1]
AGENT = "node-agent"

STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": "kubearts.io/local-hostpath",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


def running(layout: Layout) -> bool:
    """Whether every control-plane process, kube-proxy and the agent run and the apiserver
    answers."""
    names = (*controlplane.COMPONENTS, proxy.NAME, AGENT)
    return all(controlplane.read_pid(layout, n) for n in names) and controlplane.apiserver_ready(
        layout
    )


def nodes_ready(layout: Layout) -> bool:
    """Whether all four nodes are Ready and no longer tainted not-ready."""
    out = controlplane.kubectl(layout, "get", "nodes", "-o", "json", check=False)
    if out.returncode != 0:
        return False
    ready = {
        n["metadata"]["name"]
        for n in json.loads(out.stdout)["items"]
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n["status"].get("conditions", [])
        )
        and not any(t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints", []))
    }
    return ready >= set(NODE_NAMES)


def make_environment_reachable(venv: Path) -> list[Path]:
    """Let containers running as non-root users (the restricted profile's runAsUser) reach
    the project environment: its interpreter may live under a 0700 home such as /root
    (pyenv). Adds search permission (o+x, no listing) to each directory on the way that
    lacks it; returns the directories changed."""
    changed = []
    for target in (venv, (venv / "bin" / "python").resolve()):
        for directory in reversed(target.parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(mode | stat.S_IXOTH)
                changed.append(directory)
    return changed


def up(root: Path) -> Layout:
    """Start (or reuse) the cluster under ``root`` and wait for Ready nodes."""
    for directory in make_environment_reachable(Path(sys.prefix)):
        print(
            f"made {directory} searchable (o+x) so non-root containers reach the environment",
            file=sys.stderr,
        )
    layout = layout_mod.load_or_allocate(root)
    if running(layout):
        print(f"cluster in {layout.root} is already running (slot {layout.slot})", file=sys.stderr)
        return layout
    start = time.monotonic()
    controlplane.start(layout)
    proxy.start(layout, controlplane.kubernetes_bin())
    controlplane.kubectl(layout, "apply", "-f", "-", input=json.dumps(STORAGE_CLASS))
    controlplane.start_daemon(
        layout,
        AGENT,
        [sys.executable, "-m", "localcluster.agent", str(layout.root)],
        env={"PYTHONPATH": str(HACK_DIR)},
    )
    controlplane.wait_until(
        lambda: nodes_ready(layout),
        "four Ready nodes",
        120,
        layout.logs / f"{AGENT}.log",
        alive=lambda: controlplane.read_pid(layout, AGENT) is not None,
    )
    controlplane.wait_until(
        lambda: (
            controlplane.kubectl(layout, "get", "serviceaccount", "default", check=False).returncode
            == 0
        ),
        "the default service account",
        60,
        layout.logs / "kube-controller-manager.log",
    )
    proxy.wait_routing(layout)
    print(
        f"cluster up in {time.monotonic() - start:.1f}s: KUBECONFIG={layout.kubeconfig}",
        file=sys.stderr,
    )
    return layout


def _kill_namespace_processes(layout: Layout) -> None:
    """Processes a container left behind in its network namespace (a daemonised child)."""
    for ns in network.list_namespaces(layout):
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True
        ).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def _remove_mountpoints(layout: Layout) -> None:
    """Remove the empty folders and files this cluster's pods created as mount targets
    (``/mnt/output``...), except those another running local cluster's pods use too: the
    paths are the same on the host for every cluster, and removing one detaches it from
    the other cluster's pods that have a volume mounted there (Linux does so for a mount
    point removed in another mount namespace)."""
    record = layout.run / "mountpoints"
    if not record.exists():
        return
    shared: set[str] = set()
    for slot in Path("/run/kubearts-localcluster").glob("slot-*"):
        if slot.name == f"slot-{layout.slot}":
            continue
        with contextlib.suppress(OSError, ValueError):
            other = Layout(root=Path(slot.read_text().strip()), slot=int(slot.name[5:]))
            shared.update((other.run / "mountpoints").read_text().splitlines())
    paths = sorted(set(record.read_text().splitlines()) - shared, key=len, reverse=True)
    for path in paths:
        with contextlib.suppress(OSError):
            p = Path(path)
            if p.is_dir():
                p.rmdir()  # only when empty
            elif p.is_file() and p.stat().st_size == 0:
                p.unlink()


STATE = (
    "etcd",
    "pods",
    "volumes",
    "pki",
    "run",
    "kubeconfig",
    "layout.json",
    "controller-manager.kubeconfig",
    "scheduler.kubeconfig",
    "node-agent.kubeconfig",
    proxy.KUBECONFIG,
)


def down(root: Path) -> None:
    """Stop the cluster under ``root`` and remove what it left on the host."""
    layout = layout_mod.load(root)
    if layout is None:
        print(f"no cluster in {root}", file=sys.stderr)
        return
    controlplane.stop_daemon(layout, AGENT, timeout=20)
    proxy.stop(layout)
    controlplane.stop(layout)
    _kill_namespace_processes(layout)
    network.remove_all_pod_networks(layout)
    network.remove_bridge(layout)
    _remove_mountpoints(layout)
    layout_mod.release(layout)
    for name in STATE:
        path = layout.root / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    print(f"cluster in {layout.root} is down", file=sys.stderr)


def status(root: Path) -> int:
    """Print whether the cluster under ``root`` runs; the exit status says the same."""
    layout = layout_mod.load(root)
    if layout is None:
        print(f"no cluster in {root}")
        return 1
    ok = True
    for name in (*controlplane.COMPONENTS, proxy.NAME, AGENT):
        pid = controlplane.read_pid(layout, name)
        ok &= pid is not None
        print(f"{name:24} {'running pid ' + str(pid) if pid else 'stopped'}")
    print(f"apiserver                {layout.apiserver_url}  kubeconfig {layout.kubeconfig}")
    print(f"pod network              {layout.pod_subnet} on bridge {layout.bridge}")
    print(
        f"service network          {layout.service_subnet} via kube-proxy at "
        f"{layout.proxy_address} (namespace {layout.proxy_netns})"
    )
    return 0 if ok else 1
