"""kube-proxy for the local nodes: the network namespace it programs, its identity, its
flags, and its start and stop.

ClusterIP Services route as on a real node: kube-proxy (the same 1.20.2 build as the
control plane) runs in iptables mode, watches Services and EndpointSlices, and writes the
KUBE-SERVICES / KUBE-SVC-* / KUBE-SEP-* chains that pick a ready endpoint at random and
DNAT to it.

**Its own network namespace.** kube-proxy's iptables mode owns fixed chain names
(KUBE-SERVICES, KUBE-POSTROUTING, KUBE-MARK-MASQ…) and deletes the KUBE-SVC-/KUBE-SEP-
chains it did not write itself. Two clusters on one host (the demo and a test session, or
the second cluster of the lifecycle test) would rewrite each other's rules, and one's
``--cleanup`` would remove the other's. So each cluster's kube-proxy runs in a namespace of
its own (``layout.proxy_netns``), joined to the cluster bridge like a pod, at a reserved
address of the pod subnet (``layout.proxy_address``). Its rules live and die with that
namespace; the host's own tables never hold a KUBE-* chain.

**The path of a packet.** The host routes the service subnet via ``proxy_address`` on the
bridge, and so does every pod's namespace (``network.create_pod_network``): the proxy's
namespace is where ClusterIP traffic goes, as a pod's goes to its node. There it passes nat
PREROUTING → KUBE-SERVICES → DNAT to an endpoint on the bridge. ``--masquerade-all`` makes
kube-proxy also rewrite the source to the proxy's address: the backend sits on the same
bridge as a client pod (and as the host), and without it would answer the client straight
over the bridge with its own address, which the client drops. With it, the answer comes
back through the proxy, which undoes both translations. The same holds when a pod calls
itself through its own Service (hairpin): the proxy is a separate bridge port, so the bridge
never sends a frame back out of the port it came in on, and ``hairpin_mode`` is not needed.
Backends therefore see the proxy's address as the client's.

**One kube-proxy for four nodes.** The agent's nodes share one host and one bridge, so the
rules one kube-proxy writes serve the pods of every node; ``--hostname-override`` names one
of them (its events and topology lookups refer to it).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from pathlib import Path
from typing import Final

from . import controlplane, network, pki
from .layout import NODE_NAMES, Layout

NAME: Final = "kube-proxy"
#: The client-certificate user of the bootstrap ClusterRoleBinding ``system:node-proxier``,
#: which the apiserver creates bound to the ClusterRole of the same name.
USER: Final = "system:kube-proxy"
KUBECONFIG: Final = "kube-proxy.kubeconfig"
#: The proxy's side of its veth is ``eth0`` in its namespace; the host's side is this plus
#: the slot, on the bridge.
HOST_VETH_PREFIX: Final = "kaproxy"


def host_veth(layout: Layout) -> str:
    """The host end of the proxy namespace's veth, attached to the cluster bridge."""
    return f"{HOST_VETH_PREFIX}{layout.slot}"


def flags(layout: Layout, kubeconfig: Path) -> dict[str, object]:
    """kube-proxy's command-line flags for the cluster of ``layout``."""
    return {
        "kubeconfig": kubeconfig,
        "proxy-mode": "iptables",
        # One kube-proxy serves every node of this host (module docstring).
        "hostname-override": NODE_NAMES[0],
        # Its address on the bridge: the node IP of its rules.
        "bind-address": layout.proxy_address,
        "cluster-cidr": layout.pod_subnet,
        # Backends answer through the proxy, never straight over the bridge (docstring).
        "masquerade-all": True,
        # Leave the conntrack table's size and timeouts as the kernel has them; setting them
        # writes sysctls that belong to the whole host.
        "conntrack-max-per-core": 0,
        "conntrack-tcp-timeout-established": "0s",
        "conntrack-tcp-timeout-close-wait": "0s",
        # The namespace's own loopback: these ports cannot clash with anything on the host.
        "metrics-bind-address": "127.0.0.1:10249",
        "healthz-bind-address": "127.0.0.1:10256",
        "v": 1,
    }


def argv(layout: Layout, bin_dir: Path, *args: str) -> list[str]:
    """``kube-proxy args…`` run inside the proxy's network namespace."""
    return ["ip", "netns", "exec", layout.proxy_netns, str(bin_dir / NAME), *args]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)


def _create_network(layout: Layout) -> None:
    """The proxy's namespace on the bridge at ``proxy_address``, forwarding on, and the
    host's route for the service subnet through it."""
    network.ensure_bridge(layout)
    ns, veth = layout.proxy_netns, host_veth(layout)
    prefix = layout.pod_subnet.prefixlen
    host = [
        f"netns add {ns}",
        f"link add {veth} type veth peer name {veth}p",
        f"link set {veth} master {layout.bridge}",
        f"link set {veth} up",
        f"link set {veth}p netns {ns}",
    ]
    inside = [
        f"link set {veth}p name eth0",
        f"addr add {layout.proxy_address}/{prefix} dev eth0",
        "link set lo up",
        "link set eth0 up",
        # The apiserver listens on the bridge address (it is the node address as well).
        f"route add default via {layout.gateway}",
    ]
    for cmd, batch in ((["ip"], host), (["ip", "-n", ns], inside)):
        proc = subprocess.run(
            [*cmd, "-batch", "-"], input="\n".join(batch) + "\n", capture_output=True, text=True
        )
        if proc.returncode != 0:
            _remove_network(layout)
            raise RuntimeError(f"kube-proxy network setup failed: {proc.stderr.strip()}")
    # Forwarding is the proxy namespace's own setting; the host's stays as it is.
    steps = [
        ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        [
            "ip",
            "route",
            "replace",
            str(layout.service_subnet),
            "via",
            str(layout.proxy_address),
            "dev",
            layout.bridge,
        ],
    ]
    for step in steps:
        proc = _run(*step)
        if proc.returncode != 0:
            _remove_network(layout)
            raise RuntimeError(f"{' '.join(step)} failed: {proc.stderr.strip()}")


def _remove_network(layout: Layout) -> None:
    """The host route, the veth and the namespace (with every rule in it), if present."""
    _run("ip", "route", "del", str(layout.service_subnet), "via", str(layout.proxy_address))
    _run("ip", "link", "del", host_veth(layout))
    if Path(f"/run/netns/{layout.proxy_netns}").exists():
        _run("ip", "netns", "del", layout.proxy_netns)


def start(layout: Layout, bin_dir: Path) -> None:
    """Start kube-proxy in its namespace (made afresh), once the apiserver is up."""
    if controlplane.read_pid(layout, NAME):
        return
    _remove_network(layout)  # an earlier run's, left behind by a crash
    _create_network(layout)
    pki.ensure_cert(layout.pki, NAME, common_name=USER, client=True)
    kubeconfig = layout.root / KUBECONFIG
    # 127.0.0.1 is the namespace's own loopback; the apiserver is at the bridge address.
    server = f"https://{layout.gateway}:{layout.apiserver_port}"
    controlplane.write_kubeconfig(layout, kubeconfig, NAME, server=server)
    command = argv(layout, bin_dir, *controlplane.command_flags(flags(layout, kubeconfig)))
    controlplane.start_daemon(layout, NAME, command)


def kubernetes_service_answers(layout: Layout) -> bool:
    """Whether the ``kubernetes`` Service's ClusterIP reaches the apiserver from the host:
    kube-proxy has synced its rules and the route through its namespace works."""
    address = str(layout.service_subnet.network_address + 1)
    with socket.create_connection((address, 443), timeout=1):
        return True


def wait_routing(layout: Layout, timeout: float = 60) -> None:
    """Wait until ClusterIPs route (the ``kubernetes`` Service answers from the host)."""
    controlplane.wait_until(
        lambda: kubernetes_service_answers(layout),
        "the kubernetes Service's ClusterIP to answer through kube-proxy",
        timeout,
        layout.logs / f"{NAME}.log",
        alive=lambda: controlplane.read_pid(layout, NAME) is not None,
    )


def stop(layout: Layout) -> None:
    """Stop kube-proxy, remove its rules (``kube-proxy --cleanup``) and its namespace."""
    controlplane.stop_daemon(layout, NAME)
    if Path(f"/run/netns/{layout.proxy_netns}").exists():
        with contextlib.suppress(subprocess.SubprocessError):
            cleanup = subprocess.run(
                argv(layout, controlplane.kubernetes_bin(), "--cleanup"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            layout.logs.mkdir(parents=True, exist_ok=True)
            with open(layout.logs / f"{NAME}.log", "a") as log:
                log.write(cleanup.stdout + cleanup.stderr)
                log.write(f"kube-proxy --cleanup exited {cleanup.returncode}\n")
    # Deleting the namespace drops whatever rule the cleanup left, too.
    _remove_network(layout)
