"""Installing the Helm chart into the local cluster with the real Helm engine (helm_python).

Each test installs charts/kubearts as a fresh release into the test's own namespace and
uninstalls it afterwards. Two choices keep the shared cluster intact for other tests:

* ``replicaCount: 0``. The local cluster runs the operator image for real, and a second
  operator watching all namespaces would reconcile the objects of the tests that run their
  own operator. The Deployment, its pod template and everything around it are still
  created and checked.
* CRDs: when the kubearts.io CRDs are already in the cluster (applied by the ``crds``
  fixture or by ``kubectl apply -f crds/``), the release installs with
  ``crds.install=false`` and leaves them alone; Helm would refuse to adopt objects it did
  not create. When they are absent, the release installs them, with the chart's default
  ``crds.keep=true``, so uninstalling leaves them for whoever comes next.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import helm_python as helm
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubearts.constants import ALL_KINDS, GROUP

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "kubearts"
GALLERY_NAMES = {path.stem for path in (CHART_DIR / "files" / "gallery").glob("*.yaml")}
CRD_NAMES = tuple(f"{kind.plural}.{GROUP}" for kind in ALL_KINDS)
INSTALL_TIMEOUT_S = 120
GONE_TIMEOUT_S = 60


import pss  # noqa: E402


class Kube(Protocol):
    """The part of the session's ``kube`` fixture these tests use."""

    kubeconfig: str


@dataclass
class Release:
    """An installed release and clients to look at what it created."""

    name: str
    namespace: str
    installed_crds: bool
    summary: dict[str, Any]
    api: client.ApiClient

    def to_dict(self, obj: Any) -> dict[str, Any]:
        """An API object as the camelCase dict the API server returned."""
        return _to_dict(self.api, obj)


def _to_dict(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    converted: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return converted


def _crds_present(api: client.ApiClient) -> bool:
    extensions = client.ApiextensionsV1Api(api)
    crds = _to_dict(api, extensions.list_custom_resource_definition())["items"]
    present = {crd["metadata"]["name"] for crd in crds}
    return set(CRD_NAMES) <= present


def _wait_gone(read: Callable[[], object], what: str) -> None:
    """Poll until ``read`` raises 404; deletion is asynchronous."""
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    pytest.fail(f"{what} still exists {GONE_TIMEOUT_S}s after helm uninstall")


@pytest.fixture
def api(kube: Kube) -> Iterator[client.ApiClient]:
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kube.kubeconfig
    )
    yield api_client
    api_client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def helm_config(kube: Kube, namespace: str) -> Iterator[helm.Config]:
    with helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace) as cfg:
        yield cfg


@pytest.fixture
def release(helm_config: helm.Config, namespace: str, api: client.ApiClient) -> Iterator[Release]:
    """The chart installed into ``namespace``; uninstalled afterwards."""
    # Cluster-scoped objects (ClusterRole, ClusterRoleBinding) are named after the release,
    # so each test's release gets its own name.
    name = f"kubearts-{uuid.uuid4().hex[:8]}"
    install_crds = not _crds_present(api)
    values = {"replicaCount": 0, "crds": {"install": install_crds}}
    summary = helm_config.install(
        CHART_DIR, name, values, namespace=namespace, timeout=INSTALL_TIMEOUT_S
    )
    try:
        yield Release(name, namespace, install_crds, summary, api)
    finally:
        helm_config.uninstall(name, ignore_not_found=True, timeout=INSTALL_TIMEOUT_S)


def test_release_is_deployed(helm_config: helm.Config, release: Release) -> None:
    assert release.summary["status"] == "deployed"
    assert release.summary["revision"] == 1
    assert release.name in {item["name"] for item in helm_config.list()}


def test_operator_deployment_exists_with_restricted_pod(release: Release) -> None:
    deployment = release.to_dict(
        client.AppsV1Api(release.api).read_namespaced_deployment(release.name, release.namespace)
    )
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["replicas"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == release.name
    assert pod["containers"][0]["command"][:4] == [
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
    ]
    # As stored by the API server, i.e. after defaulting.
    assert pss.restricted_violations(pod) == []


def test_service_account_and_metrics_service_exist(release: Release) -> None:
    core = client.CoreV1Api(release.api)
    account = release.to_dict(core.read_namespaced_service_account(release.name, release.namespace))
    assert account["metadata"]["name"] == release.name
    service = release.to_dict(
        core.read_namespaced_service(f"{release.name}-metrics", release.namespace)
    )
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("metrics", 8080)]


def test_cluster_role_is_bound_to_the_operator(release: Release) -> None:
    rbac = client.RbacAuthorizationV1Api(release.api)
    role = release.to_dict(rbac.read_cluster_role(release.name))
    assert role["rules"]
    binding = release.to_dict(rbac.read_cluster_role_binding(release.name))
    assert binding["roleRef"]["name"] == release.name
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": release.name, "namespace": release.namespace}
    ]


def _allowed(release: Release, group: str, resource: str, verb: str, subresource: str) -> bool:
    """Ask the API server whether the operator's ServiceAccount may do this, anywhere."""
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{release.namespace}:{release.name}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{release.namespace}"],
            resource_attributes=client.V1ResourceAttributes(
                group=group, resource=resource, subresource=subresource, verb=verb
            ),
        )
    )
    answer = client.AuthorizationV1Api(release.api).create_subject_access_review(review)
    return bool(release.to_dict(answer)["status"]["allowed"])


@pytest.mark.parametrize(
    ("group", "resource", "subresource", "verb", "allowed"),
    [
        pytest.param("kubearts.io", "trainingjobs", "", "watch", True, id="watch-trainingjobs"),
        pytest.param("kubearts.io", "models", "status", "patch", True, id="patch-model-status"),
        pytest.param("batch", "jobs", "", "create", True, id="create-jobs"),
        pytest.param("", "secrets", "", "create", True, id="create-secret"),
        pytest.param("", "secrets", "", "get", False, id="no-get-secrets"),
        pytest.param("", "secrets", "", "list", False, id="no-list-secrets"),
        pytest.param("kubearts.io", "datasets", "", "delete", False, id="no-delete-datasets"),
        pytest.param("", "namespaces", "", "delete", False, id="no-delete-namespaces"),
        pytest.param(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "create",
            False,
            id="no-rbac-escalation",
        ),
    ],
)
def test_operator_service_account_permissions(
    release: Release, group: str, resource: str, subresource: str, verb: str, allowed: bool
) -> None:
    assert _allowed(release, group, resource, verb, subresource) is allowed


def test_gallery_configmaps_exist(release: Release) -> None:
    assert GALLERY_NAMES, "charts/kubearts/files/gallery holds no gallery file"
    maps = release.to_dict(
        client.CoreV1Api(release.api).list_namespaced_config_map(
            release.namespace, label_selector="kubearts.io/gallery"
        )
    )["items"]
    assert {cm["metadata"]["labels"]["kubearts.io/gallery"] for cm in maps} == GALLERY_NAMES
    assert all(cm.get("data") for cm in maps)


def test_crds_are_in_the_cluster(release: Release) -> None:
    extensions = client.ApiextensionsV1Api(release.api)
    for name in CRD_NAMES:
        crd = release.to_dict(extensions.read_custom_resource_definition(name))
        if release.installed_crds:
            annotations = crd["metadata"]["annotations"]
            assert annotations["meta.helm.sh/release-name"] == release.name
            assert annotations["helm.sh/resource-policy"] == "keep"


def test_uninstall_removes_the_operator_but_keeps_crds(
    helm_config: helm.Config, release: Release
) -> None:
    helm_config.uninstall(release.name, timeout=INSTALL_TIMEOUT_S)

    apps = client.AppsV1Api(release.api)
    rbac = client.RbacAuthorizationV1Api(release.api)
    _wait_gone(
        lambda: apps.read_namespaced_deployment(release.name, release.namespace), "Deployment"
    )
    _wait_gone(lambda: rbac.read_cluster_role(release.name), "ClusterRole")
    _wait_gone(lambda: rbac.read_cluster_role_binding(release.name), "ClusterRoleBinding")
    assert _crds_present(release.api)


def test_install_refuses_bad_values_naming_them(
    helm_config: helm.Config, namespace: str, api: client.ApiClient
) -> None:
    name = f"kubearts-{uuid.uuid4().hex[:8]}"
    with pytest.raises(helm.HelmError, match=r"/replicaCount"):
        helm_config.install(
            CHART_DIR,
            name,
            {"replicaCount": "one", "crds": {"install": False}},
            namespace=namespace,
            timeout=INSTALL_TIMEOUT_S,
        )
    deployments = client.AppsV1Api(api).list_namespaced_deployment(namespace)
    assert deployments.items == []
