"""Where a cluster lives on disk and which ports, bridge and subnet it owns.

Each cluster takes a *slot* (0-31) when it first comes up. The slot fixes its ports, its
bridge and its pod subnet, so two clusters on one machine (a test session and a demo, say)
never collide. The choice is recorded in ``<root>/layout.json`` and reused by later runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import socket
import subprocess
from pathlib import Path

MAX_SLOTS = 32
PORT_BASE = 25000
PORTS_PER_SLOT = 20

NODE_NAMES = ("cpu-0", "gpu-0", "ascend910-0", "ascend310-0")


@dataclasses.dataclass(frozen=True)
class Layout:
    """Everything that locates one cluster: its directory, slot, ports and network."""

    root: Path
    slot: int

    # Directories and files ------------------------------------------------------------
    @property
    def pki(self) -> Path:
        """Certificates and keys."""
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        """One log file per component."""
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files and markers."""
        return self.root / "run"

    @property
    def pods(self) -> Path:
        """One folder per running pod."""
        return self.root / "pods"

    @property
    def volumes(self) -> Path:
        """Provisioned PersistentVolumes."""
        return self.root / "volumes"

    @property
    def etcd_data(self) -> Path:
        """etcd's data directory."""
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig users and tests point at."""
        return self.root / "kubeconfig"

    # Ports ------------------------------------------------------------------------------
    def _port(self, offset: int) -> int:
        return PORT_BASE + self.slot * PORTS_PER_SLOT + offset

    @property
    def etcd_client_port(self) -> int:
        """etcd's client port."""
        return self._port(0)

    @property
    def etcd_peer_port(self) -> int:
        """etcd's peer port."""
        return self._port(1)

    @property
    def apiserver_port(self) -> int:
        """The apiserver's secure port."""
        return self._port(2)

    @property
    def controller_manager_port(self) -> int:
        """The controller-manager's secure port."""
        return self._port(3)

    @property
    def scheduler_port(self) -> int:
        """The scheduler's secure port."""
        return self._port(4)

    def kubelet_port(self, node: str) -> int:
        """The kubelet API port of ``node``."""
        return self._port(10 + NODE_NAMES.index(node))

    def all_ports(self) -> list[int]:
        """Every port the cluster listens on, to check they are free."""
        return [
            self.etcd_client_port,
            self.etcd_peer_port,
            self.apiserver_port,
            self.controller_manager_port,
            self.scheduler_port,
            *(self.kubelet_port(n) for n in NODE_NAMES),
        ]

    # Network ---------------------------------------------------------------------------
    @property
    def bridge(self) -> str:
        """The pods' bridge device."""
        return f"kabr{self.slot}"

    @property
    def pod_subnet(self) -> ipaddress.IPv4Network:
        """The pods' addresses."""
        return ipaddress.IPv4Network(f"10.{200 + self.slot}.0.0/16")

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge: node address, apiserver address for pods."""
        return self.pod_subnet.network_address + 1

    @property
    def service_subnet(self) -> ipaddress.IPv4Network:
        """The Services' ClusterIP range."""
        return ipaddress.IPv4Network(f"10.{160 + self.slot}.0.0/16")

    @property
    def proxy_address(self) -> ipaddress.IPv4Address:
        """kube-proxy's address on the bridge, the last of the pod subnet: the next hop of
        the service subnet for the host and for every pod (see ``proxy.py``)."""
        return self.pod_subnet.broadcast_address - 1

    @property
    def proxy_netns(self) -> str:
        """kube-proxy's network namespace; outside ``netns_prefix``, so clearing the pods'
        namespaces never takes it."""
        return f"kaproxy{self.slot}"

    @property
    def netns_prefix(self) -> str:
        """The prefix of this cluster's network namespace names."""
        return f"ka{self.slot}-"

    @property
    def apiserver_url(self) -> str:
        """The apiserver's URL on the bridge address."""
        return f"https://127.0.0.1:{self.apiserver_port}"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _bridge_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _slots_taken_by_others(root: Path) -> set[int]:
    """Slots recorded by other clusters' layout files that are still in use."""
    taken: set[int] = set()
    registry = Path("/run/kubearts-localcluster")
    if registry.is_dir():
        for entry in registry.glob("slot-*"):
            with contextlib.suppress(ValueError, OSError):
                owner = Path(entry.read_text().strip())
                slot = int(entry.name.removeprefix("slot-"))
                if owner != root.resolve() and (owner / "layout.json").exists():
                    taken.add(slot)
    return taken


def load_or_allocate(root: Path) -> Layout:
    """Return the layout recorded in ``root``, or claim a free slot for a new cluster."""
    root = root.resolve()
    recorded = root / "layout.json"
    if recorded.exists():
        return Layout(root=root, slot=int(json.loads(recorded.read_text())["slot"]))
    taken = _slots_taken_by_others(root)
    for slot in range(MAX_SLOTS):
        candidate = Layout(root=root, slot=slot)
        if slot in taken or _bridge_exists(candidate.bridge):
            continue
        if all(_port_free(p) for p in candidate.all_ports()):
            root.mkdir(parents=True, exist_ok=True)
            recorded.write_text(json.dumps({"slot": slot}) + "\n")
            registry = Path("/run/kubearts-localcluster")
            registry.mkdir(parents=True, exist_ok=True)
            (registry / f"slot-{slot}").write_text(str(root) + "\n")
            return candidate
    raise RuntimeError(f"no free cluster slot among {MAX_SLOTS}: stop another local cluster")


def load(root: Path) -> Layout | None:
    """The layout recorded under ``root``, None when no cluster was started there."""
    recorded = root.resolve() / "layout.json"
    if not recorded.exists():
        return None
    return Layout(root=root.resolve(), slot=int(json.loads(recorded.read_text())["slot"]))


def release(layout: Layout) -> None:
    """Give the layout's slot back."""
    with contextlib.suppress(FileNotFoundError):
        (Path("/run/kubearts-localcluster") / f"slot-{layout.slot}").unlink()
