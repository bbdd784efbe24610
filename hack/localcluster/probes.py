"""Container probes as the kubelet runs them: startup, liveness and readiness, each an
httpGet, tcpSocket or exec check with its period, thresholds and initial delay.

A ``ProbeSet`` holds one container's probes and, on each step, says whether the container
is ready and whether it must be restarted; the runtime does the restarting.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("localcluster.probes")
HACK_DIR = str(Path(__file__).resolve().parents[1])

Check = Callable[[dict[str, Any]], bool]


@dataclass
class Probe:
    """One probe's schedule and its run of successes or failures."""

    spec: dict[str, Any]
    started: float
    next_due: float = 0.0
    successes: int = 0
    failures: int = 0
    ok: bool = False

    def __post_init__(self) -> None:
        self.next_due = self.started + self.spec.get("initialDelaySeconds", 0)

    @property
    def failed(self) -> bool:
        """Failed ``failureThreshold`` times in a row: the container is to be restarted."""
        return bool(self.failures >= self.spec.get("failureThreshold", 3))

    def run(self, now: float, check: Check) -> None:
        """Run the check once and count it; a check that raises counts as a failure."""
        self.next_due = now + self.spec.get("periodSeconds", 10)
        try:
            success = check(self.spec)
        except Exception:
            log.debug("probe error", exc_info=True)
            success = False
        if success:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.get("successThreshold", 1):
                self.ok = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failed:
                self.ok = False


def _probe(container: dict[str, Any], kind: str, started: float) -> Probe | None:
    return Probe(container[kind], started) if container.get(kind) else None


@dataclass
class ProbeSet:
    """A container's probes since it (re)started."""

    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None

    @classmethod
    def for_container(cls, container: dict[str, Any], started: float) -> ProbeSet:
        """The probes a container spec declares, their delays counted from ``started``."""
        return cls(
            startup=_probe(container, "startupProbe", started),
            readiness=_probe(container, "readinessProbe", started),
            liveness=_probe(container, "livenessProbe", started),
        )

    @property
    def ready_at_start(self) -> bool:
        """Without readiness and startup probes a running container is ready at once."""
        return self.readiness is None and self.startup is None

    def step(self, now: float, ready: bool, check: Check) -> tuple[bool, str | None]:
        """Run the probes that are due; return (ready, why to restart or None).

        As in the kubelet, liveness and readiness wait until the startup probe succeeds.
        """
        if self.startup is not None and not self.startup.ok:
            if now >= self.startup.next_due:
                self.startup.run(now, check)
                if self.startup.ok and self.readiness is None:
                    return True, None
                if self.startup.failed:
                    return ready, "startup probe failed"
            return ready, None
        if self.liveness is not None and now >= self.liveness.next_due:
            self.liveness.run(now, check)
            if self.liveness.failed:
                return ready, "liveness probe failed"
        if self.readiness is not None and now >= self.readiness.next_due:
            self.readiness.run(now, check)
            ready = self.readiness.ok
        return ready, None


@dataclass(frozen=True)
class ProbeTarget:
    """Where one running container is reached: its pod IP, named ports and, for exec
    probes, its process (whose namespaces the probe joins) and how it was started."""

    pod_ip: str
    ports: dict[str, int]
    pid: int
    env: dict[str, str]
    working_dir: str
    security: dict[str, Any] = field(default_factory=dict)
    scratch: Path = Path()  # folder for the exec probe's shim spec

    def port(self, port: int | str) -> int:
        """A probe's port, by number or by the container port's name."""
        return port if isinstance(port, int) else self.ports.get(port, 0) or int(port)


def check(spec: dict[str, Any], target: ProbeTarget) -> bool:
    """Run the probe ``spec`` once against ``target``; True when it succeeds."""
    timeout = spec.get("timeoutSeconds", 1)
    if "httpGet" in spec:
        return _http_get(spec["httpGet"], target, timeout)
    if "tcpSocket" in spec:
        return _tcp_socket(spec["tcpSocket"], target, timeout)
    if "exec" in spec:
        return _exec(spec["exec"], target, timeout)
    return True


def _http_get(h: dict[str, Any], target: ProbeTarget, timeout: float) -> bool:
    host = h.get("host") or target.pod_ip
    scheme = h.get("scheme", "HTTP").lower()
    url = f"{scheme}://{host}:{target.port(h['port'])}{h.get('path', '/')}"
    req = urllib.request.Request(
        url, headers={x["name"]: x["value"] for x in h.get("httpHeaders") or []}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except urllib.error.HTTPError as err:
        return 200 <= err.code < 400
    except (OSError, urllib.error.URLError):
        return False


def _tcp_socket(t: dict[str, Any], target: ProbeTarget, timeout: float) -> bool:
    try:
        with socket.create_connection(
            (t.get("host") or target.pod_ip, target.port(t["port"])), timeout
        ):
            return True
    except OSError:
        return False


def _exec(e: dict[str, Any], target: ProbeTarget, timeout: float) -> bool:
    """Run the command through the shim inside the container's namespaces."""
    spec_file = target.scratch / "probe.json"
    spec_file.write_text(
        json.dumps(
            {
                "joinPid": target.pid,
                "argv": e["command"],
                "env": target.env,
                "workingDir": target.working_dir,
                **{k: v for k, v in target.security.items() if v not in (None, [])},
            }
        )
    )
    try:
        result = subprocess.run(
            [sys.executable, "-S", "-m", "localcluster.shim", str(spec_file)],
            capture_output=True,
            timeout=timeout,
            env={"PYTHONPATH": HACK_DIR},
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0
