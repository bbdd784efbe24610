"""Start and stop etcd, kube-apiserver, kube-controller-manager and kube-scheduler.

Each component runs as a daemon in its own session, with its pid in ``<root>/run`` and its
log in ``<root>/logs``. Starting is idempotent: a component whose pid is alive is left
alone.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import yaml

from . import pki
from .layout import Layout

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.20.2"


@functools.cache
def kubernetes_bin() -> Path:
    """The directory with kube-apiserver & co: KUBEARTS_K8S_BIN, else the cached build
    (built on first use). Asked once per process: every kubectl call needs it."""
    out = (
        subprocess.run(
            ["bash", str(REPO / "hack" / "build-kubernetes.sh")],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return Path(out)


def etcd_binary() -> str:
    """The etcd executable on the PATH (Debian's etcd-server)."""
    found = shutil.which("etcd")
    if not found:
        raise RuntimeError("etcd not found: run hack/install-system-deps.sh (etcd-server)")
    return found


# -- processes ---------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def read_pid(layout: Layout, name: str) -> int | None:
    """The pid of the running component ``name``, None when it is not running."""
    path = layout.run / f"{name}.pid"
    try:
        pid = int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_daemon(
    layout: Layout, name: str, argv: Sequence[str], env: dict[str, str] | None = None
) -> int:
    """Start ``argv`` detached (new session), logging to ``logs/<name>.log``."""
    existing = read_pid(layout, name)
    if existing:
        return existing
    layout.run.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    with open(layout.logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=layout.root,
        )
    (layout.run / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def stop_daemon(layout: Layout, name: str, timeout: float = 15.0) -> None:
    """SIGTERM the component, SIGKILL it after ``timeout`` seconds."""
    pid = read_pid(layout, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        (layout.run / f"{name}.pid").unlink()


# -- kubeconfigs ---------------------------------------------------------------------------


def write_kubeconfig(layout: Layout, path: Path, user: str, server: str | None = None) -> None:
    """Write a kubeconfig for the client-certificate user ``user``."""
    ca = (layout.pki / "ca.crt").read_bytes()
    crt = (layout.pki / f"{user}.crt").read_bytes()
    key = (layout.pki / f"{user}.key").read_bytes()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubearts-local",
                "cluster": {
                    "server": server or layout.apiserver_url,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": base64.b64encode(crt).decode(),
                    "client-key-data": base64.b64encode(key).decode(),
                },
            }
        ],
        "contexts": [
            {"name": "kubearts-local", "context": {"cluster": "kubearts-local", "user": user}}
        ],
        "current-context": "kubearts-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def ensure_pki(layout: Layout) -> None:
    """Create the CA and every certificate the components and users need, once."""
    p = layout.pki
    pki.ensure_ca(p)
    gw = str(layout.gateway)
    first_service_ip = str(layout.service_subnet.network_address + 1)
    pki.ensure_cert(
        p,
        "apiserver",
        common_name="kube-apiserver",
        server=True,
        dns=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", gw, first_service_ip),
    )
    pki.ensure_cert(
        p, "admin", common_name="kubearts-admin", organization="system:masters", client=True
    )
    pki.ensure_cert(
        p, "controller-manager", common_name="system:kube-controller-manager", client=True
    )
    pki.ensure_cert(p, "scheduler", common_name="system:kube-scheduler", client=True)
    pki.ensure_cert(
        p,
        "apiserver-kubelet-client",
        common_name="kube-apiserver-kubelet-client",
        organization="system:masters",
        client=True,
    )
    # The node agent serves every node's kubelet endpoint on the bridge address.
    pki.ensure_cert(
        p,
        "node-agent",
        common_name="kubearts-node-agent",
        organization="system:masters",
        client=True,
        server=True,
        dns=("localhost",),
        ips=("127.0.0.1", gw),
    )
    pki.ensure_service_account_key(p)


# -- components ---------------------------------------------------------------------------


def command_flags(flags: dict[str, object]) -> list[str]:
    """``{"secure-port": 6443}`` → ``["--secure-port=6443"]``; booleans as true/false."""
    return [f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in flags.items()]


def start_etcd(layout: Layout) -> None:
    """Start etcd on the cluster's loopback ports."""
    layout.etcd_data.mkdir(parents=True, exist_ok=True, mode=0o700)
    client = f"http://127.0.0.1:{layout.etcd_client_port}"
    peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
    flags = {
        "name": "kubearts",
        "data-dir": layout.etcd_data,
        "listen-client-urls": client,
        "advertise-client-urls": client,
        "listen-peer-urls": peer,
        "initial-advertise-peer-urls": peer,
        "initial-cluster": f"kubearts={peer}",
        "quota-backend-bytes": 2 * 1024**3,
        "unsafe-no-fsync": True,  # test data; saves seconds of fsync per cluster start
    }
    start_daemon(layout, "etcd", [etcd_binary(), *command_flags(flags)])


# Alpha features users rely on, on in both the apiserver (which otherwise drops the
# fields from stored objects) and the controller-manager (which runs their controllers).
FEATURE_GATES: Final = "TTLAfterFinished=true"


def start_apiserver(layout: Layout, bin_dir: Path) -> None:
    """Start kube-apiserver with TLS, Node/RBAC authorization and service-account keys."""
    p = layout.pki
    flags = {
        "etcd-servers": f"http://127.0.0.1:{layout.etcd_client_port}",
        # Pods reach the apiserver at the bridge address, the host at 127.0.0.1.
        "bind-address": "0.0.0.0",
        "advertise-address": layout.gateway,
        "secure-port": layout.apiserver_port,
        "insecure-port": 0,
        "tls-cert-file": p / "apiserver.crt",
        "tls-private-key-file": p / "apiserver.key",
        "client-ca-file": p / "ca.crt",
        "kubelet-client-certificate": p / "apiserver-kubelet-client.crt",
        "kubelet-client-key": p / "apiserver-kubelet-client.key",
        "kubelet-certificate-authority": p / "ca.crt",
        "kubelet-preferred-address-types": "InternalIP",
        "service-account-key-file": p / "sa.pub",
        "service-account-signing-key-file": p / "sa.key",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "api-audiences": "https://kubernetes.default.svc.cluster.local",
        "service-cluster-ip-range": layout.service_subnet,
        "authorization-mode": "Node,RBAC",
        "enable-admission-plugins": "NodeRestriction",
        "allow-privileged": True,
        "max-requests-inflight": 800,
        "max-mutating-requests-inflight": 400,
        "profiling": False,
        "feature-gates": FEATURE_GATES,
        "v": 1,
    }
    start_daemon(layout, "kube-apiserver", [str(bin_dir / "kube-apiserver"), *command_flags(flags)])


def _client_flags(layout: Layout, user: str, secure_port: int) -> dict[str, object]:
    """Flags shared by controller-manager and scheduler: identity, serving, client limits."""
    kubeconfig = layout.root / f"{user}.kubeconfig"
    write_kubeconfig(layout, kubeconfig, user)
    return {
        "kubeconfig": kubeconfig,
        "authentication-kubeconfig": kubeconfig,
        "authorization-kubeconfig": kubeconfig,
        "bind-address": "127.0.0.1",
        "secure-port": secure_port,
        "port": 0,
        "leader-elect": False,
        # At the 1.20 defaults (20/30) the Job controller turns Jobs into pods at ~6/s on
        # two cores; at 300/600 at about 100/s.
        "kube-api-qps": 300,
        "kube-api-burst": 600,
        "v": 1,
    }


def start_controller_manager(layout: Layout, bin_dir: Path) -> None:
    """Start kube-controller-manager with raised API client limits."""
    flags = {
        **_client_flags(layout, "controller-manager", layout.controller_manager_port),
        "use-service-account-credentials": True,
        "service-account-private-key-file": layout.pki / "sa.key",
        "root-ca-file": layout.pki / "ca.crt",
        "cluster-signing-cert-file": layout.pki / "ca.crt",
        "cluster-signing-key-file": layout.pki / "ca.key",
        "service-cluster-ip-range": layout.service_subnet,
        "controllers": "*,bootstrapsigner,tokencleaner",
        "concurrent-gc-syncs": 40,
        "feature-gates": FEATURE_GATES,
    }
    start_daemon(
        layout,
        "kube-controller-manager",
        [str(bin_dir / "kube-controller-manager"), *command_flags(flags)],
    )


def start_scheduler(layout: Layout, bin_dir: Path) -> None:
    """Start kube-scheduler with raised API client limits."""
    flags = _client_flags(layout, "scheduler", layout.scheduler_port)
    start_daemon(layout, "kube-scheduler", [str(bin_dir / "kube-scheduler"), *command_flags(flags)])


def _https_get(layout: Layout, url: str, timeout: float = 2.0) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    ctx.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def wait_until(
    check,
    what: str,
    timeout: float,
    log: Path | None = None,  # type: ignore[no-untyped-def]
    alive=None,
) -> None:
    """Poll ``check`` until true; fail early when ``alive()`` says the process died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            last = "the process exited"
            break
        try:
            if check():
                return
        except OSError as err:
            last = err
        time.sleep(0.2)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} ({last}){tail}")


def apiserver_ready(layout: Layout) -> bool:
    """Whether the apiserver answers ``/readyz``."""
    status, _ = _https_get(layout, layout.apiserver_url + "/readyz")
    return status == 200


def start(layout: Layout) -> None:
    """Start etcd and the control-plane components, each waited for in turn."""
    bin_dir = kubernetes_bin()
    ensure_pki(layout)
    write_kubeconfig(layout, layout.kubeconfig, "admin")
    start_etcd(layout)
    start_apiserver(layout, bin_dir)
    wait_until(
        lambda: apiserver_ready(layout),
        "kube-apiserver /readyz",
        90,
        layout.logs / "kube-apiserver.log",
        alive=lambda: read_pid(layout, "kube-apiserver") is not None,
    )
    start_controller_manager(layout, bin_dir)
    start_scheduler(layout, bin_dir)


COMPONENTS = ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")


def stop(layout: Layout) -> None:
    """Stop the control-plane components, the apiserver's clients first."""
    for name in COMPONENTS:
        stop_daemon(layout, name)


def kubectl(
    layout: Layout,
    *args: str,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the cluster's kubectl against ``layout``'s cluster, capturing its output."""
    return subprocess.run(
        [str(kubernetes_bin() / "kubectl"), "--kubeconfig", str(layout.kubeconfig), *args],
        check=check,
        text=True,
        capture_output=True,
        input=input,
        timeout=timeout,
    )
