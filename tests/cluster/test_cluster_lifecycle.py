"""A second cluster beside the session's: it takes its own slot (ports, bridge, subnet),
runs pods, and `down` leaves no process, mount or network namespace behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import clusterkit
from clusterkit import Kube, wait_for
from localcluster import cluster, controlplane, network

MARKER = "kubearts-lifecycle-marker"
SCRIPT = (
    "import time; points = {line.split()[4] for line in open('/proc/self/mountinfo')}; "
    "print('mounted', '/tmp' in points, '/kubearts-lifecycle-test' in points, flush=True); "
    "time.sleep(600)"
)


@pytest.fixture
def second_cluster(tmp_path: Path) -> Iterator[Kube]:
    handle = clusterkit.start(tmp_path / "second")
    yield handle
    cluster.down(handle.root)  # idempotent: a no-op once the test took it down


def test_two_clusters_do_not_collide_and_down_cleans_up(kube: Kube, second_cluster: Kube) -> None:
    first, second = kube.layout, second_cluster.layout
    assert first.slot != second.slot
    assert not set(first.all_ports()) & set(second.all_ports())
    assert first.bridge != second.bridge
    assert not first.pod_subnet.overlaps(second.pod_subnet)

    second_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "busy", "namespace": "default"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11",
                        "command": ["python3", "-c", SCRIPT, MARKER],
                        # /tmp first: this cluster's state lives under /tmp, so the
                        # next mount's source must still be found (opened up front).
                        "volumeMounts": [
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "scratch", "mountPath": "/kubearts-lifecycle-test"},
                        ],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "scratch", "emptyDir": {}}],
            },
        }
    )
    wait_for(
        lambda: (
            "mounted True True"
            in second_cluster.kubectl("logs", "busy", "-n", "default", check=False).stdout
        ),
        60,
        "the pod to run with both volumes mounted",
    )
    pids = [
        controlplane.read_pid(second, name) for name in (*controlplane.COMPONENTS, cluster.AGENT)
    ]
    assert all(pids)
    assert network.list_namespaces(second)

    cluster.down(second_cluster.root)

    assert not any(controlplane.pid_alive(pid) for pid in pids if pid)
    assert not network.list_namespaces(second)
    assert (
        subprocess.run(["ip", "link", "show", second.bridge], capture_output=True).returncode != 0
    )
    wait_for(
        lambda: (
            subprocess.run(["pgrep", "-f", MARKER], capture_output=True).returncode == 1 or None
        ),
        10,
        "the pod's process to be gone",
    )
    assert str(second.root) not in Path("/proc/self/mountinfo").read_text()
    assert not Path("/kubearts-lifecycle-test").exists(), (
        "mount points created for pods are removed"
    )
    # The session's cluster is untouched.
    assert kube.get("nodes")["items"]
