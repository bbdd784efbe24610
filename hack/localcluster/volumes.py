"""Materialise a pod's volumes as host paths and resolve its environment variables, the
way the kubelet's volume manager and container runtime manager do."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException


class VolumeNotReadyError(Exception):
    """A volume cannot be set up yet (unbound claim, missing object); retried later."""


def _write_files(target: Path, files: dict[str, bytes], mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)


def _select(
    items: list[dict[str, Any]] | None, data: dict[str, bytes], what: str, optional: bool
) -> dict[str, bytes]:
    if not items:
        return data
    out = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeNotReadyError(f"{what} has no key {item['key']!r}")
        out[item["path"]] = data[item["key"]]
    return out


class PodVolumes:
    """Builds a pod's volumes under ``pod_dir/volumes`` and resolves env values."""

    def __init__(
        self, core: client.CoreV1Api, pod: dict[str, Any], pod_dir: Path, pod_ip: str, host_ip: str
    ) -> None:
        self.core = core
        self.pod = pod
        self.ns = pod["metadata"]["namespace"]
        self.dir = pod_dir / "volumes"
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self.paths: dict[str, Path] = {}

    # -- API objects --------------------------------------------------------------------
    def _configmap(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, self.ns)
        except ApiException as err:
            if err.status == 404:
                if optional:
                    return None
                raise VolumeNotReadyError(f'configmap "{name}" not found') from err
            raise
        data = {k: v.encode() for k, v in (cm.data or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.binary_data or {}).items()})
        return data

    def _secret(self, name: str, optional: bool) -> dict[str, bytes] | None:
        try:
            secret = self.core.read_namespaced_secret(name, self.ns)
        except ApiException as err:
            if err.status == 404:
                if optional:
                    return None
                raise VolumeNotReadyError(f'secret "{name}" not found') from err
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def field_value(self, path: str) -> str:
        """A downward-API field of the pod, such as ``metadata.name``."""
        meta = self.pod["metadata"]
        if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
            kind, key = path.split("['", 1)
            return str((meta.get(kind.split(".")[1]) or {}).get(key.rstrip("']"), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        values = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
            "status.hostIP": self.host_ip,
        }
        if path not in values:
            raise VolumeNotReadyError(f"unsupported fieldRef {path!r}")
        return values[path]

    def _downward_files(self, items: list[dict[str, Any]]) -> dict[str, bytes]:
        files = {}
        for item in items:
            if "fieldRef" in item:
                files[item["path"]] = self.field_value(item["fieldRef"]["fieldPath"]).encode()
        return files

    def _token(self, sa: str, audience: str | None, seconds: int) -> bytes:
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": self.pod["metadata"]["name"],
                "uid": self.pod["metadata"]["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        resp = self.core.create_namespaced_service_account_token(sa, self.ns, {"spec": spec})
        return str(resp.status.token).encode()

    # -- volumes -------------------------------------------------------------------------
    def setup(self) -> None:
        """Materialise every volume; raises VolumeNotReadyError to be retried."""
        for vol in self.pod["spec"].get("volumes") or []:
            self.paths[vol["name"]] = self._setup_one(vol)

    def _setup_one(self, vol: dict[str, Any]) -> Path:
        name = vol["name"]
        target = self.dir / name
        if "emptyDir" in vol:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o1777)
            return target
        if "hostPath" in vol:
            hp = vol["hostPath"]
            path = Path(hp["path"])
            kind = hp.get("type") or ""
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif kind in ("Directory", "File") and not path.exists():
                raise VolumeNotReadyError(f"hostPath {path} does not exist")
            return path
        if "persistentVolumeClaim" in vol:
            return self._claim_path(vol["persistentVolumeClaim"]["claimName"])
        if "configMap" in vol:
            src = vol["configMap"]
            data = self._configmap(src["name"], src.get("optional", False)) or {}
            files = _select(
                src.get("items"), data, f'configmap "{src["name"]}"', src.get("optional", False)
            )
            _write_files(target, files, src.get("defaultMode", 0o644))
            return target
        if "secret" in vol:
            src = vol["secret"]
            data = self._secret(src["secretName"], src.get("optional", False)) or {}
            files = _select(
                src.get("items"), data, f'secret "{src["secretName"]}"', src.get("optional", False)
            )
            _write_files(target, files, src.get("defaultMode", 0o644))
            return target
        if "downwardAPI" in vol:
            _write_files(
                target,
                self._downward_files(vol["downwardAPI"].get("items", [])),
                vol["downwardAPI"].get("defaultMode", 0o644),
            )
            return target
        if "projected" in vol:
            files: dict[str, bytes] = {}
            sa = self.pod["spec"].get("serviceAccountName") or "default"
            for source in vol["projected"].get("sources", []):
                if "secret" in source:
                    s = source["secret"]
                    data = self._secret(s["name"], s.get("optional", False)) or {}
                    files.update(
                        _select(
                            s.get("items"), data, f'secret "{s["name"]}"', s.get("optional", False)
                        )
                    )
                elif "configMap" in source:
                    c = source["configMap"]
                    data = self._configmap(c["name"], c.get("optional", False)) or {}
                    files.update(
                        _select(
                            c.get("items"),
                            data,
                            f'configmap "{c["name"]}"',
                            c.get("optional", False),
                        )
                    )
                elif "downwardAPI" in source:
                    files.update(self._downward_files(source["downwardAPI"].get("items", [])))
                elif "serviceAccountToken" in source:
                    t = source["serviceAccountToken"]
                    files[t["path"]] = self._token(
                        sa, t.get("audience"), t.get("expirationSeconds", 3600)
                    )
            _write_files(target, files, vol["projected"].get("defaultMode", 0o644))
            return target
        raise VolumeNotReadyError(
            f"volume {name!r}: unsupported volume type {sorted(set(vol) - {'name'})}"
        )

    def _claim_path(self, claim: str) -> Path:
        try:
            pvc = self.core.read_namespaced_persistent_volume_claim(claim, self.ns)
        except ApiException as err:
            if err.status == 404:
                raise VolumeNotReadyError(f'persistentvolumeclaim "{claim}" not found') from err
            raise
        if pvc.status.phase != "Bound" or not pvc.spec.volume_name:
            raise VolumeNotReadyError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.core.read_persistent_volume(pvc.spec.volume_name)
        source = pv.spec.host_path or pv.spec.local
        if source is None:
            raise VolumeNotReadyError(
                f"persistentvolume {pv.metadata.name} is neither hostPath nor local"
            )
        return Path(source.path)

    def mount_source(self, mount: dict[str, Any]) -> Path:
        """The host path to bind for one volumeMount (with its subPath)."""
        base = self.paths[mount["name"]]
        sub = mount.get("subPath")
        if not sub:
            return base
        if os.path.isabs(sub) or ".." in Path(sub).parts:
            raise VolumeNotReadyError(f"subPath {sub!r} must be a relative path without '..'")
        path = base / sub
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
        return path

    # -- environment -------------------------------------------------------------------
    def resolve_env(self, container: dict[str, Any]) -> dict[str, str]:
        """A container's env and envFrom, resolved to strings."""
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                ref = source["configMapRef"]
                data = self._configmap(ref["name"], ref.get("optional", False)) or {}
            else:
                ref = source["secretRef"]
                data = self._secret(ref["name"], ref.get("optional", False)) or {}
            env.update({prefix + k: v.decode(errors="replace") for k, v in data.items()})
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
                continue
            src = var.get("valueFrom") or {}
            if not src:
                env[var["name"]] = ""
            elif "fieldRef" in src:
                env[var["name"]] = self.field_value(src["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                data = self._secret(ref["name"], ref.get("optional", False)) or {}
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]].decode(errors="replace")
                elif not ref.get("optional", False):
                    raise VolumeNotReadyError(
                        f"couldn't find key {ref['key']} in Secret {self.ns}/{ref['name']}"
                    )
            elif "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                data = self._configmap(ref["name"], ref.get("optional", False)) or {}
                if ref["key"] in data:
                    env[var["name"]] = data[ref["key"]].decode(errors="replace")
                elif not ref.get("optional", False):
                    raise VolumeNotReadyError(
                        f"couldn't find key {ref['key']} in ConfigMap {self.ns}/{ref['name']}"
                    )
            elif "resourceFieldRef" in src:
                ref = src["resourceFieldRef"]
                kind, res = ref["resource"].split(".", 1)
                value = ((container.get("resources") or {}).get(kind) or {}).get(res, "0")
                env[var["name"]] = str(value)
        return env


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion; $$ escapes."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            name = value[i + 2 : end]
            out.append(env.get(name, value[i : end + 1]))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)
