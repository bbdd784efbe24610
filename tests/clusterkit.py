"""Test support for the local cluster: a handle on one cluster and condition waits.

Waits poll the API with a deadline; none of them sleeps for a fixed time and hopes.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "hack"))

from localcluster import cluster, controlplane  # noqa: E402
from localcluster import layout as layout_mod  # noqa: E402

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Return the first truthy value of ``check()``; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as err:  # the object may not exist yet
            last_error = err
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    #: ``Authorization`` header value required of every request (None: no check).
    required_authorization: str | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        wanted = self.required_authorization
        if wanted is not None and self.headers.get("Authorization") != wanted:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="data"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


@dataclass
class Kube:
    """One running local cluster."""

    root: Path
    layout: layout_mod.Layout
    started_here: bool = False

    @property
    def kubeconfig(self) -> str:
        return str(self.layout.kubeconfig)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = controlplane.kubectl(self.layout, *args, check=False, input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    @contextlib.contextmanager
    def serve(self, folder: Path, *, basic_auth: tuple[str, str] | None = None) -> Iterator[str]:
        """Serve ``folder`` over http on the cluster bridge, where pods reach the host;
        yields the base URL (``http://<bridge address>:<port>``). With ``basic_auth``
        (user, password) every request must carry those credentials."""
        handler_class = _QuietFiles
        if basic_auth is not None:
            token = base64.b64encode(":".join(basic_auth).encode()).decode()
            handler_class = type(
                "_AuthFiles", (_QuietFiles,), {"required_authorization": f"Basic {token}"}
            )
        handler = functools.partial(handler_class, directory=str(folder))
        server = http.server.ThreadingHTTPServer((str(self.layout.gateway), 0), handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://{self.layout.gateway}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    def service_url(self, name: str, namespace: str, port: str | int | None = None) -> str:
        """``http://<ClusterIP>:<port>`` of a Service, as a client in the cluster calls it;
        the host and every pod reach it through kube-proxy. ``port`` picks a port by name
        or number (default: the first)."""
        spec = self.get("service", name, "-n", namespace)["spec"]
        ports = spec["ports"]
        chosen = next((p for p in ports if port in (p.get("name"), p["port"])), ports[0])
        if port is not None and port not in (chosen.get("name"), chosen["port"]):
            raise AssertionError(f"service {namespace}/{name} has no port {port}: {ports}")
        return f"http://{spec['clusterIP']}:{chosen['port']}"

    def claim_folder(self, namespace: str, uri: str) -> Path:
        """The host folder behind ``pvc://<claim>/<path>`` (local volumes are host folders)."""
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        volume = self.get("pvc", claim, "-n", namespace)["spec"]["volumeName"]
        return Path(self.get("pv", volume)["spec"]["hostPath"]["path"]) / path

    def eval_images(self, namespace: str, dataset: str = "digits") -> list[tuple[Path, str]]:
        """Every image of the first version's eval split, with its true label, in order."""
        status = self.get("kads", dataset, "-n", namespace)["status"]
        root = self.claim_folder(namespace, status["location"])
        manifest = self.claim_folder(namespace, status["versions"][0]["manifests"]["eval"])
        samples = []
        for line in manifest.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            samples.append((root / record["source"], str(record["annotation"][0]["name"])))
        return samples

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: dict[str, Any] | str, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", *ns, "-f", "-", input=text)

    def condition(self, *args: str, type: str) -> dict[str, Any] | None:
        obj = self.get(*args)
        return next(
            (c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type), None
        )

    def wait_condition(
        self,
        *args: str,
        type: str,
        status: str = "True",
        timeout: float = 60,
        reason: str | None = None,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cond = self.condition(*args, type=type)
            if (
                cond
                and cond["status"] == status
                and (reason is None or cond.get("reason") == reason)
            ):
                return cond
            return None

        return wait_for(
            check,
            timeout,
            f"{' '.join(args)} condition {type}={status}" + (f" reason={reason}" if reason else ""),
        )

    def wait_ready(
        self,
        resource: str,
        name: str,
        namespace: str,
        *,
        status: str = "True",
        reason: str | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        """The ``Ready`` condition of ``resource/name`` once it has ``status`` (and ``reason``)."""
        return self.wait_condition(
            resource,
            name,
            "-n",
            namespace,
            type="Ready",
            status=status,
            reason=reason,
            timeout=timeout,
        )

    def create_namespace(self, name: str) -> str:
        """Create namespace ``name`` and wait for its default ServiceAccount (pods need it)."""
        self.kubectl("create", "namespace", name)
        wait_for(
            lambda: self.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
            30,
            f"the default service account in {name}",
        )
        return name

    def wait_pod_phase(
        self, name: str, namespace: str, phases: tuple[str, ...], timeout: float = 60
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            pod = self.get("pod", name, "-n", namespace)
            return pod if pod.get("status", {}).get("phase") in phases else None

        return wait_for(check, timeout, f"pod {namespace}/{name} in phase {'/'.join(phases)}")


def start(root: Path) -> Kube:
    existing = layout_mod.load(root)
    already = existing is not None and cluster.running(existing)
    layout = cluster.up(root)
    return Kube(root=root, layout=layout, started_here=not already)


def stop(kube: Kube) -> None:
    cluster.down(kube.root)
