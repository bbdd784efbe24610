"""The node's record of one container: its spec, process, state and restarts."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any, Final

from .cgroups import ContainerCgroup
from .probes import ProbeSet

# The kubelet's crash-loop back-off: doubled after each failed run, up to five minutes.
BACKOFF_START: Final = 10.0
BACKOFF_MAX: Final = 300.0


@dataclass
class Container:
    """One container of a pod as the runtime drives it and the status reports it."""

    spec: dict[str, Any]
    init: bool
    restarts: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    restart_at: float | None = None
    backoff: float = BACKOFF_START
    probes: ProbeSet = field(default_factory=ProbeSet)
    done: bool = False  # terminated and will not restart
    env: dict[str, str] = field(default_factory=dict)  # resolved when last started
    cgroup: ContainerCgroup | None = None  # of the current run; None without cgroups

    @property
    def name(self) -> str:
        """The container's name, unique within its pod."""
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        """Its process exists and has not exited."""
        return self.proc is not None and self.proc.poll() is None
