"""The four nodes of the local cluster, labelled and sized as their device plugins and
feature discovery would label and size real nodes."""

from __future__ import annotations

from typing import Any

NODES: dict[str, dict[str, Any]] = {
    "cpu-0": {
        "labels": {"node.kubernetes.io/instance-type": "cpu.32xlarge", "kubearts.io/pool": "cpu"},
        "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "200Gi"},
        "taints": [],
    },
    "gpu-0": {
        "labels": {
            "node.kubernetes.io/instance-type": "gpu.2xa100",
            "kubearts.io/pool": "gpu",
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
            "nvidia.com/gpu.count": "2",
            "nvidia.com/gpu.memory": "40960",
        },
        "capacity": {
            "cpu": "16",
            "memory": "128Gi",
            "pods": "110",
            "ephemeral-storage": "200Gi",
            "nvidia.com/gpu": "2",
        },
        "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
    },
    "ascend910-0": {
        "labels": {
            "node.kubernetes.io/instance-type": "ascend.8x910",
            "kubearts.io/pool": "ascend910",
            "accelerator": "huawei-Ascend910",
        },
        "capacity": {
            "cpu": "32",
            "memory": "256Gi",
            "pods": "110",
            "ephemeral-storage": "200Gi",
            "huawei.com/Ascend910": "8",
        },
        "taints": [],
    },
    "ascend310-0": {
        "labels": {
            "node.kubernetes.io/instance-type": "ascend.4x310",
            "kubearts.io/pool": "ascend310",
            "accelerator": "huawei-Ascend310",
        },
        "capacity": {
            "cpu": "16",
            "memory": "64Gi",
            "pods": "110",
            "ephemeral-storage": "100Gi",
            "huawei.com/Ascend310": "4",
        },
        "taints": [],
    },
}

# Extended resources and the environment variable through which their device plugin tells
# a container which devices it was given.
DEVICE_ENV = {
    "nvidia.com/gpu": "NVIDIA_VISIBLE_DEVICES",
    "huawei.com/Ascend910": "ASCEND_VISIBLE_DEVICES",
    "huawei.com/Ascend310": "ASCEND_VISIBLE_DEVICES",
}


def node_manifest(name: str) -> dict[str, Any]:
    """The Node object for ``name`` with its labels and taints."""
    spec = NODES[name]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/worker": "",
                **spec["labels"],
            },
        },
        "spec": {"taints": spec["taints"]} if spec["taints"] else {},
    }
