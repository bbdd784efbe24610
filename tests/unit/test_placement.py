"""kubearts.builders.placement: resource pools → requests, node selector, tolerations."""

from __future__ import annotations

from typing import Any

import pytest

from kubearts.builders.placement import build_placement
from kubearts.config import DEFAULT_POOLS, PoolConfig, Toleration

GPU_TOLERATION: Toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
#: The default flavor, medium: CPU requested, memory requested and limited.
MEDIUM = {"cpu": "1", "memory": "4Gi"}
#: The default cpu pool keeps off every accelerator pool's nodes.
OFF_ACCELERATORS = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {
                            "key": "accelerator",
                            "operator": "NotIn",
                            "values": ["huawei-Ascend910", "huawei-Ascend310"],
                        },
                        {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]},
                    ]
                }
            ]
        }
    }
}


@pytest.mark.parametrize(
    ("pool", "count", "expected"),
    [
        pytest.param(
            "cpu",
            1,
            {
                "resources": {"requests": MEDIUM, "limits": {"memory": "4Gi"}},
                "nodeSelector": {},
                "tolerations": [],
                "affinity": OFF_ACCELERATORS,
            },
            id="cpu",
        ),
        pytest.param(
            "gpu",
            2,
            {
                "resources": {
                    "requests": {"nvidia.com/gpu": "2", **MEDIUM},
                    "limits": {"nvidia.com/gpu": "2", "memory": "4Gi"},
                },
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": [GPU_TOLERATION],
                "affinity": {},
            },
            id="gpu",
        ),
        pytest.param(
            "ascend910",
            8,
            {
                "resources": {
                    "requests": {"huawei.com/Ascend910": "8", **MEDIUM},
                    "limits": {"huawei.com/Ascend910": "8", "memory": "4Gi"},
                },
                "nodeSelector": {"accelerator": "huawei-Ascend910"},
                "tolerations": [],
                "affinity": {},
            },
            id="ascend910",
        ),
        pytest.param(
            "ascend310",
            1,
            {
                "resources": {
                    "requests": {"huawei.com/Ascend310": "1", **MEDIUM},
                    "limits": {"huawei.com/Ascend310": "1", "memory": "4Gi"},
                },
                "nodeSelector": {"accelerator": "huawei-Ascend310"},
                "tolerations": [],
                "affinity": {},
            },
            id="ascend310",
        ),
    ],
)
def test_each_default_pool(pool: str, count: int, expected: dict[str, Any]) -> None:
    assert build_placement(pool, count, DEFAULT_POOLS) == expected


@pytest.mark.parametrize("count", [0, 1, 4], ids=["zero", "one", "four"])
def test_cpu_pool_requests_no_device_whatever_the_count(count: int) -> None:
    assert build_placement("cpu", count, DEFAULT_POOLS)["resources"] == {
        "requests": MEDIUM,
        "limits": {"memory": "4Gi"},
    }


@pytest.mark.parametrize("count", [1, 3, 16], ids=["1", "3", "16"])
def test_accelerator_count_is_requested_and_limited(count: int) -> None:
    resources = build_placement("gpu", count, DEFAULT_POOLS)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == str(count)
    assert resources["limits"]["nvidia.com/gpu"] == str(count)


@pytest.mark.parametrize("count", [0, -1, True, 1.5], ids=["zero", "negative", "bool", "fraction"])
def test_bad_accelerator_count_names_the_field(count: Any) -> None:
    with pytest.raises(ValueError, match=r"spec.resources.count: pool 'gpu' needs .*>= 1"):
        build_placement("gpu", count, DEFAULT_POOLS)


def test_unknown_pool_names_the_field_and_the_allowed_values() -> None:
    with pytest.raises(
        ValueError,
        match=r"spec.resources.pool: unknown pool 'tpu'; "
        r"allowed values are ascend310, ascend910, cpu, gpu",
    ):
        build_placement("tpu", 1, DEFAULT_POOLS)


def test_pool_missing_from_the_configuration_is_unknown() -> None:
    pools = {"cpu": DEFAULT_POOLS["cpu"]}
    with pytest.raises(ValueError, match=r"unknown pool 'gpu'; allowed values are cpu$"):
        build_placement("gpu", 1, pools)


def test_field_prefix_is_used_in_messages() -> None:
    with pytest.raises(ValueError, match=r"^spec.predictor.resources.pool:"):
        build_placement("tpu", 1, DEFAULT_POOLS, field="spec.predictor.resources")


def test_extra_node_selector_is_merged() -> None:
    placement = build_placement(
        "gpu",
        1,
        DEFAULT_POOLS,
        extra_node_selector={"gpu-type": "a100", "nvidia.com/gpu.present": "true"},
    )
    assert placement["nodeSelector"] == {"nvidia.com/gpu.present": "true", "gpu-type": "a100"}


def test_extra_node_selector_may_not_contradict_the_pool() -> None:
    with pytest.raises(
        ValueError,
        match=r"spec.resources.nodeSelector: accelerator='huawei-Ascend310' contradicts "
        r"pool 'ascend910'",
    ):
        build_placement(
            "ascend910", 1, DEFAULT_POOLS, extra_node_selector={"accelerator": "huawei-Ascend310"}
        )


def test_extra_tolerations_follow_the_pool_ones_without_duplicates() -> None:
    dedicated: Toleration = {
        "key": "dedicated",
        "operator": "Equal",
        "value": "ml",
        "effect": "NoSchedule",
    }
    placement = build_placement(
        "gpu",
        1,
        DEFAULT_POOLS,
        extra_tolerations=[dedicated, {**GPU_TOLERATION}],
    )
    assert placement["tolerations"] == [GPU_TOLERATION, dedicated]


def test_configured_pool_is_used() -> None:
    pools = {
        "gpu": PoolConfig(
            "gpu", "nvidia.com/mig-1g.5gb", {"gpu-type": "a100"}, ({"operator": "Exists"},)
        )
    }
    assert build_placement("gpu", 2, pools) == {
        "resources": {
            "requests": {"nvidia.com/mig-1g.5gb": "2"},
            "limits": {"nvidia.com/mig-1g.5gb": "2"},
        },
        "nodeSelector": {"gpu-type": "a100"},
        "tolerations": [{"operator": "Exists"}],
        "affinity": {},
    }


def test_result_does_not_share_state_with_the_configuration() -> None:
    placement = build_placement("gpu", 1, DEFAULT_POOLS)
    placement["nodeSelector"]["x"] = "y"
    placement["tolerations"][0]["key"] = "changed"
    assert build_placement("gpu", 1, DEFAULT_POOLS)["nodeSelector"] == {
        "nvidia.com/gpu.present": "true"
    }
    assert DEFAULT_POOLS["gpu"].tolerations == (GPU_TOLERATION,)


FLAVORED = {
    "cpu": PoolConfig(
        "cpu",
        None,
        flavors={"small": {"cpu": "500m", "memory": "1Gi"}, "wide": {"cpu": "8"}},
        default_flavor="small",
    ),
    "gpu": PoolConfig("gpu", "nvidia.com/gpu", flavors={"a100": {"cpu": "8", "memory": "64Gi"}}),
}


@pytest.mark.parametrize(
    ("pool", "flavor", "expected"),
    [
        pytest.param(
            "cpu",
            None,
            {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}},
            id="pool-default",
        ),
        pytest.param("cpu", "wide", {"requests": {"cpu": "8"}, "limits": {}}, id="named-cpu-only"),
        pytest.param(
            "gpu",
            "a100",
            {
                "requests": {"nvidia.com/gpu": "1", "cpu": "8", "memory": "64Gi"},
                "limits": {"nvidia.com/gpu": "1", "memory": "64Gi"},
            },
            id="with-accelerator",
        ),
        pytest.param(
            "gpu",
            None,
            {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
            id="no-default",
        ),
    ],
)
def test_flavor_adds_cpu_and_memory(pool: str, flavor: str | None, expected: Any) -> None:
    assert build_placement(pool, 1, FLAVORED, flavor=flavor)["resources"] == expected


def test_unknown_flavor_names_the_field_and_the_allowed_values() -> None:
    with pytest.raises(
        ValueError,
        match=r"spec.resources.flavor: unknown flavor 'huge' of pool 'cpu'; "
        r"allowed values are small, wide",
    ):
        build_placement("cpu", 1, FLAVORED, flavor="huge")


def test_flavor_for_a_pool_without_flavors() -> None:
    with pytest.raises(ValueError, match=r"this pool has no flavors configured; leave it out"):
        build_placement("gpu", 1, {"gpu": PoolConfig("gpu", "nvidia.com/gpu")}, flavor="small")


def test_an_explicit_size_replaces_the_flavor() -> None:
    resources = build_placement("cpu", 1, FLAVORED, size={"cpu": "250m", "memory": "512Mi"})[
        "resources"
    ]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }


def test_the_cpu_pool_may_run_on_accelerator_nodes_when_configured() -> None:
    pools = {**DEFAULT_POOLS, "cpu": PoolConfig("cpu", None, avoid_accelerator_nodes=False)}
    assert build_placement("cpu", 1, pools)["affinity"] == {}


def test_only_configured_accelerator_pools_are_avoided() -> None:
    pools = {"cpu": DEFAULT_POOLS["cpu"], "gpu": DEFAULT_POOLS["gpu"]}
    terms = build_placement("cpu", 1, pools)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}
            ]
        }
    ]
    assert build_placement("cpu", 1, {"cpu": DEFAULT_POOLS["cpu"]})["affinity"] == {}
