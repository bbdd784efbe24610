"""Pod status as a kubelet reports it: phase, conditions and container statuses, patched
only when something other than a timestamp changed."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from .clock import now_rfc3339
from .container import Container

log = logging.getLogger("localcluster.podstatus")


def container_id(uid: str, c: Container) -> str:
    """A stable ID per pod, container and restart, as runtimes give one per process."""
    return f"kubearts://{uid}/{c.name}/{c.restarts}"


def container_status(uid: str, c: Container) -> dict[str, Any]:
    """One entry of ``containerStatuses``."""
    status: dict[str, Any] = {
        "name": c.name,
        "image": c.spec.get("image", ""),
        "imageID": f"kubearts-local://{c.spec.get('image', '')}",
        "ready": c.ready and "running" in c.state,
        "restartCount": c.restarts,
        "started": "running" in c.state,
        "state": c.state,
        "lastState": c.last_state,
    }
    if c.state.get("running") or c.state.get("terminated"):
        status["containerID"] = container_id(uid, c)
    return status


def _condition(kind: str, ok: bool, now: str, reason: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    if not ok:
        out["reason"] = reason
    return out


@dataclass
class PodView:
    """What the status is computed from: the runtime's view of one pod."""

    uid: str
    phase: str
    host_ip: str
    start_time: str
    init_containers: Sequence[Container]
    containers: Sequence[Container]
    pod_ip: str | None = None
    message: tuple[str, str] | None = None  # pod-level (reason, message)


def pod_status(pod: PodView) -> dict[str, Any]:
    """The pod's ``status``, computed from scratch each time."""
    now = now_rfc3339()
    inits_done = all(
        c.done and c.state.get("terminated", {}).get("exitCode") == 0 for c in pod.init_containers
    )
    ready = pod.phase == "Running" and all(c.ready and "running" in c.state for c in pod.containers)
    status: dict[str, Any] = {
        "phase": pod.phase,
        "hostIP": pod.host_ip,
        "startTime": pod.start_time,
        "conditions": [
            _condition("Initialized", inits_done, now, "ContainersNotInitialized"),
            _condition("ContainersReady", ready, now, "ContainersNotReady"),
            _condition("Ready", ready, now, "ContainersNotReady"),
        ],
        "containerStatuses": [container_status(pod.uid, c) for c in pod.containers],
    }
    if pod.init_containers:
        status["initContainerStatuses"] = [
            container_status(pod.uid, c) for c in pod.init_containers
        ]
    if pod.pod_ip:
        status["podIP"] = pod.pod_ip
        status["podIPs"] = [{"ip": pod.pod_ip}]
    if pod.message:
        status["reason"], status["message"] = pod.message
    return status


def _comparable(status: dict[str, Any]) -> str:
    """The status without transition times, which change on every computation."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status["conditions"]
    ]
    return json.dumps({**status, "conditions": conditions}, sort_keys=True)


class StatusReporter:
    """Patches one pod's status, skipping reports that would change nothing."""

    def __init__(self, core: client.CoreV1Api, namespace: str, name: str) -> None:
        self.core, self.namespace, self.name = core, namespace, name
        self.last: str | None = None

    def report(self, status: dict[str, Any]) -> bool:
        """Patch ``status`` if it changed; False when the pod no longer exists."""
        comparable = _comparable(status)
        if comparable == self.last:
            return True
        try:
            self.core.patch_namespaced_pod_status(self.name, self.namespace, {"status": status})
            self.last = comparable
        except ApiException as err:
            if err.status == 404:
                return False
            log.warning("status update of %s/%s failed: %s", self.namespace, self.name, err.reason)
        return True
