"""Start one container process: join the container's cgroups and the pod's network
namespace, enter a private mount and UTS namespace, bind the pod's volumes at their mount
paths, then exec the command. With ``readOnlyRootFilesystem`` everything but the volumes
(and the kernel's /proc, /sys and /dev) is read-only to the container, as a read-only
image layer is.

Run by the node agent as ``python -S -m localcluster.shim SPEC.json``; the process becomes
the container (exec), so its pid, exit status and signals are the container's. A command
that cannot be executed exits 127 (126 when not executable) with the runtime's reason in
``SPEC.json``'s ``errorFile``, which the agent reports in the container state.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(source.encode() if source else None, target.encode(), None, flags, None),
        f"mount {source} on {target}",
    )


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _make_mountpoint(target: str, is_file: bool) -> None:
    if os.path.lexists(target):
        return
    os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
    if is_file:
        with open(target, "a"):
            pass
    else:
        os.makedirs(target, exist_ok=True)


def _fail(spec: dict, code: int, reason: str, message: str) -> None:
    try:
        with open(spec["errorFile"], "w") as f:
            json.dump({"reason": reason, "message": message, "exitCode": code}, f)
    except (KeyError, OSError):
        pass
    sys.stderr.write(message + "\n")
    os._exit(code)


def _enter(spec: dict) -> None:
    if "joinPid" in spec:  # exec probes: run inside a running container's namespaces
        pid = spec["joinPid"]
        _setns(f"/proc/{pid}/ns/net", CLONE_NEWNET)
        _setns(f"/proc/{pid}/ns/uts", CLONE_NEWUTS)
        _setns(f"/proc/{pid}/ns/mnt", CLONE_NEWNS)
        return
    if spec.get("netns"):
        _setns(f"/run/netns/{spec['netns']}", CLONE_NEWNET)
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _mount(None, "/", MS_REC | MS_PRIVATE)
    hostname = spec.get("hostname", "").encode()
    if hostname:
        _check(_libc.sethostname(hostname, len(hostname)), "sethostname")
    mounts = spec.get("mounts", [])
    keep = [p for p in spec.get("keepVisible", []) if os.path.isdir(p)]
    # Open every source before mounting anything: a mount at /tmp (an emptyDir, say) would
    # otherwise hide the sources of later mounts when the cluster's state lives under /tmp.
    sources = [os.open(m["source"], os.O_PATH | os.O_CLOEXEC) for m in mounts]
    kept = [os.open(p, os.O_PATH | os.O_CLOEXEC) for p in keep]
    for m, fd in zip(mounts, sources, strict=True):
        _make_mountpoint(m["target"], m.get("isFile", False))
        _mount(f"/proc/self/fd/{fd}", m["target"], MS_BIND | MS_REC)
        if m.get("readOnly"):
            _mount(None, m["target"], MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)
        os.close(fd)
    # Paths that must stay as they are on the host (the environment the container runs
    # in): where a volume now hides one, bind the original back over it.
    bound = []
    for path, fd in zip(keep, kept, strict=True):
        now = _stat_or_none(path)
        if now is None or not os.path.samestat(os.stat(f"/proc/self/fd/{fd}"), now):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, MS_BIND | MS_REC)
            bound.append(path)
        os.close(fd)
    if spec.get("readOnlyRootFilesystem"):
        _read_only_root(bound)


def _read_only_root(bound: list[str]) -> None:
    """Make the root file system, and the environment bound back over volumes (``bound``),
    read-only in this mount namespace; the volume mounts are mounts of their own and stay
    as they are. A bind remount changes only this namespace's view, never the host's.
    (``os.path.ismount`` cannot tell a bind mount within one file system, so the binds
    made above are named rather than looked for.)"""
    _mount(None, "/", MS_BIND | MS_REMOUNT | MS_RDONLY)
    for path in bound:
        _mount(None, path, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _join_cgroups(spec: dict) -> None:
    """Move this process into the container's cgroups, so its limits hold from exec on
    for the command and everything it starts."""
    for procs in spec.get("cgroupProcs", []):
        with open(procs, "w") as f:
            f.write(str(os.getpid()))


def _drop_privileges(spec: dict) -> None:
    uid, gid = spec.get("runAsUser"), spec.get("runAsGroup")
    groups = spec.get("supplementalGroups", [])
    if uid is None and gid is None and not groups:
        return
    os.setgroups(groups)
    if gid is not None:
        os.setgid(gid)
    elif uid is not None:
        os.setgid(uid)
    if uid is not None:
        os.setuid(uid)


def main() -> None:
    """Set up the container from the spec file named in argv and exec it."""
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    try:
        _join_cgroups(spec)
    except OSError as err:
        _fail(spec, 128, "RunContainerError", f"failed to join the container's cgroup: {err}")
    try:
        _enter(spec)
    except OSError as err:
        _fail(spec, 128, "RunContainerError", f"failed to create the container's namespaces: {err}")
    workdir = spec.get("workingDir") or "/"
    try:
        os.makedirs(workdir, exist_ok=True)
        _drop_privileges(spec)
        os.chdir(workdir)
    except OSError as err:
        _fail(spec, 128, "RunContainerError", f"failed to set up the container process: {err}")
    argv = spec["argv"]
    env = spec.get("env", {})
    if not argv:
        _fail(spec, 128, "RunContainerError", "no command specified")
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        _fail(
            spec,
            127,
            "ContainerCannotRun",
            f'exec: "{argv[0]}": executable file not found in $PATH',
        )
    except PermissionError:
        _fail(spec, 126, "ContainerCannotRun", f'exec: "{argv[0]}": permission denied')
    except OSError as err:
        _fail(spec, 128, "ContainerCannotRun", f'exec: "{argv[0]}": {err}')


if __name__ == "__main__":
    main()
