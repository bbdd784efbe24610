"""The cluster's pod network: a host bridge, and per pod a network namespace joined to it
by a veth pair, with an address from the cluster's pod subnet."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import subprocess
import threading
from pathlib import Path

from .layout import Layout


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def ensure_bridge(layout: Layout) -> None:
    """Create the cluster bridge with the gateway address, if missing."""
    if _ip("link", "show", layout.bridge, check=False).returncode != 0:
        _ip("link", "add", layout.bridge, "type", "bridge")
    _ip("addr", "replace", f"{layout.gateway}/{layout.pod_subnet.prefixlen}", "dev", layout.bridge)
    _ip("link", "set", layout.bridge, "up")
    # Bridged traffic passes the host firewall when br_netfilter is loaded; let ours through.
    for rule in (["-i", layout.bridge, "-j", "ACCEPT"], ["-o", layout.bridge, "-j", "ACCEPT"]):
        if subprocess.run(["iptables", "-C", "FORWARD", *rule], capture_output=True).returncode:
            subprocess.run(["iptables", "-I", "FORWARD", *rule], capture_output=True)


def remove_bridge(layout: Layout) -> None:
    """Delete the cluster bridge, if present."""
    for rule in (["-i", layout.bridge, "-j", "ACCEPT"], ["-o", layout.bridge, "-j", "ACCEPT"]):
        while (
            subprocess.run(["iptables", "-D", "FORWARD", *rule], capture_output=True).returncode
            == 0
        ):
            pass
    _ip("link", "del", layout.bridge, check=False)


def list_namespaces(layout: Layout) -> list[str]:
    """This cluster's pod network namespaces."""
    out = _ip("netns", "list", check=False).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(layout.netns_prefix)]


def netns_name(layout: Layout, pod_uid: str) -> str:
    """The network namespace name of a pod: the cluster prefix and part of the uid."""
    return layout.netns_prefix + pod_uid.replace("-", "")[:12]


class AddressPool:
    """Hands out pod addresses from the subnet; the gateway, the broadcast and the
    ``reserved`` addresses are never given."""

    def __init__(
        self, subnet: ipaddress.IPv4Network, reserved: tuple[ipaddress.IPv4Address, ...] = ()
    ) -> None:
        self._subnet = subnet
        self._used: set[ipaddress.IPv4Address] = {subnet.network_address + 1, *reserved}
        self._next = subnet.network_address + 2
        self._lock = threading.Lock()

    def allocate(self) -> ipaddress.IPv4Address:
        """A free pod address."""
        with self._lock:
            size = self._subnet.num_addresses
            for _ in range(size):
                candidate = self._next
                self._next += 1
                if self._next >= self._subnet.broadcast_address:
                    self._next = self._subnet.network_address + 2
                if candidate not in self._used:
                    self._used.add(candidate)
                    return candidate
        raise RuntimeError(f"pod subnet {self._subnet} is exhausted")

    def release(self, address: ipaddress.IPv4Address) -> None:
        """Return an address to the pool."""
        with self._lock:
            self._used.discard(address)


def create_pod_network(layout: Layout, pod_uid: str, address: ipaddress.IPv4Address) -> str:
    """Create the pod's network namespace with ``eth0`` at ``address``; return its name."""
    ns = netns_name(layout, pod_uid)
    digest = hashlib.sha1(pod_uid.encode()).hexdigest()[:10]
    host_if, pod_if = f"kv{digest}", f"kp{digest}"
    delete_pod_network(layout, pod_uid)
    prefix = layout.pod_subnet.prefixlen
    host = (
        "\n".join(
            [
                f"netns add {ns}",
                f"link add {host_if} type veth peer name {pod_if}",
                f"link set {host_if} master {layout.bridge}",
                f"link set {host_if} up",
                f"link set {pod_if} netns {ns}",
            ]
        )
        + "\n"
    )
    inside = (
        "\n".join(
            [
                f"link set {pod_if} name eth0",
                f"addr add {address}/{prefix} dev eth0",
                "link set lo up",
                "link set eth0 up",
                f"route add default via {layout.gateway}",
                # ClusterIPs go to kube-proxy's namespace, as a pod's go to its node's.
                f"route add {layout.service_subnet} via {layout.proxy_address}",
            ]
        )
        + "\n"
    )
    for argv, batch in ((["ip", "-batch", "-"], host), (["ip", "-n", ns, "-batch", "-"], inside)):
        proc = subprocess.run(argv, input=batch, capture_output=True, text=True)
        if proc.returncode != 0:
            delete_pod_network(layout, pod_uid)
            raise RuntimeError(f"pod network setup failed: {proc.stderr.strip()}")
    return ns


def delete_pod_network(layout: Layout, pod_uid: str) -> None:
    """Delete the pod's network namespace and its veth."""
    ns = netns_name(layout, pod_uid)
    digest = hashlib.sha1(pod_uid.encode()).hexdigest()[:10]
    _ip("link", "del", f"kv{digest}", check=False)
    if Path(f"/run/netns/{ns}").exists():
        _ip("netns", "del", ns, check=False)


def remove_all_pod_networks(layout: Layout) -> None:
    """Delete every pod network namespace of this cluster."""
    for ns in list_namespaces(layout):
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("netns", "del", ns, check=False)
