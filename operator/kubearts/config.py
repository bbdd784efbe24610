"""Operator configuration: one frozen dataclass loaded from ``KUBEARTS_*`` environment variables.

The Helm chart sets these variables on the operator Deployment (``make demo`` installs it);
the tests set them in the environment of ``kopf run``. Every value is checked once at start-up so a
typo fails loudly with the variable's name and the fix, instead of later inside a handler.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict, cast

from kubearts.constants import (
    ALL_POOLS,
    POOL_ASCEND310,
    POOL_ASCEND910,
    POOL_CPU,
    POOL_GPU,
)

LogFormat = Literal["json", "plain"]


class Toleration(TypedDict):
    """A Kubernetes toleration, as it appears in a pod spec."""

    key: NotRequired[str]
    operator: NotRequired[Literal["Exists", "Equal"]]
    value: NotRequired[str]
    effect: NotRequired[Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]]
    tolerationSeconds: NotRequired[int]


class Flavor(TypedDict):
    """A named size within a pool: the CPU and memory a pod of that size requests."""

    cpu: NotRequired[str]
    memory: NotRequired[str]


@dataclass(frozen=True)
class PoolConfig:
    """Where the work of one resource pool runs and what it asks the scheduler for."""

    name: str
    """Pool name as written in ``spec.resources.pool`` (cpu, gpu, ascend910, ascend310)."""
    resource_name: str | None
    """Extended resource the pool's device plugin advertises (``nvidia.com/gpu``), or None
    for a pool without accelerators."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    """Labels a node needs to run this pool's pods."""
    tolerations: tuple[Toleration, ...] = ()
    """Taints of this pool's nodes that its pods tolerate."""
    flavors: Mapping[str, Flavor] = field(default_factory=dict)
    """Named sizes (``spec.resources.flavor``) with their CPU and memory requests."""
    default_flavor: str | None = None
    """Flavor used when a spec names none; None means no CPU or memory requests."""
    avoid_accelerator_nodes: bool = True
    """For a pool without an accelerator: keep its pods off the nodes of the accelerator
    pools (a node affinity against their node selectors), so CPU work never takes the CPU
    and memory an accelerator's jobs need."""


#: Flavors every default pool offers: requests of CPU and memory, memory also the limit.
DEFAULT_FLAVORS: Final[Mapping[str, Flavor]] = {
    "small": {"cpu": "500m", "memory": "1Gi"},
    "medium": {"cpu": "1", "memory": "4Gi"},
    "large": {"cpu": "4", "memory": "16Gi"},
}
DEFAULT_FLAVOR: Final = "medium"

#: The operator's own workers, by the kind of work.
WORKER_DATASET: Final = "dataset"
WORKER_CONVERSION: Final = "conversion"
WORKER_MODEL: Final = "model"
#: Their default sizes, measured with room to spare (docs/platforms.md): a dataset worker
#: decodes images in processes bounded by its limit; a conversion loads TensorFlow, the
#: graph, tf2onnx and ONNX Runtime at once; a registration copies and digests files and
#: reads a signature.
DEFAULT_WORKER_RESOURCES: Final[Mapping[str, Flavor]] = {
    WORKER_DATASET: {"cpu": "1", "memory": "2Gi"},
    WORKER_CONVERSION: {"cpu": "1", "memory": "4Gi"},
    WORKER_MODEL: {"cpu": "500m", "memory": "1Gi"},
}


DEFAULT_POOLS: Final[Mapping[str, PoolConfig]] = {
    POOL_CPU: PoolConfig(POOL_CPU, None, flavors=DEFAULT_FLAVORS, default_flavor=DEFAULT_FLAVOR),
    POOL_GPU: PoolConfig(
        POOL_GPU,
        "nvidia.com/gpu",
        {"nvidia.com/gpu.present": "true"},
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        flavors=DEFAULT_FLAVORS,
        default_flavor=DEFAULT_FLAVOR,
    ),
    POOL_ASCEND910: PoolConfig(
        POOL_ASCEND910,
        "huawei.com/Ascend910",
        {"accelerator": "huawei-Ascend910"},
        flavors=DEFAULT_FLAVORS,
        default_flavor=DEFAULT_FLAVOR,
    ),
    POOL_ASCEND310: PoolConfig(
        POOL_ASCEND310,
        "huawei.com/Ascend310",
        {"accelerator": "huawei-Ascend310"},
        flavors=DEFAULT_FLAVORS,
        default_flavor=DEFAULT_FLAVOR,
    ),
}

IMAGE_REGISTRY: Final = "ghcr.io/kubearts"
IMAGE_TAG: Final = "0.1.0"


@dataclass(frozen=True)
class Config:
    """Everything the operator reads from its environment. Build it with :func:`load_config`."""

    namespace: str = "kubearts-system"
    """KUBEARTS_NAMESPACE: the namespace the operator runs in (gallery ConfigMaps live here)."""
    workspace_pvc: str = "kubearts-workspace"
    """KUBEARTS_WORKSPACE_PVC: PersistentVolumeClaim used as the default workspace for data
    sets, training outputs and models."""
    workspace_size: str = "20Gi"
    """KUBEARTS_WORKSPACE_SIZE: storage requested by the workspace PVC when the operator
    creates it (from the default StorageClass) in a namespace that has none. An existing
    claim of that name is used as it is, whatever its size."""
    image_dataset: str = f"{IMAGE_REGISTRY}/dataset:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_DATASET: image of the pods that download, verify and split data sets."""
    image_trainer: str = f"{IMAGE_REGISTRY}/trainer:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_TRAINER: image of training job pods."""
    image_converter: str = f"{IMAGE_REGISTRY}/converter:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_CONVERTER: image of model conversion pods."""
    image_predictor: str = f"{IMAGE_REGISTRY}/predictor:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_PREDICTOR: image of inference service pods."""
    image_predictor_tensorflow: str = f"{IMAGE_REGISTRY}/predictor-tensorflow:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_PREDICTOR_TENSORFLOW: predictor image serving SavedModels with TensorFlow."""
    image_predictor_cuda: str = f"{IMAGE_REGISTRY}/predictor-cuda:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_PREDICTOR_CUDA: predictor image with ONNX Runtime's CUDA provider (gpu)."""
    image_predictor_cann: str = f"{IMAGE_REGISTRY}/predictor-cann:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_PREDICTOR_CANN: predictor image on a CANN base: AscendCL for ``om``
    models and ONNX Runtime's CANN provider (ascend310)."""
    image_converter_ascend: str = f"{IMAGE_REGISTRY}/converter-cann:{IMAGE_TAG}"
    """KUBEARTS_IMAGE_CONVERTER_ASCEND: image of Ascend (ATC) conversion pods: the converter
    built on a CANN toolkit image, so that Huawei's ``atc`` is on its PATH."""
    metrics_port: int = 8080
    """KUBEARTS_METRICS_PORT: port of the Prometheus endpoint; 0 turns it off (used by tests
    that run several operators in one process)."""
    health_port: int = 8081
    """KUBEARTS_HEALTH_PORT: port of kopf's liveness endpoint. kopf serves it from the
    ``--liveness=http://0.0.0.0:<port>/healthz`` command-line option; the chart passes both
    from the same value, the operator itself only reports it."""
    dataset_job_deadline_seconds: int = 6 * 3600
    """KUBEARTS_DATASET_JOB_DEADLINE_SECONDS: ``activeDeadlineSeconds`` of data set Jobs
    (ingest, publish); a Job that runs longer fails with ``DeadlineExceeded``."""
    dataset_cleanup_deadline_seconds: int = 300
    """KUBEARTS_DATASET_CLEANUP_DEADLINE_SECONDS: ``activeDeadlineSeconds`` of each cleanup
    Job of a deleted Dataset (``deletePolicy: Delete``). Short, unlike ingest Jobs: after a
    few attempts the Dataset is released and its files are left where they are."""
    training_job_deadline_seconds: int = 24 * 3600
    """KUBEARTS_TRAINING_JOB_DEADLINE_SECONDS: ``activeDeadlineSeconds`` of training Jobs
    whose ``spec.runPolicy`` sets none."""
    conversion_job_deadline_seconds: int = 2 * 3600
    """KUBEARTS_CONVERSION_JOB_DEADLINE_SECONDS: ``activeDeadlineSeconds`` of conversion Jobs."""
    conversion_ascend_pool: str = "cpu"
    """KUBEARTS_CONVERSION_ASCEND_POOL: the pool Ascend (ATC) conversions run on. ATC needs
    the CANN toolkit, not a chip; name the pool whose nodes can run the CANN image."""
    allow_cpu_fallback: bool = False
    """KUBEARTS_ALLOW_CPU_FALLBACK: ``true`` lets a worker placed on a GPU or Ascend node run
    on the CPU when the framework sees no such device (it says so in status and as a
    Warning event); ``false`` fails it with ``AcceleratorUnavailable``. For clusters whose
    accelerator nodes have no chips, such as the local test cluster."""
    log_format: LogFormat = "plain"
    """KUBEARTS_LOG_FORMAT: ``json`` (one object per line, for log collectors) or ``plain``."""
    pools: Mapping[str, PoolConfig] = field(default_factory=lambda: dict(DEFAULT_POOLS))
    """KUBEARTS_POOLS: the resource pools, a JSON object keyed by pool name, each value
    ``{"resourceName": str (absent for cpu), "nodeSelector": {str: str},
    "tolerations": [Toleration], "flavors": {name: {"cpu": qty, "memory": qty}},
    "defaultFlavor": name}``, every key optional. When set it is the complete table: a
    pool left out is not offered by this cluster."""
    worker_resources: Mapping[str, Flavor] = field(
        default_factory=lambda: dict(DEFAULT_WORKER_RESOURCES)
    )
    """KUBEARTS_WORKER_RESOURCES: the CPU and memory of the operator's own workers, a JSON
    object ``{"dataset" | "conversion" | "model": {"cpu": qty, "memory": qty}}``; a worker
    left out keeps its default. CPU is requested; memory is requested and is the limit."""
    gallery_resync_seconds: float = 30.0
    """KUBEARTS_GALLERY_RESYNC_SECONDS: how often remote gallery indexes (``index.<name>.url``
    keys) are fetched again, with a conditional request, by one task for the whole operator;
    a changed index wakes the Subscriptions of its gallery. Edits of gallery ConfigMaps are
    seen at once through their watch, whatever this says. At least 1."""


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A qualified name (optionally prefixed by a DNS subdomain), as label keys and extended
# resource names are.
_QUALIFIED_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOLERATION_KEYS: Final = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_POOL_KEYS: Final = frozenset(
    {
        "resourceName",
        "nodeSelector",
        "tolerations",
        "flavors",
        "defaultFlavor",
        "avoidAcceleratorNodes",
    }
)
_FLAVOR_KEYS: Final = frozenset({"cpu", "memory"})
# A Kubernetes resource quantity such as 500m, 2, 1.5, 4Gi or 1e3.
_QUANTITY = re.compile(
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
)


def load_config(environ: Mapping[str, str] = os.environ) -> Config:
    """Build the :class:`Config` from ``environ``; unset or empty variables keep the defaults.

    Raises ValueError naming the variable and the fix on the first bad value.
    """
    defaults = Config()

    def text(name: str, default: str) -> str:
        value = environ.get(name, "").strip()
        return value or default

    namespace = text("KUBEARTS_NAMESPACE", defaults.namespace)
    _check_dns_label("KUBEARTS_NAMESPACE", namespace)
    workspace_pvc = text("KUBEARTS_WORKSPACE_PVC", defaults.workspace_pvc)
    _check_dns_subdomain("KUBEARTS_WORKSPACE_PVC", workspace_pvc)
    workspace_size = text("KUBEARTS_WORKSPACE_SIZE", defaults.workspace_size)
    if not _QUANTITY.match(workspace_size):
        raise ValueError(
            f"KUBEARTS_WORKSPACE_SIZE={workspace_size!r} is not a quantity; set it to a size "
            "such as '20Gi' or '500Gi'"
        )

    images = _images(environ, defaults)

    metrics_port = _port("KUBEARTS_METRICS_PORT", environ, defaults.metrics_port, allow_zero=True)
    health_port = _port("KUBEARTS_HEALTH_PORT", environ, defaults.health_port, allow_zero=False)
    if metrics_port == health_port:
        raise ValueError(
            f"KUBEARTS_METRICS_PORT and KUBEARTS_HEALTH_PORT are both {metrics_port}; "
            "give them different ports (defaults 8080 and 8081)"
        )

    log_format = text("KUBEARTS_LOG_FORMAT", defaults.log_format).lower()
    if log_format not in ("json", "plain"):
        raise ValueError(
            f"KUBEARTS_LOG_FORMAT={log_format!r} is not supported; set it to 'json' or 'plain'"
        )

    raw_pools = environ.get("KUBEARTS_POOLS", "").strip()
    pools = parse_pools(raw_pools) if raw_pools else dict(DEFAULT_POOLS)
    ascend_pool = text("KUBEARTS_CONVERSION_ASCEND_POOL", defaults.conversion_ascend_pool)
    if ascend_pool not in pools:
        raise ValueError(
            f"KUBEARTS_CONVERSION_ASCEND_POOL={ascend_pool!r} is not a pool; set it to one of "
            f"{', '.join(sorted(pools))} (KUBEARTS_POOLS)"
        )

    gallery_resync_seconds = _seconds(
        "KUBEARTS_GALLERY_RESYNC_SECONDS", environ, defaults.gallery_resync_seconds, minimum=1.0
    )

    return Config(
        namespace=namespace,
        **_worker_settings(environ, defaults),
        workspace_pvc=workspace_pvc,
        workspace_size=workspace_size,
        image_dataset=images["KUBEARTS_IMAGE_DATASET"],
        image_trainer=images["KUBEARTS_IMAGE_TRAINER"],
        image_converter=images["KUBEARTS_IMAGE_CONVERTER"],
        image_predictor=images["KUBEARTS_IMAGE_PREDICTOR"],
        image_converter_ascend=images["KUBEARTS_IMAGE_CONVERTER_ASCEND"],
        image_predictor_tensorflow=images["KUBEARTS_IMAGE_PREDICTOR_TENSORFLOW"],
        image_predictor_cuda=images["KUBEARTS_IMAGE_PREDICTOR_CUDA"],
        image_predictor_cann=images["KUBEARTS_IMAGE_PREDICTOR_CANN"],
        metrics_port=metrics_port,
        health_port=health_port,
        log_format=cast(LogFormat, log_format),
        pools=pools,
        worker_resources=_worker_resources(environ),
        conversion_ascend_pool=ascend_pool,
        gallery_resync_seconds=gallery_resync_seconds,
    )


def _worker_settings(environ: Mapping[str, str], defaults: Config) -> dict[str, Any]:
    """Deadlines of worker Jobs and whether they may fall back to the CPU."""
    return {
        "dataset_job_deadline_seconds": int(
            _seconds(
                "KUBEARTS_DATASET_JOB_DEADLINE_SECONDS",
                environ,
                defaults.dataset_job_deadline_seconds,
                minimum=1.0,
            )
        ),
        "dataset_cleanup_deadline_seconds": int(
            _seconds(
                "KUBEARTS_DATASET_CLEANUP_DEADLINE_SECONDS",
                environ,
                defaults.dataset_cleanup_deadline_seconds,
                minimum=1.0,
            )
        ),
        "training_job_deadline_seconds": int(
            _seconds(
                "KUBEARTS_TRAINING_JOB_DEADLINE_SECONDS",
                environ,
                defaults.training_job_deadline_seconds,
                minimum=1.0,
            )
        ),
        "conversion_job_deadline_seconds": int(
            _seconds(
                "KUBEARTS_CONVERSION_JOB_DEADLINE_SECONDS",
                environ,
                defaults.conversion_job_deadline_seconds,
                minimum=1.0,
            )
        ),
        "allow_cpu_fallback": _flag(
            "KUBEARTS_ALLOW_CPU_FALLBACK", environ, defaults.allow_cpu_fallback
        ),
    }


def _images(environ: Mapping[str, str], defaults: Config) -> dict[str, str]:
    """The worker images, by variable name; unset variables keep the defaults."""
    images = {
        name: environ.get(name, "").strip() or default
        for name, default in (
            ("KUBEARTS_IMAGE_DATASET", defaults.image_dataset),
            ("KUBEARTS_IMAGE_TRAINER", defaults.image_trainer),
            ("KUBEARTS_IMAGE_CONVERTER", defaults.image_converter),
            ("KUBEARTS_IMAGE_PREDICTOR", defaults.image_predictor),
            ("KUBEARTS_IMAGE_CONVERTER_ASCEND", defaults.image_converter_ascend),
            ("KUBEARTS_IMAGE_PREDICTOR_TENSORFLOW", defaults.image_predictor_tensorflow),
            ("KUBEARTS_IMAGE_PREDICTOR_CUDA", defaults.image_predictor_cuda),
            ("KUBEARTS_IMAGE_PREDICTOR_CANN", defaults.image_predictor_cann),
        )
    }
    for name, image in images.items():
        if any(c.isspace() for c in image):
            raise ValueError(
                f"{name}={image!r} is not an image reference: it contains whitespace; "
                "set it to e.g. 'ghcr.io/kubearts/trainer:0.1.0'"
            )
    return images


def parse_pools(raw: str) -> dict[str, PoolConfig]:
    """Parse the JSON text of ``KUBEARTS_POOLS`` (the chart's ``pools`` value, as JSON)."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"KUBEARTS_POOLS is not valid JSON ({exc.msg} at position {exc.pos}); set it to a "
            'JSON object such as {"cpu": {}, "gpu": {"resourceName": "nvidia.com/gpu"}}'
        ) from exc
    if not isinstance(data, dict) or not data:
        raise ValueError(
            "KUBEARTS_POOLS must be a non-empty JSON object keyed by pool name "
            f"({', '.join(ALL_POOLS)})"
        )
    return {name: _parse_pool(name, value) for name, value in data.items()}


def _parse_pool(name: str, value: Any) -> PoolConfig:
    where = f"KUBEARTS_POOLS[{name!r}]"
    if name not in ALL_POOLS:
        raise ValueError(
            f"KUBEARTS_POOLS has an unknown pool {name!r}; pools are {', '.join(ALL_POOLS)} "
            "(spec.resources.pool accepts only these)"
        )
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object with {', '.join(sorted(_POOL_KEYS))}")
    unknown = sorted(set(value) - _POOL_KEYS)
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {unknown}; allowed keys are {', '.join(sorted(_POOL_KEYS))}"
        )

    resource_name = value.get("resourceName")
    if resource_name in (None, ""):
        resource_name = None
    elif not isinstance(resource_name, str) or not _QUALIFIED_NAME.match(resource_name):
        raise ValueError(
            f"{where}.resourceName={resource_name!r} is not an extended resource name; "
            "use the name the device plugin advertises, e.g. 'nvidia.com/gpu'"
        )

    node_selector = value.get("nodeSelector") or {}
    if not isinstance(node_selector, dict):
        raise ValueError(f"{where}.nodeSelector must be an object of label keys to values")
    for key, label in node_selector.items():
        if not _QUALIFIED_NAME.match(key) or not isinstance(label, str):
            raise ValueError(
                f"{where}.nodeSelector has {key!r}: {label!r}; keys must be label keys and "
                'values strings (quote "true")'
            )
        if not _LABEL_VALUE.match(label) or len(label) > 63:
            raise ValueError(
                f"{where}.nodeSelector[{key!r}]={label!r} is not a valid label value "
                "(at most 63 characters: letters, digits, '-', '_', '.')"
            )

    tolerations = value.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise ValueError(f"{where}.tolerations must be a list of toleration objects")
    for index, toleration in enumerate(tolerations):
        _check_toleration(f"{where}.tolerations[{index}]", toleration)

    flavors = value.get("flavors") or {}
    if not isinstance(flavors, dict):
        raise ValueError(f"{where}.flavors must be an object of flavor names to sizes")
    for flavor_name, flavor in flavors.items():
        _check_flavor(f"{where}.flavors[{flavor_name!r}]", flavor_name, flavor)

    default_flavor = value.get("defaultFlavor") or None
    if default_flavor is not None and default_flavor not in flavors:
        allowed = ", ".join(sorted(flavors)) or "none are configured"
        raise ValueError(
            f"{where}.defaultFlavor={default_flavor!r} is not one of the pool's flavors "
            f"({allowed}); add it under flavors or leave defaultFlavor out"
        )

    avoid = value.get("avoidAcceleratorNodes", True)
    if not isinstance(avoid, bool):
        raise ValueError(f"{where}.avoidAcceleratorNodes={avoid!r}; write true or false")

    return PoolConfig(
        name=name,
        resource_name=resource_name,
        node_selector=dict(node_selector),
        tolerations=tuple(cast(Toleration, dict(t)) for t in tolerations),
        flavors={key: cast(Flavor, dict(size)) for key, size in flavors.items()},
        default_flavor=default_flavor,
        avoid_accelerator_nodes=avoid,
    )


def _worker_resources(environ: Mapping[str, str]) -> dict[str, Flavor]:
    """``KUBEARTS_WORKER_RESOURCES`` over the defaults, each size checked like a flavor."""
    sizes = dict(DEFAULT_WORKER_RESOURCES)
    raw = environ.get("KUBEARTS_WORKER_RESOURCES", "").strip()
    if not raw:
        return sizes
    example = '{"dataset": {"cpu": "1", "memory": "2Gi"}}'
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"KUBEARTS_WORKER_RESOURCES is not valid JSON ({exc.msg} at position {exc.pos}); "
            f"set it to a JSON object such as {example}"
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"KUBEARTS_WORKER_RESOURCES must be a JSON object such as {example}")
    for worker, size in data.items():
        if worker not in DEFAULT_WORKER_RESOURCES:
            raise ValueError(
                f"KUBEARTS_WORKER_RESOURCES has an unknown worker {worker!r}; workers are "
                f"{', '.join(DEFAULT_WORKER_RESOURCES)}"
            )
        _check_flavor(f"KUBEARTS_WORKER_RESOURCES[{worker!r}]", worker, size)
        sizes[worker] = cast(Flavor, dict(size))
    return sizes


def _check_flavor(where: str, name: str, flavor: Any) -> None:
    if not _LABEL_VALUE.match(name) or not name or len(name) > 63:
        raise ValueError(f"{where}: flavor names are at most 63 letters, digits, '-', '_' or '.'")
    if not isinstance(flavor, dict) or not flavor:
        raise ValueError(f"{where} must be an object like {{'cpu': '2', 'memory': '4Gi'}}")
    unknown = sorted(set(flavor) - _FLAVOR_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed keys are cpu, memory")
    for key, quantity in flavor.items():
        if not isinstance(quantity, str) or not _QUANTITY.match(quantity):
            raise ValueError(
                f"{where}.{key}={quantity!r} is not a quantity; write it as a string such as "
                "'500m', '2' or '4Gi'"
            )


def _check_toleration(where: str, toleration: Any) -> None:
    if not isinstance(toleration, dict):
        raise ValueError(f"{where} must be an object like {{'key': ..., 'operator': 'Exists'}}")
    unknown = sorted(set(toleration) - _TOLERATION_KEYS)
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {unknown}; "
            f"allowed keys are {', '.join(sorted(_TOLERATION_KEYS))}"
        )
    operator = toleration.get("operator", "Equal")
    if operator not in ("Exists", "Equal"):
        raise ValueError(f"{where}.operator={operator!r}; use 'Exists' or 'Equal'")
    effect = toleration.get("effect")
    if effect not in (None, "NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ValueError(
            f"{where}.effect={effect!r}; use NoSchedule, PreferNoSchedule or NoExecute "
            "(or leave it out to tolerate every effect)"
        )
    for key in ("key", "value"):
        if key in toleration and not isinstance(toleration[key], str):
            raise ValueError(f"{where}.{key} must be a string")
    if operator == "Exists" and toleration.get("value"):
        raise ValueError(f"{where} has operator Exists and a value; drop the value")


def _port(name: str, environ: Mapping[str, str], default: int, *, allow_zero: bool) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    lowest = 0 if allow_zero else 1
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not lowest <= port <= 65535:
        off = "; 0 turns it off" if allow_zero else ""
        raise ValueError(
            f"{name}={raw!r} is not a port; set it to a number from {lowest} to 65535{off}"
        )
    return port


def _flag(name: str, environ: Mapping[str, str], default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; set it to 'true' or 'false'")


def _seconds(name: str, environ: Mapping[str, str], default: float, *, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    # NaN fails every comparison, so it lands here too.
    if not minimum <= seconds < math.inf:
        raise ValueError(
            f"{name}={raw!r} is not a duration; set it to a number of seconds, at least "
            f"{minimum:g} (default {default:g})"
        )
    return seconds


def _check_dns_label(name: str, value: str) -> None:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"{name}={value!r} is not a valid namespace name; use at most 63 lower-case "
            "letters, digits and '-', starting and ending with a letter or digit"
        )


def _check_dns_subdomain(name: str, value: str) -> None:
    if len(value) > 253 or not all(_DNS_LABEL.match(part) for part in value.split(".")):
        raise ValueError(
            f"{name}={value!r} is not a valid object name; use lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit"
        )
