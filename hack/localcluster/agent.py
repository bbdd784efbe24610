"""The node agent: plays the kubelet for the cluster's four nodes.

It registers the nodes with their labels, taints and extended resources, keeps their
leases and Ready conditions fresh, runs every pod the scheduler binds to them (see
``runtime.py``), serves the kubelet API's log endpoint on each node's address so that
``kubectl logs`` works, and provisions PersistentVolumes for the default StorageClass as
host directories. Run as ``python -m localcluster.agent ROOT``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from . import cgroups, controlplane, kubeletapi, network
from . import layout as layout_mod
from .clock import now_rfc3339
from .container import Container
from .layout import NODE_NAMES, Layout
from .nodes import DEVICE_ENV, NODES, node_manifest
from .runtime import PodRuntime

log = logging.getLogger("localcluster.agent")
REPO = Path(__file__).resolve().parents[2]
PROVISIONER = "kubearts.io/local-hostpath"
LEASE_SECONDS = 40
STATUS_EVERY, LEASE_EVERY = 20.0, 10.0


class Agent:
    """The kubelet of every node: node objects, leases, pods, logs and volumes."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.venv = Path(os.environ.get("KUBEARTS_VENV", REPO / ".venv"))
        kc = layout.root / "node-agent.kubeconfig"
        controlplane.write_kubeconfig(layout, kc, "node-agent")
        cfg = client.Configuration()
        config.load_kube_config(str(kc), client_configuration=cfg)
        cfg.connection_pool_maxsize = 64
        self.api_client = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.addresses = network.AddressPool(layout.pod_subnet, reserved=(layout.proxy_address,))
        self.pods: dict[str, PodRuntime] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.images: dict[str, Any] = yaml.safe_load(
            (Path(__file__).with_name("images.yaml")).read_text()
        )["images"]
        self.free_devices: dict[tuple[str, str], list[int]] = {}
        for node, spec in NODES.items():
            for res in DEVICE_ENV:
                if res in spec["capacity"]:
                    self.free_devices[(node, res)] = list(range(int(spec["capacity"][res])))
        self.assigned: dict[str, list[tuple[str, str, list[int]]]] = {}
        self.mountpoints_file = layout.run / "mountpoints"
        self.cgroups = cgroups.find_hierarchy(f"kubearts-{layout.slot}")
        if self.cgroups is None:
            log.warning("no writable cgroup hierarchy: containers run without limits")

    # -- images, devices, mountpoints -----------------------------------------------------
    def image_config(self, image: str) -> dict[str, Any] | None:
        """The local mapping of a container image (``images.yaml``), None when unmapped."""
        repo = image.split("@", 1)[0]
        last = repo.rsplit("/", 1)[-1]
        if ":" in last:
            repo = repo.rsplit(":", 1)[0]
        for candidate in (
            repo,
            repo.removeprefix("docker.io/library/"),
            repo.removeprefix("library/"),
        ):
            if candidate in self.images:
                return dict(self.images[candidate] or {})
        return None

    def allocate_devices(self, node: str, uid: str, wanted: dict[str, int]) -> dict[str, list[int]]:
        """Hand out device IDs of ``node`` to pod ``uid``, as a device plugin does."""
        out: dict[str, list[int]] = {}
        with self.lock:
            for res, count in wanted.items():
                free = self.free_devices.get((node, res), [])
                ids, free[:] = free[:count], free[count:]
                out[res] = ids
                self.assigned.setdefault(uid, []).append((node, res, ids))
        return out

    def release_devices(self, node: str, uid: str) -> None:
        """Return the devices pod ``uid`` held to the node's free pool."""
        with self.lock:
            for n, res, ids in self.assigned.pop(uid, []):
                self.free_devices[(n, res)].extend(ids)
                self.free_devices[(n, res)].sort()

    def record_mountpoints(self, targets: Iterable[str]) -> None:
        """Remember mount points created on the host so ``down`` can remove empty ones."""
        created = []
        for target in targets:
            path = Path(target)
            while not path.exists() and path != path.parent:
                created.append(str(path))
                path = path.parent
        if created:
            with self.lock, open(self.mountpoints_file, "a") as f:
                f.write("".join(p + "\n" for p in created))

    def forget(self, uid: str) -> None:
        """Drop a pod whose runtime has finished for good."""
        with self.lock:
            self.pods.pop(uid, None)

    # -- nodes ------------------------------------------------------------------------------
    def register_nodes(self) -> None:
        """Create the nodes (or refresh their labels) and post their first status."""
        for name in NODE_NAMES:
            manifest = node_manifest(name)
            try:
                self.core.create_node(manifest)
            except ApiException as err:
                if err.status != 409:
                    raise
                self.core.patch_node(name, {"metadata": {"labels": manifest["metadata"]["labels"]}})
            self.patch_node_status(name)

    def patch_node_status(self, name: str) -> None:
        """Post capacity, addresses, conditions and info, as a kubelet's status sync."""
        now = now_rfc3339()
        capacity = NODES[name]["capacity"]
        conditions = [
            {
                "type": kind,
                "status": "False",
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
            }
            for kind, reason, message in (
                (
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": now,
            }
        )
        uname = platform.uname()
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": str(self.layout.gateway)},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.layout.kubelet_port(name)}},
            "nodeInfo": {
                "machineID": f"kubearts-{name}",
                "systemUUID": f"kubearts-{name}",
                "bootID": f"kubearts-{self.layout.slot}-{name}",
                "kernelVersion": uname.release,
                "osImage": "KubeArts local node",
                "containerRuntimeVersion": "kubearts-local://0.1.0",
                "kubeletVersion": f"v{controlplane.K8S_VERSION}",
                "kubeProxyVersion": f"v{controlplane.K8S_VERSION}",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        self.core.patch_node_status(name, {"status": status})

    def renew_lease(self, name: str) -> None:
        """Renew the node's lease so the node lifecycle controller keeps it Ready."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            },
        }
        try:
            self.coordination.patch_namespaced_lease(
                name, "kube-node-lease", {"spec": body["spec"]}
            )
        except ApiException as err:
            if err.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", body)

    def heartbeat_loop(self) -> None:
        """Renew leases every 10 s and node status every 20 s until stopped."""
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_EVERY):
            for name in NODE_NAMES:
                try:
                    self.renew_lease(name)
                    if time.monotonic() - last_status >= STATUS_EVERY:
                        self.patch_node_status(name)
                except Exception as err:  # the apiserver may be briefly unavailable
                    log.warning("heartbeat for %s failed: %s", name, err)
            if time.monotonic() - last_status >= STATUS_EVERY:
                last_status = time.monotonic()

    # -- pods -------------------------------------------------------------------------------
    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        """React to one pod event: start a runtime for a new pod, pass on deletions."""
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in NODE_NAMES:
            return
        uid = pod["metadata"]["uid"]
        with self.lock:
            runtime = self.pods.get(uid)
        if kind == "DELETED":
            if runtime is not None:
                runtime.deleted()
            return
        if runtime is not None:
            runtime.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            # Finished before this agent started (or already torn down): only the final
            # deletion is left to do.
            if pod["metadata"].get("deletionTimestamp"):
                with contextlib.suppress(ApiException):
                    self.core.delete_namespaced_pod(
                        pod["metadata"]["name"],
                        pod["metadata"]["namespace"],
                        grace_period_seconds=0,
                        body=client.V1DeleteOptions(
                            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)
                        ),
                    )
            return
        runtime = PodRuntime(self, pod)
        runtime.update(pod)
        with self.lock:
            self.pods[uid] = runtime
        runtime.start()

    def watch_pods(self) -> None:
        """List, then watch, every pod; relist when the watch breaks."""
        while not self.stopping.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(_preload_content=False)
                data = json.loads(listing.data)
                for pod in data["items"]:
                    self.handle("ADDED", pod)
                version = data["metadata"]["resourceVersion"]
                w = watch.Watch()
                for event in w.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=version,
                    timeout_seconds=240,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                ):
                    if self.stopping.is_set():
                        w.stop()
                        break
                    if event["type"] == "ERROR":
                        break
                    if event["type"] == "BOOKMARK":
                        continue
                    self.handle(event["type"], event["raw_object"])
            except Exception as err:
                if self.stopping.is_set():
                    return
                log.warning("pod watch interrupted (%s); relisting", err)
                time.sleep(1)

    # -- storage ----------------------------------------------------------------------------
    def provision_loop(self) -> None:
        """Dynamic provisioning for StorageClasses whose provisioner is ours."""
        storage = client.StorageV1Api(self.api_client)
        while not self.stopping.wait(0.5):
            try:
                classes = {
                    sc.metadata.name: sc
                    for sc in storage.list_storage_class().items
                    if sc.provisioner == PROVISIONER
                }
                for pvc in self.core.list_persistent_volume_claim_for_all_namespaces().items:
                    ann = pvc.metadata.annotations or {}
                    wanted = ann.get("volume.beta.kubernetes.io/storage-provisioner")
                    if (
                        pvc.status.phase == "Pending"
                        and not pvc.spec.volume_name
                        and wanted == PROVISIONER
                    ):
                        self.provision(pvc, classes.get(pvc.spec.storage_class_name or ""))
                for pv in self.core.list_persistent_volume().items:
                    ann = pv.metadata.annotations or {}
                    if (
                        ann.get("pv.kubernetes.io/provisioned-by") == PROVISIONER
                        and pv.status.phase == "Released"
                        and pv.spec.persistent_volume_reclaim_policy == "Delete"
                    ):
                        if pv.spec.host_path:
                            shutil.rmtree(pv.spec.host_path.path, ignore_errors=True)
                        with contextlib.suppress(ApiException):
                            self.core.delete_persistent_volume(pv.metadata.name)
            except Exception as err:
                if not self.stopping.is_set():
                    log.warning("provisioner pass failed: %s", err)

    def provision(self, pvc: Any, storage_class: Any) -> None:
        """Create a hostPath PersistentVolume bound to the claim ``pvc``."""
        ns, name, uid = pvc.metadata.namespace, pvc.metadata.name, pvc.metadata.uid
        path = self.layout.volumes / f"{ns}_{name}_{uid}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        reclaim = getattr(storage_class, "reclaim_policy", None) or "Delete"
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{uid}",
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": pvc.spec.resources.requests["storage"]},
                "accessModes": pvc.spec.access_modes,
                "persistentVolumeReclaimPolicy": reclaim,
                "storageClassName": pvc.spec.storage_class_name,
                "volumeMode": pvc.spec.volume_mode or "Filesystem",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": ns,
                    "name": name,
                    "uid": uid,
                },
            },
        }
        try:
            self.core.create_persistent_volume(pv)
            log.info("provisioned %s for %s/%s", pv["metadata"]["name"], ns, name)
        except ApiException as err:
            if err.status != 409:
                raise

    # -- kubelet API: logs -------------------------------------------------------------------
    def _container(self, ns: str, name: str, container: str) -> tuple[PodRuntime, Container] | None:
        with self.lock:
            runtime = next((r for r in self.pods.values() if r.ns == ns and r.name == name), None)
        if runtime is None:
            return None
        c = next(
            (c for c in runtime.init_containers + runtime.containers if c.name == container), None
        )
        return None if c is None else (runtime, c)

    def log_file(self, ns: str, name: str, container: str, previous: bool) -> Path | None:
        """The log of the container's current (or previous) run, None when unknown."""
        found = self._container(ns, name, container)
        if found is None:
            return None
        runtime, c = found
        restart = c.restarts - 1 if previous else c.restarts
        return runtime.log_path(container, restart) if restart >= 0 else None

    def container_running(self, ns: str, name: str, container: str) -> bool:
        """Whether the container may still write to its log (``follow`` keeps reading)."""
        found = self._container(ns, name, container)
        return found is not None and found[1].proc is not None and not self.stopping.is_set()

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        """Start clean, register the nodes, serve their APIs and run pods until stopped."""
        self.layout.pods.mkdir(parents=True, exist_ok=True)
        self.layout.volumes.mkdir(parents=True, exist_ok=True)
        network.ensure_bridge(self.layout)
        # Sandboxes of an earlier agent are gone with its processes; start clean.
        network.remove_all_pod_networks(self.layout)
        for leftover in self.layout.pods.glob("*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if self.cgroups is not None:
            cgroups.remove_all(self.cgroups)
        self.register_nodes()
        for name in NODE_NAMES:
            self.renew_lease(name)
            kubeletapi.serve(
                name,
                str(self.layout.gateway),
                self.layout.kubelet_port(name),
                self.layout.pki,
                self,
            )
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        threading.Thread(target=self.provision_loop, name="provisioner", daemon=True).start()
        (self.layout.run / "agent.ready").write_text(now_rfc3339() + "\n")
        self.watch_pods()

    def shutdown(self) -> None:
        """Stop every pod's processes at once (the cluster is going down)."""
        self.stopping.set()
        with self.lock:
            runtimes = list(self.pods.values())
        for runtime in runtimes:
            runtime.gone.set()
            runtime.grace = 0
            runtime.stop_requested.set()
        for runtime in runtimes:
            runtime.thread.join(timeout=5)
        network.remove_all_pod_networks(self.layout)
        if self.cgroups is not None:
            cgroups.remove_all(self.cgroups)


def main() -> None:
    """Run the agent for the cluster under ``sys.argv[1]`` until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    root = Path(sys.argv[1])
    layout = layout_mod.load(root)
    if layout is None:
        sys.exit(f"{root} holds no cluster layout; run `python -m localcluster up` first")
    agent = Agent(layout)

    def stop(signum: int, frame: Any) -> None:
        agent.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()


if __name__ == "__main__":
    main()
