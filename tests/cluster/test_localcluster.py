"""The local cluster behaves like a real one: nodes with device-plugin resources, pods run
as processes with their env, volumes, network, probes, logs, restarts and deletion."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from clusterkit import REPO, Kube, wait_for

PY = "python:3.11"


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": PY, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def logs(kube: Kube, name: str, namespace: str, *extra: str) -> str:
    return kube.kubectl("logs", name, "-n", namespace, *extra).stdout


@pytest.mark.parametrize(
    ("node", "labels", "resource", "count"),
    [
        pytest.param("cpu-0", {"kubernetes.io/os": "linux"}, None, None, id="cpu"),
        pytest.param("gpu-0", {"nvidia.com/gpu.present": "true"}, "nvidia.com/gpu", "2", id="gpu"),
        pytest.param(
            "ascend910-0",
            {"accelerator": "huawei-Ascend910"},
            "huawei.com/Ascend910",
            "8",
            id="ascend910",
        ),
        pytest.param(
            "ascend310-0",
            {"accelerator": "huawei-Ascend310"},
            "huawei.com/Ascend310",
            "4",
            id="ascend310",
        ),
    ],
)
def test_nodes_are_ready_with_device_plugin_labels_and_resources(
    kube: Kube, node: str, labels: dict[str, str], resource: str | None, count: str | None
) -> None:
    obj = kube.get("node", node)
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert labels.items() <= obj["metadata"]["labels"].items()
    if resource:
        assert obj["status"]["allocatable"][resource] == count


def test_gpu_node_is_tainted_like_gpu_operator_nodes(kube: Kube) -> None:
    taints = kube.get("node", "gpu-0")["spec"]["taints"]
    assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in taints


def test_ascend310_pod_runs_on_its_node_succeeds_and_logs(kube: Kube, namespace: str) -> None:
    manifest = pod(
        "hello",
        ["python3", "-c", "import os; print('hello'); print(os.environ['ASCEND_VISIBLE_DEVICES'])"],
        nodeSelector={"accelerator": "huawei-Ascend310"},
        container={"resources": {"limits": {"huawei.com/Ascend310": 1}}},
    )
    kube.apply(manifest, namespace)
    done = kube.wait_pod_phase("hello", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded"
    assert done["spec"]["nodeName"] == "ascend310-0"
    out = logs(kube, "hello", namespace).splitlines()
    assert out[0] == "hello"
    assert out[1] in {"0", "1", "2", "3"}


def test_deployment_with_readiness_probe_gets_endpoints_reachable_from_host(
    kube: Kube, namespace: str
) -> None:
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": PY,
                                "command": ["python3", "-m", "http.server", "8080"],
                                "ports": [{"containerPort": 8080, "name": "http"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": "http"},
                                    "periodSeconds": 1,
                                },
                            }
                        ]
                    },
                },
            },
        },
        namespace,
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        namespace,
    )
    kube.wait_condition("deployment", "web", "-n", namespace, type="Available", timeout=60)

    def two_addresses() -> list[str] | None:
        subsets = kube.get("endpoints", "web", "-n", namespace).get("subsets") or []
        ips = [a["ip"] for s in subsets for a in s.get("addresses", [])]
        return ips if len(ips) == 2 else None

    ips = wait_for(two_addresses, 30, "two ready endpoints")
    pod_ips = {
        p["status"]["podIP"] for p in kube.get("pods", "-n", namespace, "-l", "app=web")["items"]
    }
    assert set(ips) == pod_ips
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
            assert resp.status == 200


def test_pod_asking_more_gpus_than_any_node_has_stays_pending_unschedulable(
    kube: Kube, namespace: str
) -> None:
    kube.apply(
        pod(
            "greedy",
            ["sleep", "60"],
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            container={"resources": {"limits": {"nvidia.com/gpu": 3}}},
        ),
        namespace,
    )
    cond = kube.wait_condition(
        "pod",
        "greedy",
        "-n",
        namespace,
        type="PodScheduled",
        status="False",
        reason="Unschedulable",
    )
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    assert kube.get("pod", "greedy", "-n", namespace)["status"]["phase"] == "Pending"


def test_deleting_a_job_garbage_collects_its_pods_and_processes(kube: Kube, namespace: str) -> None:
    marker = f"kubearts-gc-{namespace}"
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "sleeper"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "main",
                                "image": PY,
                                "command": [
                                    "python3",
                                    "-c",
                                    "import time; time.sleep(600)",
                                    marker,
                                ],
                            }
                        ],
                    }
                }
            },
        },
        namespace,
    )
    wait_for(
        lambda: [
            p
            for p in kube.get("pods", "-n", namespace, "-l", "job-name=sleeper")["items"]
            if p["status"].get("phase") == "Running"
        ],
        60,
        "the job's pod to run",
    )
    # Running is reported once the container is started; its command line shows the marker
    # a moment later, when the shim has set up the namespaces and exec'd the command.
    wait_for(
        lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0,
        10,
        "the pod's process to run",
    )
    kube.kubectl("delete", "job", "sleeper", "-n", namespace)
    wait_for(
        lambda: not kube.get("pods", "-n", namespace, "-l", "job-name=sleeper")["items"],
        60,
        "the garbage collector to delete the job's pods",
    )
    wait_for(
        lambda: subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1,
        30,
        "the pod's process to end",
    )


def test_env_from_field_secret_and_configmap_refs(kube: Kube, namespace: str) -> None:
    kube.kubectl(
        "create", "secret", "generic", "creds", "-n", namespace, "--from-literal=token=s3cr3t"
    )
    kube.kubectl(
        "create",
        "configmap",
        "settings",
        "-n",
        namespace,
        "--from-literal=mode=fast",
        "--from-literal=level=3",
    )
    kube.apply(
        pod(
            "env",
            ["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
            container={
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "POD_NS",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}},
                    },
                    {
                        "name": "MODE",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                    },
                    {"name": "GREETING", "value": "mode-$(MODE)"},
                ],
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
            },
        ),
        namespace,
    )
    done = kube.wait_pod_phase("env", namespace, ("Succeeded", "Failed"))
    env = json.loads(logs(kube, "env", namespace))
    assert env["POD_NAME"] == "env"
    assert env["POD_NS"] == namespace
    assert env["POD_IP"] == done["status"]["podIP"]
    assert env["TOKEN"] == "s3cr3t"
    assert env["MODE"] == "fast"
    assert env["GREETING"] == "mode-fast"
    assert env["CFG_level"] == "3"
    assert env["KUBERNETES_SERVICE_HOST"]


def test_volumes_configmap_secret_emptydir_and_working_dir(kube: Kube, namespace: str) -> None:
    kube.kubectl(
        "create", "configmap", "files", "-n", namespace, "--from-literal=app.yaml=answer: 42"
    )
    kube.kubectl("create", "secret", "generic", "keys", "-n", namespace, "--from-literal=key=abc")
    script = (
        "import os; print(open('/etc/app/app.yaml').read()); print(open('/etc/keys/key').read()); "
        "open('/scratch/x', 'w').write('1'); print(os.getcwd()); "
        "print(os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token'))"
    )
    kube.apply(
        pod(
            "vols",
            ["python3", "-c", script],
            volumes=[
                {"name": "cfg", "configMap": {"name": "files"}},
                {"name": "keys", "secret": {"secretName": "keys"}},
                {"name": "scratch", "emptyDir": {}},
            ],
            container={
                "workingDir": "/scratch",
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/app"},
                    {"name": "keys", "mountPath": "/etc/keys", "readOnly": True},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
            },
        ),
        namespace,
    )
    done = kube.wait_pod_phase("vols", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", logs(kube, "vols", namespace)
    assert logs(kube, "vols", namespace).split("\n")[:4] == [
        "answer: 42",
        "abc",
        "/scratch",
        "True",
    ]


def test_pvc_from_default_storage_class_persists_between_pods(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        namespace,
    )
    claim = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    kube.apply(
        pod(
            "writer",
            ["python3", "-c", "open('/data/f.txt', 'w').write('kept')"],
            **claim,
            container=mount,
        ),
        namespace,
    )
    assert (
        kube.wait_pod_phase("writer", namespace, ("Succeeded", "Failed"))["status"]["phase"]
        == "Succeeded"
    )
    kube.apply(pod("reader", ["cat", "/data/f.txt"], **claim, container=mount), namespace)
    kube.wait_pod_phase("reader", namespace, ("Succeeded", "Failed"))
    assert logs(kube, "reader", namespace) == "kept"
    assert kube.get("pvc", "data", "-n", namespace)["status"]["phase"] == "Bound"


def test_missing_command_fails_the_container_like_a_runtime(kube: Kube, namespace: str) -> None:
    kube.apply(pod("nocmd", ["no-such-binary-kubearts"]), namespace)
    done = kube.wait_pod_phase("nocmd", namespace, ("Failed", "Succeeded"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert done["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 127
    assert terminated["reason"] == "ContainerCannotRun"
    assert "no-such-binary-kubearts" in terminated["message"]


def test_exit_code_and_termination_message_are_reported(kube: Kube, namespace: str) -> None:
    script = (
        "open('/dev/termination-log', 'w').write('{\"reason\": \"NoImagesFound\"}'); "
        "raise SystemExit(3)"
    )
    kube.apply(pod("fails", ["python3", "-c", script]), namespace)
    done = kube.wait_pod_phase("fails", namespace, ("Failed", "Succeeded"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert json.loads(terminated["message"]) == {"reason": "NoImagesFound"}


def test_restart_policy_on_failure_restarts_until_success(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "state"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Mi"}},
            },
        },
        namespace,
    )
    script = (
        "import os, sys; p = '/state/runs'; n = int(open(p).read()) if os.path.exists(p) else 0; "
        "open(p, 'w').write(str(n + 1)); print('run', n); sys.exit(0 if n else 1)"
    )
    kube.apply(
        pod(
            "retry",
            ["python3", "-c", script],
            restartPolicy="OnFailure",
            volumes=[{"name": "state", "persistentVolumeClaim": {"claimName": "state"}}],
            container={"volumeMounts": [{"name": "state", "mountPath": "/state"}]},
        ),
        namespace,
    )
    done = kube.wait_pod_phase("retry", namespace, ("Succeeded", "Failed"), timeout=60)
    status = done["status"]["containerStatuses"][0]
    assert done["status"]["phase"] == "Succeeded"
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert logs(kube, "retry", namespace, "--previous") == "run 0\n"


@pytest.mark.parametrize(
    "probe",
    [
        pytest.param({"tcpSocket": {"port": 8081}}, id="tcpSocket"),
        pytest.param(
            {
                "exec": {
                    "command": [
                        "python3",
                        "-c",
                        "import urllib.request as u; u.urlopen('http://127.0.0.1:8081/')",
                    ]
                }
            },
            id="exec",
        ),
    ],
)
def test_readiness_from_tcp_and_exec_probes(
    kube: Kube, namespace: str, probe: dict[str, Any]
) -> None:
    kube.apply(
        pod(
            "probed",
            ["python3", "-m", "http.server", "8081"],
            restartPolicy="Always",
            container={"readinessProbe": {**probe, "periodSeconds": 1}},
        ),
        namespace,
    )
    kube.wait_condition("pod", "probed", "-n", namespace, type="Ready", timeout=30)


def test_deletion_sends_sigterm_and_honours_the_grace_period(kube: Kube, namespace: str) -> None:
    script = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('got SIGTERM', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(600)\n"
    )
    kube.apply(
        pod("graceful", ["python3", "-c", script], terminationGracePeriodSeconds=20), namespace
    )
    kube.wait_pod_phase("graceful", namespace, ("Running",))
    wait_for(
        lambda: "ready" in logs(kube, "graceful", namespace),
        20,
        "the process to install its handler",
    )
    started = time.monotonic()
    kube.kubectl("delete", "pod", "graceful", "-n", namespace, "--wait=true", timeout=60)
    assert time.monotonic() - started < 15, "SIGTERM ended the process; no SIGKILL wait expected"


def test_kubelet_endpoint_requires_a_client_certificate_from_the_cluster_ca(kube: Kube) -> None:
    address = (str(kube.layout.gateway), kube.layout.kubelet_port("cpu-0"))
    pki = kube.layout.pki
    trusted = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    trusted.load_cert_chain(
        str(pki / "apiserver-kubelet-client.crt"), str(pki / "apiserver-kubelet-client.key")
    )
    with (
        socket.create_connection(address, timeout=5) as raw,
        trusted.wrap_socket(raw, server_hostname=address[0]) as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubelet\r\n\r\n")
        assert tls.recv(100).startswith(b"HTTP/1.1 200")
    anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    def ask_without_certificate() -> bytes:
        with (
            socket.create_connection(address, timeout=5) as raw,
            anonymous.wrap_socket(raw, server_hostname=address[0]) as tls,
        ):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: kubelet\r\n\r\n")
            return tls.recv(100)

    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        ask_without_certificate()


def test_run_as_user_drops_privileges_and_still_reaches_the_environment(
    kube: Kube, namespace: str
) -> None:
    kube.apply(
        pod(
            "nonroot",
            ["python3", "-c", "import os; print(os.getuid(), os.getgid())"],
            securityContext={"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 3000},
        ),
        namespace,
    )
    done = kube.wait_pod_phase("nonroot", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", logs(kube, "nonroot", namespace)
    assert logs(kube, "nonroot", namespace).strip() == "1000 3000"


def test_a_volume_over_the_checkout_does_not_hide_the_environment(
    kube: Kube, namespace: str
) -> None:
    # Like an emptyDir at /tmp when the checkout lives under /tmp: the environment is the
    # containers' "image", and a volume hides an image's files only below its mount path.
    parent = str(REPO.parent)
    kube.apply(
        pod(
            "covered",
            ["python3", "-c", "import os, sys; print(sorted(os.listdir(sys.argv[1])))", parent],
            volumes=[{"name": "scratch", "emptyDir": {}}],
            container={"volumeMounts": [{"name": "scratch", "mountPath": parent}]},
        ),
        namespace,
    )
    done = kube.wait_pod_phase("covered", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", logs(kube, "covered", namespace)
    assert logs(kube, "covered", namespace).strip() == repr([REPO.name])


# Prints the container's cpu and memory cgroup folders (cgroup v1, as on the build machines),
# then its CFS quota and period and its memory limit, as the container itself sees them.
SHOW_CGROUPS = """
own = {}
for line in open('/proc/self/cgroup'):
    _, controllers, path = line.rstrip().split(':', 2)
    own.update((c, path) for c in controllers.split(','))
cpu, memory = '/sys/fs/cgroup/cpu' + own['cpu'], '/sys/fs/cgroup/memory' + own['memory']
read = lambda name: open(name).read().strip()
print(cpu, memory)
print(read(cpu + '/cpu.cfs_quota_us'), read(cpu + '/cpu.cfs_period_us'),
      read(memory + '/memory.limit_in_bytes'), flush=True)
"""
UNLIMITED_MEMORY = str(2**63 - 4096)  # the kernel's "no limit", rounded down to a page


def cgroup_folders(kube: Kube, name: str, namespace: str) -> list[Path]:
    """The cpu and memory cgroup folders a SHOW_CGROUPS pod printed first."""
    return [Path(p) for p in logs(kube, name, namespace).splitlines()[0].split()]


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(
            {"limits": {"cpu": "200m", "memory": "64Mi"}},
            f"20000 100000 {64 * 2**20}",
            id="limited",
        ),
        pytest.param({}, f"-1 100000 {UNLIMITED_MEMORY}", id="no-limits-still-runs"),
    ],
)
def test_container_runs_in_a_cgroup_with_its_limits(
    kube: Kube, namespace: str, resources: dict[str, Any], expected: str
) -> None:
    kube.apply(
        pod("limited", ["python3", "-c", SHOW_CGROUPS], container={"resources": resources}),
        namespace,
    )
    done = kube.wait_pod_phase("limited", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", logs(kube, "limited", namespace)
    assert logs(kube, "limited", namespace).splitlines()[1] == expected


READ_ONLY_ROOT = """
import errno, os, sys
def attempt(path):
    try:
        with open(path, "w") as f:
            f.write("x")
    except OSError as err:
        return errno.errorcode[err.errno]
    os.remove(path)
    return "written"
print(attempt("/tmp/scratch-file"), attempt(sys.argv[1]), flush=True)
"""


@pytest.mark.parametrize(
    ("read_only", "expected"),
    [(True, "written EROFS"), (False, "written written")],
    ids=["read-only", "writable"],
)
def test_a_read_only_root_file_system_leaves_only_volumes_writable(
    kube: Kube, namespace: str, read_only: bool, expected: str
) -> None:
    # A file next to the environment, as a file inside a real image's root file system.
    outside = str(REPO / f".localcluster-rofs-{namespace}")
    kube.apply(
        pod(
            "rofs",
            ["python3", "-c", READ_ONLY_ROOT, outside],
            container={
                "securityContext": {"readOnlyRootFilesystem": read_only},
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
            },
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
        namespace,
    )
    done = kube.wait_pod_phase("rofs", namespace, ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", logs(kube, "rofs", namespace)
    assert logs(kube, "rofs", namespace).strip() == expected
    assert not Path(outside).exists()


def test_exceeding_the_memory_limit_is_reported_oom_killed(kube: Kube, namespace: str) -> None:
    kube.apply(
        pod(
            "hog",
            ["python3", "-c", "hog = bytearray(200 * 2**20)"],
            container={"resources": {"limits": {"memory": "50Mi"}}},
        ),
        namespace,
    )
    done = kube.wait_pod_phase("hog", namespace, ("Failed", "Succeeded"))
    terminated = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert done["status"]["phase"] == "Failed"
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_deleting_a_pod_removes_its_cgroups(kube: Kube, namespace: str) -> None:
    kube.apply(
        pod(
            "held",
            ["python3", "-c", SHOW_CGROUPS + "import time; time.sleep(600)"],
            container={"resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}},
        ),
        namespace,
    )
    kube.wait_pod_phase("held", namespace, ("Running",))
    wait_for(lambda: len(logs(kube, "held", namespace).splitlines()) == 2, 20, "the cgroups")
    folders = cgroup_folders(kube, "held", namespace)
    assert all(f.is_dir() for f in folders)
    kube.kubectl("delete", "pod", "held", "-n", namespace, "--wait=true", timeout=60)
    wait_for(
        lambda: not any(f.exists() or f.parent.exists() for f in folders),
        10,
        "the container's and the pod's cgroups to be removed",
    )


def test_finished_job_with_ttl_after_finished_is_deleted(kube: Kube, namespace: str) -> None:
    kube.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "brief"},
            "spec": {
                "ttlSecondsAfterFinished": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": PY, "command": ["true"]}],
                    }
                },
            },
        },
        namespace,
    )
    assert kube.get("job", "brief", "-n", namespace)["spec"]["ttlSecondsAfterFinished"] == 1
    wait_for(
        lambda: kube.kubectl("get", "job", "brief", "-n", namespace, check=False).returncode != 0,
        60,
        "the TTL-after-finished controller to delete the finished job",
    )
