"""The CPUs this container may use, from its cgroup's CPU quota.

``os.cpu_count()`` describes the node; a pod's ``limits.cpu`` is visible only in the cgroup:
v2 ``cpu.max`` ("<quota> <period>" or "max <period>") or v1 ``cpu.cfs_quota_us`` and
``cpu.cfs_period_us`` (-1 for no quota). ONNX Runtime's intra-op threads follow this figure:
more threads than the quota only queue on the CFS throttle.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs the cgroup may use (quota / period), or None without a quota."""
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        if quota != "max" and period:
            return int(quota) / int(period)
        return None
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota_text = _read(root / folder / "cpu.cfs_quota_us")
        period_text = _read(root / folder / "cpu.cfs_period_us")
        if quota_text and period_text and int(quota_text) > 0:
            return int(quota_text) / int(period_text)
    return None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """Threads worth running: the quota rounded up, at most the CPUs this process may use."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    quota = cpu_quota(root)
    if quota is None:
        return max(1, available)
    return max(1, min(available, math.ceil(quota)))
