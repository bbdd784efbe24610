"""A pure checker for the Kubernetes "restricted" Pod Security Standard.

``restricted_violations(pod_spec)`` applies the rules of the restricted profile as the
Kubernetes documentation defines them for v1.2x (https://kubernetes.io/docs/concepts/
security/pod-security-standards/): every baseline rule plus the restricted ones. It reads a
pod spec dict (``Pod.spec``, or ``spec.template.spec`` of a workload; see ``pod_spec_of``)
and returns one line per violation, each starting with the check id Pod Security Admission
uses (``privileged``, ``hostPathVolumes``, ``runAsNonRoot``, ...) and naming the field.

Used on the chart's operator Deployment and on the pods the operator builds, so that a
namespace labelled ``pod-security.kubernetes.io/enforce: restricted`` admits all of them.

Only the pod spec is read: the pre-1.19 AppArmor and seccomp *annotations* live in pod
metadata and are not checked (the fields that replaced them are).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

# --- Allowed values, from the standard ---------------------------------------------------

#: Capabilities a baseline container may add.
BASELINE_CAPABILITIES: Final = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
#: The only capability a restricted container may add (after dropping ALL).
RESTRICTED_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})

#: Sysctls the baseline profile allows (the "safe" set, v1.29 and later).
SAFE_SYSCTLS: Final = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)

#: SELinux types the baseline profile allows (empty means unset).
SELINUX_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)

#: Volume sources the restricted profile allows.
RESTRICTED_VOLUME_TYPES: Final = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)

_CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (absent fields read as unset)."""
    return value if isinstance(value, Mapping) else {}


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every container with the path that names it, e.g. ``spec.containers[0]``."""
    for field in _CONTAINER_LISTS:
        for index, container in enumerate(pod_spec.get(field) or []):
            yield f"spec.{field}[{index}]", _mapping(container)


def _baseline(pod_spec: Mapping[str, Any]) -> list[str]:
    """Violations of the baseline profile (which the restricted profile includes)."""
    problems: list[str] = []
    pod_sc = _mapping(pod_spec.get("securityContext"))

    # Host namespaces.
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field) is True:
            problems.append(f"hostNamespaces: spec.{field} must be unset or false")

    # Windows HostProcess.
    if _mapping(pod_sc.get("windowsOptions")).get("hostProcess") is True:
        problems.append(
            "windowsHostProcess: spec.securityContext.windowsOptions.hostProcess must be unset "
            "or false"
        )

    # HostPath volumes.
    for index, volume in enumerate(pod_spec.get("volumes") or []):
        if "hostPath" in _mapping(volume):
            name = _mapping(volume).get("name", "?")
            problems.append(
                f"hostPathVolumes: spec.volumes[{index}] ({name}) must not be a hostPath volume"
            )

    # Pod-level AppArmor, SELinux, seccomp and sysctls.
    problems.extend(_apparmor(pod_sc, "spec.securityContext"))
    problems.extend(_selinux(pod_sc, "spec.securityContext"))
    if _mapping(pod_sc.get("seccompProfile")).get("type") == "Unconfined":
        problems.append(
            "seccompProfile_baseline: spec.securityContext.seccompProfile.type must not be "
            "Unconfined"
        )
    for index, sysctl in enumerate(pod_sc.get("sysctls") or []):
        name = _mapping(sysctl).get("name")
        if name not in SAFE_SYSCTLS:
            problems.append(
                f"sysctls: spec.securityContext.sysctls[{index}] ({name}) is not a safe sysctl"
            )

    for path, container in _containers(pod_spec):
        sc = _mapping(container.get("securityContext"))
        sc_path = f"{path}.securityContext"
        if sc.get("privileged") is True:
            problems.append(f"privileged: {sc_path}.privileged must be unset or false")
        if _mapping(sc.get("windowsOptions")).get("hostProcess") is True:
            problems.append(
                f"windowsHostProcess: {sc_path}.windowsOptions.hostProcess must be unset or false"
            )
        for add in _mapping(sc.get("capabilities")).get("add") or []:
            if add not in BASELINE_CAPABILITIES:
                problems.append(
                    f"capabilities_baseline: {sc_path}.capabilities.add must not add {add}"
                )
        for index, port in enumerate(container.get("ports") or []):
            host_port = _mapping(port).get("hostPort")
            if host_port not in (None, 0):
                problems.append(
                    f"hostPorts: {path}.ports[{index}].hostPort must be unset or 0, not {host_port}"
                )
        problems.extend(_apparmor(sc, sc_path))
        problems.extend(_selinux(sc, sc_path))
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"procMount: {sc_path}.procMount must be unset or Default")
        if _mapping(sc.get("seccompProfile")).get("type") == "Unconfined":
            problems.append(
                f"seccompProfile_baseline: {sc_path}.seccompProfile.type must not be Unconfined"
            )
    return problems


def _apparmor(security_context: Mapping[str, Any], path: str) -> list[str]:
    profile = _mapping(security_context.get("appArmorProfile")).get("type")
    if profile not in (None, "RuntimeDefault", "Localhost"):
        return [
            f"appArmorProfile: {path}.appArmorProfile.type must be RuntimeDefault or Localhost, "
            f"not {profile}"
        ]
    return []


def _selinux(security_context: Mapping[str, Any], path: str) -> list[str]:
    options = _mapping(security_context.get("seLinuxOptions"))
    problems: list[str] = []
    if options.get("type", "") not in SELINUX_TYPES:
        problems.append(
            f"seLinuxOptions: {path}.seLinuxOptions.type must be one of "
            f"{', '.join(sorted(t for t in SELINUX_TYPES if t))}, not {options['type']}"
        )
    for field in ("user", "role"):
        if options.get(field):
            problems.append(f"seLinuxOptions: {path}.seLinuxOptions.{field} must be unset")
    return problems


def _restricted(pod_spec: Mapping[str, Any]) -> list[str]:
    """Violations of the rules the restricted profile adds to baseline."""
    problems: list[str] = []
    pod_sc = _mapping(pod_spec.get("securityContext"))
    # Linux-only rules are waived for pods that declare spec.os.name: windows (v1.25+).
    windows = _mapping(pod_spec.get("os")).get("name") == "windows"

    for index, volume in enumerate(pod_spec.get("volumes") or []):
        sources = set(_mapping(volume)) - {"name"}
        forbidden = sorted(sources - RESTRICTED_VOLUME_TYPES)
        if forbidden:
            name = _mapping(volume).get("name", "?")
            problems.append(
                f"restrictedVolumes: spec.volumes[{index}] ({name}) uses {', '.join(forbidden)}; "
                f"allowed are {', '.join(sorted(RESTRICTED_VOLUME_TYPES))}"
            )

    if pod_sc.get("runAsUser") == 0:
        problems.append("runAsUser: spec.securityContext.runAsUser must not be 0")
    if pod_sc.get("runAsNonRoot") is False:
        problems.append("runAsNonRoot: spec.securityContext.runAsNonRoot must not be false")
    pod_non_root = pod_sc.get("runAsNonRoot") is True
    pod_seccomp = _mapping(pod_sc.get("seccompProfile")).get("type")

    for path, container in _containers(pod_spec):
        sc = _mapping(container.get("securityContext"))
        sc_path = f"{path}.securityContext"

        # A container's own setting overrides the pod's.
        non_root = sc.get("runAsNonRoot")
        if non_root is False:
            problems.append(f"runAsNonRoot: {sc_path}.runAsNonRoot must not be false")
        elif non_root is None and not pod_non_root:
            problems.append(
                f"runAsNonRoot: {sc_path}.runAsNonRoot or spec.securityContext.runAsNonRoot "
                "must be true"
            )
        if sc.get("runAsUser") == 0:
            problems.append(f"runAsUser: {sc_path}.runAsUser must not be 0")

        if windows:
            continue
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(
                f"allowPrivilegeEscalation: {sc_path}.allowPrivilegeEscalation must be false"
            )
        seccomp = _mapping(sc.get("seccompProfile")).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f"seccompProfile_restricted: {sc_path}.seccompProfile.type or "
                "spec.securityContext.seccompProfile.type must be RuntimeDefault or Localhost"
            )
        capabilities = _mapping(sc.get("capabilities"))
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(
                f"capabilities_restricted: {sc_path}.capabilities.drop must include ALL"
            )
        for add in capabilities.get("add") or []:
            if add not in RESTRICTED_CAPABILITIES:
                problems.append(
                    f"capabilities_restricted: {sc_path}.capabilities.add may only add "
                    f"NET_BIND_SERVICE, not {add}"
                )
    return problems


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Every way ``pod_spec`` breaks the restricted Pod Security Standard; empty if none.

    Each entry reads ``"<check id>: <field path> <what it must be>"``.
    """
    return _baseline(pod_spec) + _restricted(pod_spec)


#: Workload kinds whose pod spec sits at ``spec.template.spec``.
_TEMPLATED_KINDS: Final = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
)


def pod_spec_of(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec inside a Pod, a workload (Deployment, Job, ...) or a CronJob manifest."""
    kind = manifest.get("kind")
    spec = _mapping(manifest.get("spec"))
    if kind == "Pod":
        return spec
    if kind in _TEMPLATED_KINDS:
        return _mapping(_mapping(spec.get("template")).get("spec"))
    if kind == "CronJob":
        job_spec = _mapping(_mapping(spec.get("jobTemplate")).get("spec"))
        return _mapping(_mapping(job_spec.get("template")).get("spec"))
    raise ValueError(f"pod_spec_of: kind {kind!r} has no pod template")
