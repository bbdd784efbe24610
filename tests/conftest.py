"""Fixtures shared by all tiers: the local cluster (brought up once per session), a fresh
namespace per test, the CRDs, and the operator running under kopf's KopfRunner."""

from __future__ import annotations

import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_CLUSTER_ROOT = Path(os.environ.get("KUBEARTS_TEST_CLUSTER", REPO / ".localcluster" / "test"))
# Guard: whatever KUBECONFIG the shell had, tests only ever talk to their own local cluster.
# Set before any Kubernetes client is imported (it reads KUBECONFIG at import time).
os.environ["KUBECONFIG"] = str(TEST_CLUSTER_ROOT.resolve() / "kubeconfig")

import pytest  # noqa: E402
from kopf.testing import KopfRunner  # noqa: E402

import clusterkit  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests under tests/cluster and tests/e2e need the control plane: mark them so that
    # `-m "not cluster"` runs the pure tiers alone.
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}cluster{os.sep}" in path:
            item.add_marker(pytest.mark.cluster)
        if f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kube() -> Iterator[clusterkit.Kube]:
    """The session's local cluster, in its own directory with its own ports and subnet, so
    it never collides with a developer's demo cluster. Concurrent test sessions share it:
    each holds a shared lock on it, and the last one out stops it, unless it was running
    before any of them or KUBEARTS_KEEP_CLUSTER=1."""
    TEST_CLUSTER_ROOT.mkdir(parents=True, exist_ok=True)
    lock = open(TEST_CLUSTER_ROOT / "sessions.lock", "a+")  # noqa: SIM115 - held all session
    fcntl.flock(lock, fcntl.LOCK_EX)
    handle = clusterkit.start(TEST_CLUSTER_ROOT)
    marker = TEST_CLUSTER_ROOT / "started-by-tests"
    if handle.started_here:
        marker.touch()
    fcntl.flock(lock, fcntl.LOCK_SH)
    os.environ["KUBECONFIG"] = handle.kubeconfig
    yield handle
    fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another session still uses the cluster
    if marker.exists() and os.environ.get("KUBEARTS_KEEP_CLUSTER") != "1":
        clusterkit.stop(handle)
        marker.unlink(missing_ok=True)
    lock.close()


@pytest.fixture(scope="session")
def crds(kube: clusterkit.Kube) -> list[str]:
    """Applies crds/ and waits until every CRD is Established."""
    kube.kubectl("apply", "-f", str(REPO / "crds"))
    names = [
        item["metadata"]["name"] for item in kube.get("-f", str(REPO / "crds")).get("items", [])
    ]
    for name in names:
        kube.wait_condition("crd", name, type="Established", timeout=60)
    return names


@pytest.fixture
def namespace(kube: clusterkit.Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    yield kube.create_namespace(name)
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


OPERATOR_NAMESPACE = "kubearts-system"


@pytest.fixture(scope="session")
def kubearts_operator(kube: clusterkit.Kube, crds: list[str]) -> Iterator[KopfRunner]:
    """The operator, run in this process by kopf's KopfRunner against the local cluster,
    exactly as ``kopf run -m kubearts.main`` runs it; it must stop cleanly at the end."""
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    settings = {
        "KUBEARTS_NAMESPACE": OPERATOR_NAMESPACE,
        "KUBEARTS_METRICS_PORT": "0",
        "KUBEARTS_LOG_FORMAT": "plain",
        # The local cluster's GPU and Ascend nodes have no chips: workers placed there run on
        # the CPU and say so.
        "KUBEARTS_ALLOW_CPU_FALLBACK": "true",
        # Cleanup attempts that cannot run end soon (tests of a deletion that must end).
        "KUBEARTS_DATASET_CLEANUP_DEADLINE_SECONDS": "15",
    }
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    args = ["run", "--standalone", "--all-namespaces", "--verbose", "-m", "kubearts.main"]
    with KopfRunner(args, timeout=30) as runner:
        yield runner
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    assert runner.exception is None, runner.output[-5000:]
    assert runner.exit_code == 0, runner.output[-5000:]
