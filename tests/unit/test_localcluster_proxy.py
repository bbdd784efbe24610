"""kube-proxy's flags and addresses for the local cluster: iptables mode for the cluster's
pod subnet, masquerading every Service connection, nothing written to the host's conntrack
settings, ports on its own namespace's loopback, and a bridge address no pod is given."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from localcluster import controlplane, network, proxy
from localcluster.layout import MAX_SLOTS, NODE_NAMES, Layout

LAYOUT = Layout(root=Path("/clusters/demo"), slot=3)
KUBECONFIG = Path("/clusters/demo/kube-proxy.kubeconfig")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        pytest.param("proxy-mode", "iptables", id="iptables-mode"),
        pytest.param("cluster-cidr", "10.203.0.0/16", id="pod-subnet"),
        pytest.param("masquerade-all", "true", id="masquerade-all"),
        pytest.param("conntrack-max-per-core", "0", id="conntrack-size-untouched"),
        pytest.param("conntrack-tcp-timeout-established", "0s", id="established-untouched"),
        pytest.param("conntrack-tcp-timeout-close-wait", "0s", id="close-wait-untouched"),
        pytest.param("bind-address", "10.203.255.254", id="node-ip-on-bridge"),
        pytest.param("kubeconfig", str(KUBECONFIG), id="kubeconfig"),
    ],
)
def test_flag(flag: str, value: str) -> None:
    rendered = controlplane.command_flags(proxy.flags(LAYOUT, KUBECONFIG))
    assert f"--{flag}={value}" in rendered


def test_hostname_is_one_of_the_nodes() -> None:
    assert proxy.flags(LAYOUT, KUBECONFIG)["hostname-override"] in NODE_NAMES


@pytest.mark.parametrize("flag", ["metrics-bind-address", "healthz-bind-address"])
def test_serving_ports_are_on_loopback(flag: str) -> None:
    host, _, port = str(proxy.flags(LAYOUT, KUBECONFIG)[flag]).rpartition(":")
    assert ipaddress.ip_address(host).is_loopback
    assert port.isdigit()


def test_runs_inside_its_network_namespace() -> None:
    argv = proxy.argv(LAYOUT, Path("/opt/k8s"), "--cleanup")
    assert argv == ["ip", "netns", "exec", "kaproxy3", "/opt/k8s/kube-proxy", "--cleanup"]


@pytest.mark.parametrize("slot", range(MAX_SLOTS))
def test_proxy_address_is_on_the_bridge_and_not_the_gateway(slot: int) -> None:
    layout = Layout(root=Path("/c"), slot=slot)
    assert layout.proxy_address in layout.pod_subnet
    assert layout.proxy_address not in (layout.gateway, layout.pod_subnet.broadcast_address)


@pytest.mark.parametrize("slot", range(MAX_SLOTS))
def test_proxy_namespace_is_not_taken_for_a_pod_namespace(slot: int) -> None:
    # Clearing pod namespaces (every name with some cluster's prefix) must spare it.
    name = Layout(root=Path("/c"), slot=slot).proxy_netns
    assert not any(name.startswith(Layout(Path("/c"), s).netns_prefix) for s in range(MAX_SLOTS))


def test_address_pool_never_hands_out_reserved_addresses() -> None:
    subnet = ipaddress.IPv4Network("10.9.0.0/29")
    reserved = subnet.broadcast_address - 1
    pool = network.AddressPool(subnet, reserved=(reserved,))
    given = {pool.allocate() for _ in range(4)}
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.allocate()
    assert given == {subnet.network_address + i for i in (2, 3, 4, 5)}
    assert reserved not in given
