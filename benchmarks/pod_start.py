"""Pod start latency on the local cluster: time from the create call to the pod observed
Running (scheduled, sandbox and volumes set up, process started, status reported), for N
pods created at once.

    .venv/bin/python benchmarks/pod_start.py [--pods 20] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

from kubernetes import client, config, watch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--kubeconfig", default=".localcluster/kubeconfig")
    args = parser.parse_args()
    config.load_kube_config(args.kubeconfig)
    core = client.CoreV1Api()
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    while not core.list_namespaced_service_account(ns).items:
        time.sleep(0.05)
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, ns, timeout_seconds=120):
            pod = event["object"]
            if pod.status.phase == "Running" and pod.metadata.name not in running:
                running[pod.metadata.name] = time.monotonic()
                if len(running) == args.pods:
                    w.stop()
        done.set()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    time.sleep(0.5)  # let the watch open before the first create
    start = time.monotonic()
    for i in range(args.pods):
        name = f"p{i:03d}"
        created[name] = time.monotonic()
        core.create_namespaced_pod(
            ns,
            {
                "metadata": {"name": name},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.11",
                            "command": ["python3", "-c", "import time; time.sleep(60)"],
                        }
                    ],
                },
            },
        )
    done.wait(120)
    latencies = sorted(running[n] - created[n] for n in running)
    all_running = max(running.values()) - start
    print(f"pods: {args.pods}, running: {len(running)}, all running after {all_running:.2f}s")
    median = statistics.median(latencies) * 1000
    p90 = latencies[int(0.9 * (len(latencies) - 1))] * 1000
    print(
        f"create -> Running latency: median {median:.0f} ms, p90 {p90:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    core.delete_namespace(ns)


if __name__ == "__main__":
    main()
