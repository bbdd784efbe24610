"""One pod's life on a node: sandbox (network namespace), volumes, init containers, app
containers in their cgroups with restarts and back-off, probes (run by ``probes.py``),
status reports (computed by ``podstatus.py``) and graceful deletion.

The runtime sees the node only through ``host.NodeHost``, which the agent satisfies."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from . import cgroups, network, probes
from .cgroups import ContainerCgroup, Limits
from .clock import now_rfc3339
from .container import BACKOFF_MAX, Container
from .host import NodeHost
from .nodes import DEVICE_ENV
from .podstatus import PodView, StatusReporter, container_id, pod_status
from .probes import ProbeSet, ProbeTarget
from .volumes import PodVolumes, VolumeNotReadyError, expand

log = logging.getLogger("localcluster.runtime")
HACK_DIR = str(Path(__file__).resolve().parents[1])
REPO = Path(__file__).resolve().parents[2]
TERMINATION_MESSAGE_LIMIT = 4096


class PodRuntime:
    """Runs one pod in its own thread until it ends or is deleted."""

    def __init__(self, agent: NodeHost, pod: dict[str, Any]) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.name: str = meta["name"]
        self.ns: str = meta["namespace"]
        self.node: str = pod["spec"]["nodeName"]
        self.dir = agent.layout.pods / self.uid
        self.stop_requested = threading.Event()
        self.gone = threading.Event()  # the API object no longer exists
        self.grace: float = 30.0
        self.address: ipaddress.IPv4Address | None = None
        self.netns: str | None = None
        self.devices: dict[str, list[int]] = {}
        self.volumes: PodVolumes | None = None
        self.init_containers = [Container(c, True) for c in pod["spec"].get("initContainers") or []]
        self.containers = [Container(c, False) for c in pod["spec"]["containers"]]
        self.phase = "Pending"
        self.start_time = now_rfc3339()
        self.pod_ip: str | None = None
        self.reporter = StatusReporter(agent.core, self.ns, self.name)
        self.message: tuple[str, str] | None = None  # pod-level (reason, message)
        self.thread = threading.Thread(
            target=self._run, name=f"pod-{self.ns}/{self.name}", daemon=True
        )

    # -- control from the agent ---------------------------------------------------------
    def start(self) -> None:
        """Start running the pod in its own thread."""
        self.thread.start()

    @property
    def finished(self) -> bool:
        """The pod's thread has run and ended."""
        return self.thread.ident is not None and not self.thread.is_alive()

    def update(self, pod: dict[str, Any]) -> None:
        """Honour a deletion request (with its grace period) seen on the pod."""
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp"):
            return
        if self.finished:
            # Ended on its own earlier; only the final deletion is left.
            self._delete_from_api()
            self.agent.forget(self.uid)
        elif not self.stop_requested.is_set():
            grace = meta.get("deletionGracePeriodSeconds")
            self.grace = float(
                grace if grace is not None else pod["spec"].get("terminationGracePeriodSeconds", 30)
            )
            self.stop_requested.set()

    def deleted(self) -> None:
        """The API object is gone: stop at once and clean up."""
        self.gone.set()
        self.grace = 0
        self.stop_requested.set()
        if self.finished:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.agent.forget(self.uid)

    # -- main loop ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._setup()
            if not self.stop_requested.is_set():
                self._run_init_containers()
            if not self.stop_requested.is_set() and self.phase != "Failed":
                self._run_containers()
        except Exception:  # keep the agent alive; report the pod as failed
            log.exception("pod %s/%s crashed in the runtime", self.ns, self.name)
            self.phase = "Failed"
            self.message = ("RuntimeError", "the node agent failed to run this pod; see its log")
            self._report()
        finally:
            self._terminate_all()
            self._teardown()
            if self.stop_requested.is_set():
                # Deleted while running: report the final states, then finish the deletion.
                # A pod that ended on its own stays known (its logs are served) until then.
                if not self.gone.is_set():
                    self._report()
                    self._delete_from_api()
                else:
                    shutil.rmtree(self.dir, ignore_errors=True)
                self.agent.forget(self.uid)

    def _setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        spec = self.pod["spec"]
        host_ip = str(self.agent.layout.gateway)
        if spec.get("hostNetwork"):
            pod_ip = host_ip
        else:
            self.address = self.agent.addresses.allocate()
            pod_ip = str(self.address)
        self.pod_ip = pod_ip
        self.volumes = PodVolumes(self.agent.core, self.pod, self.dir, pod_ip, host_ip)
        while not self.stop_requested.is_set():
            try:
                self.volumes.setup()
                break
            except VolumeNotReadyError as err:
                self._set_waiting_all("ContainerCreating", str(err))
                self._report()
                self.stop_requested.wait(1.0)
        if self.stop_requested.is_set():
            return
        if self.address is not None:
            self.netns = network.create_pod_network(self.agent.layout, self.uid, self.address)
        self.devices = self.agent.allocate_devices(self.node, self.uid, self._device_requests())
        self._report()

    def _device_requests(self) -> dict[str, int]:
        wanted: dict[str, int] = {}
        for c in self.pod["spec"]["containers"]:
            for res, qty in ((c.get("resources") or {}).get("limits") or {}).items():
                if res in DEVICE_ENV:
                    wanted[res] = wanted.get(res, 0) + int(qty)
        return wanted

    def _run_init_containers(self) -> None:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        for c in self.init_containers:
            while not self.stop_requested.is_set():
                self._start(c)
                self._report()
                while (
                    c.proc is not None
                    and c.proc.poll() is None
                    and not self.stop_requested.is_set()
                ):
                    time.sleep(0.1)
                if self.stop_requested.is_set():
                    return
                code = self._reap(c)
                if code == 0:
                    c.done = True
                    break
                if policy == "Never":
                    c.done = True
                    self.phase = "Failed"
                    self._report()
                    return
                self._back_off(c)
                while (
                    c.restart_at
                    and time.monotonic() < c.restart_at
                    and not self.stop_requested.is_set()
                ):
                    time.sleep(0.2)
        self._report()

    def _run_containers(self) -> None:
        for c in self.containers:
            self._start(c)
        self.phase = "Running"
        self._report()
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while not self.stop_requested.is_set():
            changed = False
            now = time.monotonic()
            for c in self.containers:
                if c.proc is not None and c.proc.poll() is not None:
                    code = self._reap(c)
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and code != 0):
                        self._back_off(c)
                    else:
                        c.done = True
                elif c.proc is None and c.restart_at is not None and now >= c.restart_at:
                    c.restart_at = None
                    c.restarts += 1
                    self._start(c)
                    changed = True
                if c.proc is not None and c.proc.poll() is None:
                    changed |= self._probe(c, now)
            if all(c.done for c in self.containers):
                failed = any(
                    c.state.get("terminated", {}).get("exitCode", 0) != 0 for c in self.containers
                )
                self.phase = "Failed" if failed else "Succeeded"
                self._report()
                return
            if changed:
                self._report()
            self.stop_requested.wait(0.1)

    # -- containers ----------------------------------------------------------------------
    def _command(
        self, c: Container, image: dict[str, Any] | None, env: dict[str, str]
    ) -> list[str] | None:
        """The container's argv, as a runtime builds it from command/args and the image's
        entrypoint; None when neither names a program."""
        command = c.spec.get("command")
        args = c.spec.get("args")
        if command:
            argv = list(command) + list(args or [])
        elif image is not None and image.get("entrypoint"):
            argv = list(image["entrypoint"]) + list(
                args if args is not None else image.get("cmd", [])
            )
        else:
            return None
        return [expand(a, env) for a in argv]

    def _env(self, c: Container, image: dict[str, Any]) -> dict[str, str]:
        assert self.volumes is not None
        layout = self.agent.layout
        venv_bin = str(self.agent.venv / "bin")
        sc = self._security(c)
        env = {
            "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": self.name[:63],
            "HOME": "/root" if sc.get("runAsUser") in (None, 0) else "/tmp",
            "LANG": "C.UTF-8",
            "VIRTUAL_ENV": str(self.agent.venv),
            "KUBERNETES_SERVICE_HOST": str(layout.gateway),
            "KUBERNETES_SERVICE_PORT": str(layout.apiserver_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(layout.apiserver_port),
            "KUBERNETES_PORT": f"tcp://{layout.gateway}:{layout.apiserver_port}",
        }
        for passthrough in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "TZ"):
            if passthrough in os.environ:
                env[passthrough] = os.environ[passthrough]
        env.update({k: str(v) for k, v in (image.get("env") or {}).items()})
        limits = (c.spec.get("resources") or {}).get("limits") or {}
        for res, ids in self.devices.items():
            if res in limits:
                env[DEVICE_ENV[res]] = ",".join(str(i) for i in ids)
        env.update(self.volumes.resolve_env(c.spec))
        return env

    def _security(self, c: Container) -> dict[str, Any]:
        pod_sc = self.pod["spec"].get("securityContext") or {}
        sc = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup") if k in pod_sc}
        sc.update(
            {
                k: v
                for k, v in (c.spec.get("securityContext") or {}).items()
                if k in ("runAsUser", "runAsGroup")
            }
        )
        if (c.spec.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            sc["readOnlyRootFilesystem"] = True
        groups = list(pod_sc.get("supplementalGroups") or [])
        if "fsGroup" in pod_sc:
            groups.append(pod_sc["fsGroup"])
        sc["supplementalGroups"] = groups
        return sc

    def log_path(self, container: str, restart: int) -> Path:
        """The log file of one run (0, 1, ... per restart) of a container."""
        return self.dir / "logs" / container / f"{restart}.log"

    def _start(self, c: Container) -> None:
        assert self.volumes is not None
        image = self.agent.image_config(c.spec.get("image", ""))
        try:
            env = self._env(c, image or {})
        except VolumeNotReadyError as err:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(err)}}
            c.proc, c.restart_at = None, time.monotonic() + 2
            return
        argv = self._command(c, image, env)
        if argv is None:
            c.state = {
                "waiting": {
                    "reason": "ErrImagePull",
                    "message": f'image "{c.spec.get("image")}" has no local mapping '
                    "(hack/localcluster/images.yaml) and the container "
                    "names no command",
                }
            }
            c.proc, c.restart_at = None, time.monotonic() + 5
            return
        c.env = env
        cdir = self.dir / "containers" / c.name
        cdir.mkdir(parents=True, exist_ok=True)
        term = cdir / "termination-log"
        term.write_bytes(b"")
        term.chmod(0o666)
        error_file = cdir / "error.json"
        error_file.unlink(missing_ok=True)
        mounts = []
        for m in c.spec.get("volumeMounts") or []:
            source = self.volumes.mount_source(m)
            mounts.append(
                {
                    "source": str(source),
                    "target": m["mountPath"],
                    "readOnly": bool(m.get("readOnly")),
                    "isFile": source.is_file(),
                }
            )
        term_path = c.spec.get("terminationMessagePath", "/dev/termination-log")
        mounts.append({"source": str(term), "target": term_path, "isFile": True})
        sc = self._security(c)
        shim_spec = {
            "netns": self.netns,
            "hostname": self.name[:63],
            "mounts": mounts,
            # The "image": the project's environment. A volume mounted over one of its
            # parents (an emptyDir at /tmp while the checkout lives under /tmp) must not
            # hide it, as a volume never hides a real image's files outside its mount path.
            "keepVisible": [str(REPO)],
            "workingDir": c.spec.get("workingDir") or "/",
            "argv": argv,
            "env": env,
            "errorFile": str(error_file),
            **{k: v for k, v in sc.items() if v not in (None, [])},
        }
        c.cgroup = self._make_cgroup(c)
        if c.cgroup is not None:
            shim_spec["cgroupProcs"] = c.cgroup.procs_files
        spec_file = cdir / "spec.json"
        spec_file.write_text(json.dumps(shim_spec))
        log_file = self.log_path(c.name, c.restarts)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.agent.record_mountpoints(m["target"] for m in mounts)
        with open(log_file, "ab") as out:
            c.proc = subprocess.Popen(
                [sys.executable, "-S", "-m", "localcluster.shim", str(spec_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                env={"PYTHONPATH": HACK_DIR},
            )
        c.started_at = now_rfc3339()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = False
        c.probes = ProbeSet.for_container(c.spec, time.monotonic())
        c.ready = c.probes.ready_at_start

    def _make_cgroup(self, c: Container) -> ContainerCgroup | None:
        """A fresh cgroup for the container's next run, with its limits; None where the
        node has no writable cgroups (the container then runs unlimited)."""
        if self.agent.cgroups is None:
            return None
        cgroup = ContainerCgroup(self.agent.cgroups, self.uid, c.name)
        cgroup.remove()  # an earlier run's, had it been left behind
        try:
            cgroup.create(Limits.from_resources(c.spec.get("resources")))
        except OSError as err:
            log.warning(
                "%s/%s container %s runs without a cgroup: %s", self.ns, self.name, c.name, err
            )
            cgroup.remove()
            return None
        return cgroup

    def _release_cgroup(self, c: Container) -> bool:
        """Remove the ended run's cgroup; True when the OOM killer had struck in it."""
        if c.cgroup is None:
            return False
        oom = c.cgroup.oom_killed()
        peak = c.cgroup.peak_memory()
        if peak is not None:
            log.info(
                "%s/%s container %s used at most %.1f MiB of memory (limit %s)",
                self.ns,
                self.name,
                c.name,
                peak / 2**20,
                ((c.spec.get("resources") or {}).get("limits") or {}).get("memory", "none"),
            )
        c.cgroup.remove()
        c.cgroup = None
        return oom

    def _reap(self, c: Container) -> int:
        assert c.proc is not None
        code = c.proc.wait()
        # Killed by a signal: report as a runtime does, 128 + signal.
        code = 128 - code if code < 0 else code
        oom_killed = self._release_cgroup(c)
        cdir = self.dir / "containers" / c.name
        reason = "OOMKilled" if oom_killed else "Completed" if code == 0 else "Error"
        message = ""
        error_file = cdir / "error.json"
        if error_file.exists():
            with contextlib.suppress(ValueError, OSError):
                err = json.loads(error_file.read_text())
                reason, message, code = err["reason"], err["message"], int(err["exitCode"])
        if not message:
            message = (
                (cdir / "termination-log")
                .read_bytes()[:TERMINATION_MESSAGE_LIMIT]
                .decode(errors="replace")
            )
        if (
            not message
            and code != 0
            and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            text = self.log_path(c.name, c.restarts).read_bytes()[-2048:].decode(errors="replace")
            message = "\n".join(text.splitlines()[-80:])
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": c.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": container_id(self.uid, c),
        }
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.ready = False
        c.proc = None
        return code

    def _back_off(self, c: Container) -> None:
        c.last_state = c.state
        c.restart_at = time.monotonic() + c.backoff
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(c.backoff)}s restarting failed "
                f"container={c.name} pod={self.name}_{self.ns}({self.uid})",
            }
        }
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    # -- probes --------------------------------------------------------------------------
    def _probe(self, c: Container, now: float) -> bool:
        """Run the container's due probes; True when its readiness or process changed."""
        assert c.proc is not None
        target = ProbeTarget(
            pod_ip=self.pod_ip or "",
            ports={
                p["name"]: int(p["containerPort"])
                for p in c.spec.get("ports") or []
                if p.get("name")
            },
            pid=c.proc.pid,
            env=c.env,
            working_dir=c.spec.get("workingDir") or "/",
            security=self._security(c),
            scratch=self.dir / "containers" / c.name,
        )
        ready, restart_because = c.probes.step(now, c.ready, partial(probes.check, target=target))
        changed = ready != c.ready
        c.ready = ready
        if restart_because is not None:
            self._kill_for_restart(c, restart_because)
            return True
        return changed

    def _kill_for_restart(self, c: Container, why: str) -> None:
        log.info("pod %s/%s container %s: %s, restarting", self.ns, self.name, c.name, why)
        if c.proc is not None:
            self._signal(c, signal.SIGTERM)
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(timeout=grace)
            self._signal(c, signal.SIGKILL)

    # -- termination ---------------------------------------------------------------------
    def _signal(self, c: Container, sig: int) -> None:
        if c.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, sig)

    def _terminate_all(self) -> None:
        running = [
            c
            for c in self.init_containers + self.containers
            if c.proc is not None and c.proc.poll() is None
        ]
        for c in running:
            self._signal(c, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while (
            any(c.proc is not None and c.proc.poll() is None for c in running)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        for c in running:
            self._signal(c, signal.SIGKILL)
        for c in running:
            if c.proc is not None:
                self._reap(c)
                c.done = True

    def _teardown(self) -> None:
        if self.netns is not None:
            network.delete_pod_network(self.agent.layout, self.uid)
            self.netns = None
        if self.address is not None:
            self.agent.addresses.release(self.address)
            self.address = None
        self.agent.release_devices(self.node, self.uid)
        if self.agent.cgroups is not None:
            cgroups.remove_pod(self.agent.cgroups, self.uid)

    def _delete_from_api(self) -> None:
        from kubernetes import client

        with contextlib.suppress(ApiException):
            self.agent.core.delete_namespaced_pod(
                self.name,
                self.ns,
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- status --------------------------------------------------------------------------
    def _set_waiting_all(self, reason: str, message: str) -> None:
        for c in self.init_containers + self.containers:
            c.state = {"waiting": {"reason": reason, "message": message}}

    def status(self) -> dict[str, Any]:
        """The pod's status as the runtime sees it now."""
        return pod_status(
            PodView(
                uid=self.uid,
                phase=self.phase,
                host_ip=str(self.agent.layout.gateway),
                start_time=self.start_time,
                init_containers=self.init_containers,
                containers=self.containers,
                pod_ip=self.pod_ip,
                message=self.message,
            )
        )

    def _report(self) -> None:
        if self.gone.is_set():
            return
        if not self.reporter.report(self.status()):
            self.gone.set()
            self.stop_requested.set()
