"""What the container may use: CPU quota and memory limit from its cgroup.

A pod's limits are visible only through the cgroup files; ``os.cpu_count()`` and the
machine's RAM describe the node. Both cgroup v2 (``cpu.max``, ``memory.max``) and v1
(``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``, ``memory/memory.limit_in_bytes``) are
read; without a limit, the node's figures are used.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
#: v1 reports "no limit" as a huge number (page-rounded 2^63-1); anything above this is none.
_UNLIMITED: Final = 1 << 60


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


def memory_limit(root: Path = CGROUP_ROOT) -> int:
    """Bytes of memory the container may use: its cgroup limit, else the machine's RAM."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        text = _read(path)
        if text and text != "max" and text.isdigit() and int(text) < _UNLIMITED:
            return int(text)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
