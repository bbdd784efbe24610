"""kubearts.config: the operator configuration from KUBEARTS_* environment variables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubearts.config import (
    DEFAULT_FLAVORS,
    DEFAULT_POOLS,
    DEFAULT_WORKER_RESOURCES,
    Config,
    PoolConfig,
    load_config,
    parse_pools,
)


def test_empty_environment_gives_the_documented_defaults() -> None:
    config = load_config({})
    assert config == Config(
        namespace="kubearts-system",
        workspace_pvc="kubearts-workspace",
        workspace_size="20Gi",
        image_dataset="ghcr.io/kubearts/dataset:0.1.0",
        image_trainer="ghcr.io/kubearts/trainer:0.1.0",
        image_converter="ghcr.io/kubearts/converter:0.1.0",
        image_predictor="ghcr.io/kubearts/predictor:0.1.0",
        metrics_port=8080,
        health_port=8081,
        log_format="plain",
        pools=DEFAULT_POOLS,
        gallery_resync_seconds=30.0,
    )


def test_default_pools() -> None:
    sizes = {"flavors": DEFAULT_FLAVORS, "default_flavor": "medium"}
    assert dict(DEFAULT_POOLS) == {
        "cpu": PoolConfig("cpu", None, {}, (), **sizes),
        "gpu": PoolConfig(
            "gpu",
            "nvidia.com/gpu",
            {"nvidia.com/gpu.present": "true"},
            ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
            **sizes,
        ),
        "ascend910": PoolConfig(
            "ascend910", "huawei.com/Ascend910", {"accelerator": "huawei-Ascend910"}, (), **sizes
        ),
        "ascend310": PoolConfig(
            "ascend310", "huawei.com/Ascend310", {"accelerator": "huawei-Ascend310"}, (), **sizes
        ),
    }
    assert all(pool.default_flavor in pool.flavors for pool in DEFAULT_POOLS.values())


def test_worker_resources_override_the_defaults_per_worker() -> None:
    config = load_config({"KUBEARTS_WORKER_RESOURCES": '{"model": {"memory": "3Gi"}}'})
    assert config.worker_resources == {**DEFAULT_WORKER_RESOURCES, "model": {"memory": "3Gi"}}
    assert Config().worker_resources == DEFAULT_WORKER_RESOURCES


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", r"KUBEARTS_WORKER_RESOURCES is not valid JSON"),
        ("[]", r"KUBEARTS_WORKER_RESOURCES must be a JSON object"),
        ('{"trainer": {"cpu": "1"}}', r"unknown worker 'trainer'; workers are dataset, conv"),
        ('{"dataset": {"memory": 2}}', r"\['dataset'\]\.memory=2 is not a quantity"),
        ('{"dataset": {"gpu": "1"}}', r"unknown keys \['gpu'\]; allowed keys are cpu, memory"),
    ],
    ids=["not-json", "not-object", "unknown-worker", "number", "unknown-key"],
)
def test_bad_worker_resources_name_the_variable_and_the_fix(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config({"KUBEARTS_WORKER_RESOURCES": raw})


def test_avoid_accelerator_nodes_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"avoidAcceleratorNodes='no'; write true or false"):
        load_config({"KUBEARTS_POOLS": '{"cpu": {"avoidAcceleratorNodes": "no"}}'})


def test_empty_values_keep_defaults() -> None:
    assert load_config({"KUBEARTS_NAMESPACE": "  ", "KUBEARTS_METRICS_PORT": ""}) == Config()


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        pytest.param("KUBEARTS_NAMESPACE", "ml-ops", "namespace", "ml-ops", id="namespace"),
        pytest.param(
            "KUBEARTS_WORKSPACE_PVC", "shared.data", "workspace_pvc", "shared.data", id="pvc"
        ),
        pytest.param(
            "KUBEARTS_WORKSPACE_SIZE", "500Gi", "workspace_size", "500Gi", id="workspace-size"
        ),
        pytest.param(
            "KUBEARTS_IMAGE_DATASET", "r.local/d:1", "image_dataset", "r.local/d:1", id="dataset"
        ),
        pytest.param(
            "KUBEARTS_IMAGE_TRAINER", "r.local/t:1", "image_trainer", "r.local/t:1", id="trainer"
        ),
        pytest.param(
            "KUBEARTS_IMAGE_CONVERTER",
            "r/c@sha256:ab",
            "image_converter",
            "r/c@sha256:ab",
            id="converter",
        ),
        pytest.param(
            "KUBEARTS_IMAGE_PREDICTOR", "r/p:2", "image_predictor", "r/p:2", id="predictor"
        ),
        pytest.param("KUBEARTS_METRICS_PORT", "9090", "metrics_port", 9090, id="metrics-port"),
        pytest.param("KUBEARTS_METRICS_PORT", "0", "metrics_port", 0, id="metrics-off"),
        pytest.param("KUBEARTS_HEALTH_PORT", " 9091 ", "health_port", 9091, id="health-port"),
        pytest.param("KUBEARTS_LOG_FORMAT", "json", "log_format", "json", id="json-logs"),
        pytest.param("KUBEARTS_LOG_FORMAT", "JSON", "log_format", "json", id="case-insensitive"),
        pytest.param(
            "KUBEARTS_GALLERY_RESYNC_SECONDS", "5", "gallery_resync_seconds", 5.0, id="resync"
        ),
        pytest.param(
            "KUBEARTS_DATASET_JOB_DEADLINE_SECONDS",
            "600",
            "dataset_job_deadline_seconds",
            600,
            id="dataset-deadline",
        ),
        pytest.param(
            "KUBEARTS_DATASET_CLEANUP_DEADLINE_SECONDS",
            "30",
            "dataset_cleanup_deadline_seconds",
            30,
            id="dataset-cleanup-deadline",
        ),
        pytest.param(
            "KUBEARTS_GALLERY_RESYNC_SECONDS",
            "1.5",
            "gallery_resync_seconds",
            1.5,
            id="resync-fraction",
        ),
    ],
)
def test_each_variable_sets_its_field(variable: str, value: str, field: str, expected: Any) -> None:
    assert getattr(load_config({variable: value}), field) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {"KUBEARTS_NAMESPACE": "ML_Ops"}, r"KUBEARTS_NAMESPACE='ML_Ops'.*namespace", id="ns"
        ),
        pytest.param(
            {"KUBEARTS_NAMESPACE": "a" * 64}, r"KUBEARTS_NAMESPACE=.*at most 63", id="ns-long"
        ),
        pytest.param(
            {"KUBEARTS_WORKSPACE_PVC": "Work Space"}, r"KUBEARTS_WORKSPACE_PVC=.*name", id="pvc"
        ),
        pytest.param(
            {"KUBEARTS_WORKSPACE_SIZE": "20 GB"},
            r"KUBEARTS_WORKSPACE_SIZE='20 GB' is not a quantity.*'20Gi'",
            id="workspace-size",
        ),
        pytest.param(
            {"KUBEARTS_IMAGE_TRAINER": "ghcr.io/x trainer"},
            r"KUBEARTS_IMAGE_TRAINER=.*whitespace",
            id="image",
        ),
        pytest.param(
            {"KUBEARTS_METRICS_PORT": "http"}, r"KUBEARTS_METRICS_PORT='http'.*0 to 65535", id="nan"
        ),
        pytest.param(
            {"KUBEARTS_METRICS_PORT": "70000"}, r"KUBEARTS_METRICS_PORT=.*0 turns it off", id="big"
        ),
        pytest.param(
            {"KUBEARTS_HEALTH_PORT": "0"}, r"KUBEARTS_HEALTH_PORT='0'.*1 to 65535", id="health-0"
        ),
        pytest.param(
            {"KUBEARTS_METRICS_PORT": "9000", "KUBEARTS_HEALTH_PORT": "9000"},
            r"KUBEARTS_METRICS_PORT and KUBEARTS_HEALTH_PORT are both 9000",
            id="same-ports",
        ),
        pytest.param(
            {"KUBEARTS_LOG_FORMAT": "yaml"},
            r"KUBEARTS_LOG_FORMAT='yaml'.*'json' or 'plain'",
            id="log-format",
        ),
        pytest.param(
            {"KUBEARTS_POOLS": "{cpu: {}}"}, r"KUBEARTS_POOLS is not valid JSON", id="json"
        ),
        pytest.param(
            {"KUBEARTS_GALLERY_RESYNC_SECONDS": "30s"},
            r"KUBEARTS_GALLERY_RESYNC_SECONDS='30s'.*number of seconds, at least 1",
            id="resync-unit",
        ),
        pytest.param(
            {"KUBEARTS_GALLERY_RESYNC_SECONDS": "0.5"},
            r"KUBEARTS_GALLERY_RESYNC_SECONDS='0.5'.*at least 1",
            id="resync-too-short",
        ),
        pytest.param(
            {"KUBEARTS_GALLERY_RESYNC_SECONDS": "nan"},
            r"KUBEARTS_GALLERY_RESYNC_SECONDS='nan'",
            id="resync-nan",
        ),
        pytest.param(
            {"KUBEARTS_GALLERY_RESYNC_SECONDS": "inf"},
            r"KUBEARTS_GALLERY_RESYNC_SECONDS='inf'",
            id="resync-infinite",
        ),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(environ)


def test_pools_variable_is_the_complete_table() -> None:
    raw = json.dumps(
        {
            "cpu": {"nodeSelector": {}, "tolerations": []},
            "gpu": {
                "resourceName": "nvidia.com/mig-1g.5gb",
                "nodeSelector": {"gpu-type": "a100"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml"}],
            },
        }
    )
    pools = load_config({"KUBEARTS_POOLS": raw}).pools
    assert pools == {
        "cpu": PoolConfig("cpu", None, {}, ()),
        "gpu": PoolConfig(
            "gpu",
            "nvidia.com/mig-1g.5gb",
            {"gpu-type": "a100"},
            ({"key": "dedicated", "operator": "Equal", "value": "ml"},),
        ),
    }


def test_pool_flavors_are_read() -> None:
    raw = {
        "cpu": {
            "flavors": {"small": {"cpu": "500m", "memory": "1Gi"}, "large": {"cpu": "4"}},
            "defaultFlavor": "small",
        }
    }
    cpu = parse_pools(json.dumps(raw))["cpu"]
    assert cpu.flavors == {"small": {"cpu": "500m", "memory": "1Gi"}, "large": {"cpu": "4"}}
    assert cpu.default_flavor == "small"


def test_pool_keys_may_be_left_out() -> None:
    assert parse_pools('{"cpu": {}}') == {"cpu": PoolConfig("cpu", None, {}, ())}


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        pytest.param([], r"non-empty JSON object keyed by pool name", id="list"),
        pytest.param({}, r"non-empty JSON object", id="empty"),
        pytest.param({"tpu": {}}, r"unknown pool 'tpu'; pools are cpu, gpu, ascend910", id="name"),
        pytest.param({"gpu": "nvidia"}, r"KUBEARTS_POOLS\['gpu'\] must be a JSON object", id="str"),
        pytest.param(
            {"gpu": {"resource": "nvidia.com/gpu"}},
            r"KUBEARTS_POOLS\['gpu'\] has unknown keys \['resource'\]",
            id="misspelt-key",
        ),
        pytest.param(
            {"gpu": {"resourceName": "nvidia gpu"}},
            r"\['gpu'\].resourceName='nvidia gpu' is not an extended resource name",
            id="resource-name",
        ),
        pytest.param(
            {"gpu": {"nodeSelector": ["a"]}}, r"\['gpu'\].nodeSelector must be an object", id="ns"
        ),
        pytest.param(
            {"gpu": {"nodeSelector": {"nvidia.com/gpu.present": True}}},
            r"nodeSelector has 'nvidia.com/gpu.present': True.*quote \"true\"",
            id="unquoted-true",
        ),
        pytest.param(
            {"gpu": {"nodeSelector": {"a": "not valid!"}}},
            r"nodeSelector\['a'\]='not valid!' is not a valid label value",
            id="label-value",
        ),
        pytest.param(
            {"gpu": {"tolerations": {"key": "a"}}}, r"tolerations must be a list", id="tol-dict"
        ),
        pytest.param(
            {"gpu": {"tolerations": [{"key": "a", "operator": "In"}]}},
            r"tolerations\[0\].operator='In'; use 'Exists' or 'Equal'",
            id="tol-operator",
        ),
        pytest.param(
            {"gpu": {"tolerations": [{"key": "a", "effect": "NoRun"}]}},
            r"tolerations\[0\].effect='NoRun'; use NoSchedule",
            id="tol-effect",
        ),
        pytest.param(
            {"gpu": {"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}},
            r"operator Exists and a value; drop the value",
            id="tol-exists-value",
        ),
        pytest.param(
            {"cpu": {"flavors": ["small"]}}, r"\['cpu'\].flavors must be an object", id="flavors"
        ),
        pytest.param(
            {"cpu": {"flavors": {"small": {}}}},
            r"flavors\['small'\] must be an object like",
            id="empty-flavor",
        ),
        pytest.param(
            {"cpu": {"flavors": {"small": {"gpu": "1"}}}},
            r"flavors\['small'\] has unknown keys \['gpu'\]; allowed keys are cpu, memory",
            id="flavor-key",
        ),
        pytest.param(
            {"cpu": {"flavors": {"small": {"memory": 1024}}}},
            r"flavors\['small'\].memory=1024 is not a quantity; write it as a string",
            id="flavor-number",
        ),
        pytest.param(
            {"cpu": {"flavors": {"small": {"memory": "1 GB"}}}},
            r"flavors\['small'\].memory='1 GB' is not a quantity",
            id="flavor-quantity",
        ),
        pytest.param(
            {"cpu": {"flavors": {"small": {"cpu": "1"}}, "defaultFlavor": "tiny"}},
            r"defaultFlavor='tiny' is not one of the pool's flavors \(small\)",
            id="default-flavor",
        ),
        pytest.param(
            {"gpu": {"tolerations": [{"key": "a", "seconds": 5}]}},
            r"tolerations\[0\] has unknown keys \['seconds'\]",
            id="tol-key",
        ),
    ],
)
def test_bad_pools_name_the_entry_and_the_fix(pools: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config({"KUBEARTS_POOLS": json.dumps(pools)})


def test_config_is_frozen() -> None:
    config = load_config({})
    with pytest.raises(AttributeError):
        config.namespace = "other"  # type: ignore[misc]
