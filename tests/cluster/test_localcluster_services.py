"""ClusterIP Services route as on a real cluster: kube-proxy (iptables mode) carries a
Service's traffic from the host and from pods to its ready endpoints, spreads it over them,
brings a pod back to itself through its own Service, and stops sending to a pod once it
has left the endpoints. Each cluster's rules live in its kube-proxy's own network
namespace and go with the cluster."""

from __future__ import annotations

import ipaddress
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import clusterkit
from clusterkit import Kube, wait_for
from localcluster import cluster, proxy

# A backend that answers with its pod name, its caller's address (/peer), or what another
# URL answers (/fetch/<host:port>/<path>, so a test makes the pod the client). It keeps
# serving after SIGTERM until the grace period ends, as a server draining its connections
# does: a request that still reaches a deleted pod gets an answer, not a refused connection.
SERVER = """
import http.server, os, signal, urllib.request
signal.signal(signal.SIGTERM, signal.SIG_IGN)
name = os.environ["POD_NAME"]
direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200
        if self.path == "/peer":
            body = self.client_address[0].encode()
        elif self.path.startswith("/fetch/"):
            try:
                body = direct.open("http://" + self.path[len("/fetch/"):], timeout=5).read()
            except OSError as err:
                code, body = 502, str(err).encode()
        else:
            body = name.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
"""
PORT = 8080
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str) -> str:
    """The body of a GET, with no proxy from the environment in the way."""
    with DIRECT.open(url, timeout=5) as resp:
        body: bytes = resp.read()
        return body.decode()


def pod_spec(grace: int = 5) -> dict[str, Any]:
    return {
        "terminationGracePeriodSeconds": grace,
        "containers": [
            {
                "name": "server",
                "image": "python",
                "command": ["python3", "-c", SERVER],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "ports": [{"containerPort": PORT, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            }
        ],
    }


def deployment(name: str, replicas: int, grace: int = 5) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(grace)},
        },
    }


def standalone_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": pod_spec(),
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }


def endpoint_pods(kube: Kube, name: str, namespace: str) -> set[str]:
    """Names of the pods in the Service's ready endpoints."""
    subsets = kube.get("endpoints", name, "-n", namespace).get("subsets") or []
    return {a["targetRef"]["name"] for s in subsets for a in s.get("addresses", [])}


def pod_ips(kube: Kube, namespace: str, app: str) -> dict[str, str]:
    items = kube.get("pods", "-n", namespace, "-l", f"app={app}")["items"]
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in items}


def answers(url: str) -> str | None:
    """The body at ``url``, None while nothing answers (kube-proxy not synced yet)."""
    try:
        return get(url)
    except OSError:
        return None


@dataclass
class Web:
    """A two-replica Deployment ``web`` behind its Service, a pod ``client`` outside it,
    and a pod ``solo`` that is the only endpoint of its own Service."""

    namespace: str
    url: str
    backends: dict[str, str]
    client_ip: str
    solo_ip: str
    solo_url: str


@pytest.fixture(scope="module")
def web(kube: Kube) -> Iterator[Web]:
    namespace = f"t-services-{uuid.uuid4().hex[:5]}"
    kube.kubectl("create", "namespace", namespace)
    wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
        30,
        f"the default service account in {namespace}",
    )
    for manifest in (
        deployment("web", 2),
        service("web"),
        standalone_pod("client"),
        standalone_pod("solo"),
        service("solo"),
    ):
        kube.apply(manifest, namespace)
    wait_for(
        lambda: len(endpoint_pods(kube, "web", namespace)) == 2,
        60,
        "two ready endpoints of web",
    )
    wait_for(lambda: endpoint_pods(kube, "solo", namespace), 60, "the ready endpoint of solo")
    kube.wait_condition("pod", "client", "-n", namespace, type="Ready", timeout=60)
    yield Web(
        namespace=namespace,
        url=kube.service_url("web", namespace),
        backends=pod_ips(kube, namespace, "web"),
        client_ip=pod_ips(kube, namespace, "client")["client"],
        solo_ip=pod_ips(kube, namespace, "solo")["solo"],
        solo_url=kube.service_url("solo", namespace),
    )
    kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_cluster_ip_comes_from_the_service_subnet(kube: Kube, web: Web) -> None:
    host = urllib.parse.urlsplit(web.url).hostname
    assert host is not None
    assert ipaddress.ip_address(host) in kube.layout.service_subnet


def test_host_reaches_a_service_by_its_cluster_ip(web: Web) -> None:
    name = wait_for(lambda: answers(web.url), 30, f"{web.url} to answer from the host")
    assert name in web.backends


def test_requests_spread_over_the_ready_backends(web: Web) -> None:
    seen: set[str] = set()

    def both_seen() -> bool:
        seen.add(get(web.url))
        return len(seen) == 2

    wait_for(both_seen, 30, "answers from both backends", interval=0.05)
    assert seen == set(web.backends)


def test_pod_reaches_a_service_by_its_cluster_ip(web: Web) -> None:
    via_client = f"http://{web.client_ip}:{PORT}/fetch/{urllib.parse.urlsplit(web.url).netloc}/"
    name = wait_for(lambda: answers(via_client), 30, "the client pod's call to web to answer")
    assert name in web.backends


def test_pod_reaches_itself_through_its_own_service(web: Web) -> None:
    via_solo = f"http://{web.solo_ip}:{PORT}/fetch/{urllib.parse.urlsplit(web.solo_url).netloc}/"
    assert wait_for(lambda: answers(via_solo), 30, "solo's call to its own Service") == "solo"


def test_backends_see_kube_proxy_as_the_caller(kube: Kube, web: Web) -> None:
    # --masquerade-all: every Service connection reaches the backend from kube-proxy's
    # address, so the answer goes back through kube-proxy (see localcluster/proxy.py).
    peer = wait_for(lambda: answers(web.url + "/peer"), 30, "web's /peer to answer")
    assert peer == str(kube.layout.proxy_address)


def endpoints_of_size(kube: Kube, namespace: str, size: int) -> set[str] | None:
    """The pods behind ``web`` once there are ``size`` of them."""
    names = endpoint_pods(kube, "web", namespace)
    return names if len(names) == size else None


def test_a_backend_scaled_away_leaves_the_rotation(kube: Kube, namespace: str) -> None:
    # The removed pod keeps serving through its grace period: a request kube-proxy still
    # sent there would be answered with its name.
    kube.apply(deployment("web", 2, grace=60), namespace)
    kube.apply(service("web"), namespace)
    before = wait_for(lambda: endpoints_of_size(kube, namespace, 2), 60, "two ready endpoints")
    url = kube.service_url("web", namespace)
    seen: set[str] = set()

    def both_seen() -> bool:
        seen.add(get(url))
        return seen == before

    wait_for(both_seen, 30, "answers from both backends", interval=0.05)

    kube.kubectl("scale", "deployment", "web", "--replicas=1", "-n", namespace)
    after = wait_for(
        lambda: endpoints_of_size(kube, namespace, 1), 30, "the endpoints to drop to one"
    )
    (gone,) = before - after
    assert kube.get("pod", gone, "-n", namespace)["metadata"].get("deletionTimestamp")
    # kube-proxy applies the change within its sync period: wait for a run of answers from
    # the survivor, then no request may reach the removed pod.
    streak: list[str] = []

    def survivor_only() -> bool:
        answer = get(url)
        streak[:] = [*streak, answer] if answer in after else []
        return len(streak) >= 10

    wait_for(survivor_only, 30, "only the remaining backend to answer", interval=0.05)
    answered = [get(url) for _ in range(40)]
    assert set(answered) == after, f"answers after the endpoints update: {answered}"


@pytest.fixture
def second_cluster(tmp_path: Path) -> Iterator[Kube]:
    handle = clusterkit.start(tmp_path / "second")
    yield handle
    cluster.down(handle.root)  # idempotent: a no-op once the test took it down


def host_kube_chains() -> list[str]:
    """KUBE-* chains in the host's own tables (both iptables back ends)."""
    found = []
    for save in ("iptables-save", "iptables-legacy-save"):
        out = subprocess.run([save], capture_output=True, text=True).stdout
        found += [line for line in out.splitlines() if line.startswith(":KUBE-")]
    return found


def test_each_cluster_routes_in_its_own_namespace_and_down_removes_it(
    kube: Kube, second_cluster: Kube
) -> None:
    first, second = kube.layout, second_cluster.layout
    assert not first.service_subnet.overlaps(second.service_subnet)
    assert first.proxy_netns != second.proxy_netns
    assert proxy.kubernetes_service_answers(second)
    rules = subprocess.run(
        ["ip", "netns", "exec", second.proxy_netns, "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ":KUBE-SERVICES" in rules
    assert "default/kubernetes:https" in rules
    assert host_kube_chains() == []

    cluster.down(second_cluster.root)

    log = (second.logs / f"{proxy.NAME}.log").read_text()
    assert "kube-proxy --cleanup exited 0" in log
    assert (
        second.proxy_netns
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert str(second.service_subnet) not in routes
    assert host_kube_chains() == []
    # The session's cluster still routes its Services.
    assert proxy.kubernetes_service_answers(first)
