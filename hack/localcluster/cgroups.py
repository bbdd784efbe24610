"""Container cgroups, as a kubelet and its runtime make them.

Each container run gets its own cgroup with ``resources.limits`` applied: memory as a hard
limit, cpu as a CFS quota per 100 ms period. The shim moves the container process into it
before exec, so everything the container starts is counted and limited too. When the
process ends, the cgroup tells whether the kernel's OOM killer struck (the runtime then
reports ``OOMKilled``), and is removed.

The tree sits under the agent's own cgroup, so limits set on the agent (a CI job's, a
sandbox's) still hold: ``<agent's cgroup>/kubearts-<slot>/pod<uid>/<container>``. Both
cgroup v1 (separate ``memory`` and ``cpu`` hierarchies) and v2 (one unified hierarchy
with the memory and cpu controllers) are handled; where neither is writable, containers
run without limits and the agent logs why once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

log = logging.getLogger("localcluster.cgroups")

CFS_PERIOD_US: Final = 100_000
MIN_QUOTA_US: Final = 1_000  # the kernel's (and the kubelet's) smallest quota
_SUFFIXES: Final = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip


def parse_quantity(quantity: str | int | float) -> Decimal:
    """A Kubernetes quantity (``50Mi``, ``200m``, ``1.5``, ``1e3``) as a number."""
    text = str(quantity).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            return Decimal(text[: -len(suffix)]) * Decimal(_SUFFIXES[suffix])
    return Decimal(text)


@dataclass(frozen=True)
class Limits:
    """What a container's ``resources.limits`` ask the kernel to enforce."""

    memory_bytes: int | None = None
    cpu_quota_us: int | None = None  # per CFS_PERIOD_US

    @classmethod
    def from_resources(cls, resources: dict[str, Any] | None) -> Limits:
        """The limits of a container's ``resources``; requests alone limit nothing."""
        limits = (resources or {}).get("limits") or {}
        memory = cpu = None
        if "memory" in limits:
            memory = math.ceil(parse_quantity(limits["memory"]))
        if "cpu" in limits:
            millicores = math.ceil(parse_quantity(limits["cpu"]) * 1000)
            cpu = max(MIN_QUOTA_US, millicores * CFS_PERIOD_US // 1000)
        return cls(memory_bytes=memory, cpu_quota_us=cpu)


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under ``""`` in v2."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, options) of every cgroup file system."""
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        if fstype in ("cgroup", "cgroup2"):
            found.append((point, fstype, set(options.split(","))))
    return found


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


@dataclass(frozen=True)
class Hierarchy:
    """Where this cluster's container cgroups go: one base folder per controller in v1
    (``memory``, ``cpu``), a single one in v2."""

    version: int
    memory: Path
    cpu: Path

    @property
    def bases(self) -> list[Path]:
        """The distinct base folders (one in v2)."""
        return list(dict.fromkeys((self.memory, self.cpu)))


def find_hierarchy(cluster: str) -> Hierarchy | None:
    """The writable hierarchy for cluster ``cluster``'s containers, None when there is none."""
    own = _own_cgroups()
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for point, fstype, options in _mounts():
        if fstype == "cgroup":
            for controller in ("memory", "cpu"):
                if controller in options and controller in own:
                    v1[controller] = Path(point) / own[controller].lstrip("/") / cluster
        elif "" in own:
            v2 = Path(point) / own[""].lstrip("/") / cluster
    if len(v1) == 2 and all(_writable(p.parent) for p in v1.values()):
        return Hierarchy(1, v1["memory"], v1["cpu"])
    if v2 is not None and _writable(v2.parent):
        enabled = (v2.parent / "cgroup.controllers").read_text().split()
        if {"memory", "cpu"} <= set(enabled):
            return Hierarchy(2, v2, v2)
    return None


def _enable_v2_controllers(folder: Path) -> None:
    """Let ``folder``'s children use memory and cpu (v2 delegates controllers per level)."""
    (folder / "cgroup.subtree_control").write_text("+memory +cpu")


class ContainerCgroup:
    """The cgroup of one run of one container."""

    def __init__(self, hierarchy: Hierarchy, pod_uid: str, container: str) -> None:
        self.hierarchy = hierarchy
        self.parts = (f"pod{pod_uid}", container)

    def _path(self, base: Path) -> Path:
        return base.joinpath(*self.parts)

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files the container process writes its pid to."""
        return [str(self._path(b) / "cgroup.procs") for b in self.hierarchy.bases]

    def create(self, limits: Limits) -> None:
        """Make the cgroup with ``limits``; it must not hold processes yet."""
        h = self.hierarchy
        for base in h.bases:
            if h.version == 2:
                # Each level's subtree_control enables the controllers for the next one.
                base.mkdir(exist_ok=True)
                _enable_v2_controllers(base.parent)
                _enable_v2_controllers(base)
                self._path(base).parent.mkdir(exist_ok=True)
                _enable_v2_controllers(self._path(base).parent)
            self._path(base).mkdir(parents=True, exist_ok=True)
        memory, cpu = self._path(h.memory), self._path(h.cpu)
        if h.version == 1:
            if limits.memory_bytes is not None:
                (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            if limits.cpu_quota_us is not None:
                (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(limits.cpu_quota_us))
        else:
            if limits.memory_bytes is not None:
                (memory / "memory.max").write_text(str(limits.memory_bytes))
                with contextlib.suppress(OSError):  # the kubelet allows no swap either
                    (memory / "memory.swap.max").write_text("0")
            if limits.cpu_quota_us is not None:
                (cpu / "cpu.max").write_text(f"{limits.cpu_quota_us} {CFS_PERIOD_US}")

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup.

        v1 counts kills in ``memory.oom_control`` (``oom_kill``, kernel 4.13+), v2 in
        ``memory.events``; a failed charge (``memory.failcnt``) is no proof on its own:
        the kernel reclaims and retries before it kills.
        """
        memory = self._path(self.hierarchy.memory)
        name = "memory.oom_control" if self.hierarchy.version == 1 else "memory.events"
        try:
            counters = dict(line.split() for line in (memory / name).read_text().splitlines())
        except OSError:
            return False
        return int(counters.get("oom_kill", "0")) > 0

    def peak_memory(self) -> int | None:
        """The most memory the cgroup ever used, in bytes (v1 ``memory.max_usage_in_bytes``,
        v2 ``memory.peak`` from kernel 5.19); None where the kernel does not say."""
        memory = self._path(self.hierarchy.memory)
        name = "memory.max_usage_in_bytes" if self.hierarchy.version == 1 else "memory.peak"
        try:
            return int((memory / name).read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Kill what is left in the cgroup (a daemon the container forked) and remove it."""
        for base in self.hierarchy.bases:
            _remove_tree(self._path(base))


def _pids(folder: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    return []


def _remove_tree(folder: Path, timeout: float = 5.0) -> None:
    """rmdir a cgroup and its children, killing their processes first."""
    if not folder.is_dir():
        return
    for child in [p for p in folder.iterdir() if p.is_dir()]:
        _remove_tree(child, timeout)
    deadline = time.monotonic() + timeout
    while True:
        for pid in _pids(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:  # busy until the killed processes are reaped
            if time.monotonic() > deadline:
                log.warning("cannot remove cgroup %s: %s", folder, err)
                return
            time.sleep(0.05)


def remove_pod(hierarchy: Hierarchy, pod_uid: str) -> None:
    """Remove a pod's cgroup folder with whatever is left in it."""
    for base in hierarchy.bases:
        _remove_tree(base / f"pod{pod_uid}")


def remove_all(hierarchy: Hierarchy) -> None:
    """Remove this cluster's cgroups (an earlier agent's, or at shutdown)."""
    for base in hierarchy.bases:
        _remove_tree(base)
