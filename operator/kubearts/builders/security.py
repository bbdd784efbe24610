"""Security contexts meeting the Kubernetes "restricted" Pod Security Standard.

Every pod the operator creates uses these, so namespaces labelled
``pod-security.kubernetes.io/enforce: restricted`` accept them. The images run as user
1000 (see ``images/*/Dockerfile``); ``fsGroup`` makes mounted volumes writable for it, and
changes their ownership only when the volume's root does not already match
(``OnRootMismatch``), so a pod start never walks a whole workspace. The root file system
is read-only: every pod has its scratch ``emptyDir`` at ``/tmp`` (HOME and TMPDIR).
"""

from __future__ import annotations

from typing import Final, Literal, TypedDict

__all__ = [
    "RUN_AS_GROUP",
    "RUN_AS_USER",
    "ContainerSecurityContext",
    "PodSecurityContext",
    "container_security_context",
    "pod_security_context",
]

RUN_AS_USER: Final = 1000
RUN_AS_GROUP: Final = 1000


class SeccompProfile(TypedDict):
    type: Literal["RuntimeDefault", "Localhost"]


class Capabilities(TypedDict):
    drop: list[str]


class PodSecurityContext(TypedDict):
    runAsNonRoot: bool
    runAsUser: int
    runAsGroup: int
    fsGroup: int
    fsGroupChangePolicy: Literal["OnRootMismatch", "Always"]
    seccompProfile: SeccompProfile


class ContainerSecurityContext(TypedDict):
    runAsNonRoot: bool
    runAsUser: int
    allowPrivilegeEscalation: bool
    privileged: bool
    readOnlyRootFilesystem: bool
    capabilities: Capabilities
    seccompProfile: SeccompProfile


def pod_security_context() -> PodSecurityContext:
    """The pod-level ``securityContext``: non-root user 1000, RuntimeDefault seccomp,
    volume ownership changed only on a mismatch."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_GROUP,
        "fsGroup": RUN_AS_GROUP,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> ContainerSecurityContext:
    """The container-level ``securityContext``: no privilege escalation, all capabilities
    dropped, a read-only root file system. The pod-level fields are repeated so a container
    stays compliant even when copied into a pod spec without the pod-level context."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
