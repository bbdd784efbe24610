"""Node placement for a resource pool: resources, node selector, tolerations and affinity.

One pure function maps ``spec.resources`` (pool, accelerator count, extra selectors and
tolerations, flavor) onto the parts of a pod spec that decide where the pod runs and how
much it may use, from the pool table in the operator configuration (``KUBEARTS_POOLS``,
the chart's ``pools`` value); :func:`place_pod` writes them into a pod spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from kubearts.config import Flavor, PoolConfig, Toleration

__all__ = ["Placement", "ResourceRequirements", "build_placement", "place_pod"]


class ResourceRequirements(TypedDict):
    """A container's ``resources``: extended resources must have requests equal to limits."""

    requests: dict[str, str]
    limits: dict[str, str]


class Placement(TypedDict):
    """Where a pod runs: ``resources`` goes on the container doing the work, the rest on
    the pod spec (:func:`place_pod`)."""

    resources: ResourceRequirements
    nodeSelector: dict[str, str]
    tolerations: list[Toleration]
    affinity: dict[str, Any]


def build_placement(
    pool_name: str,
    count: int,
    pools: Mapping[str, PoolConfig],
    extra_node_selector: Mapping[str, str] | None = None,
    extra_tolerations: Iterable[Toleration] | None = None,
    flavor: str | None = None,
    *,
    size: Flavor | None = None,
    field: str = "spec.resources",
) -> Placement:
    """Build the placement of a pod in pool ``pool_name`` using ``count`` accelerators.

    - A pool with an accelerator (``resource_name``) requests and limits ``count`` of it;
      Kubernetes requires both to be equal for extended resources. ``count`` must be >= 1.
    - A pool without an accelerator (cpu) requests nothing extra and ignores ``count``:
      there is no device to count.
    - ``extra_node_selector`` is merged into the pool's selector; it may repeat a pool
      label with the same value but not contradict it (the pod could never be scheduled).
    - ``extra_tolerations`` are appended after the pool's, without duplicates.
    - ``flavor`` (or else the pool's default flavor) adds that size's CPU and memory
      requests; memory is also the limit, so a pod that outgrows its size is stopped
      rather than starving its neighbours. Without either, nothing more is requested.
    - ``size`` replaces the flavor with an explicit size: the operator's own workers are
      sized by the operator's configuration, not by a user's choice.
    - A pool without an accelerator that avoids accelerator nodes (the default) gets a
      required node affinity against every accelerator pool's node selector.

    ``field`` is the spec path the arguments come from, used in error messages so they
    name what the user has to fix. Raises ValueError on an unknown pool or flavor, a bad count
    or a contradicting selector.
    """
    pool = pools.get(pool_name)
    if pool is None:
        allowed = ", ".join(sorted(pools)) or "(none configured)"
        raise ValueError(f"{field}.pool: unknown pool {pool_name!r}; allowed values are {allowed}")

    quantities: dict[str, str] = {}
    if pool.resource_name is not None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(
                f"{field}.count: pool {pool_name!r} needs a whole number of "
                f"{pool.resource_name} devices >= 1, got {count!r}"
            )
        quantities[pool.resource_name] = str(count)

    size = size if size is not None else _flavor(pool, flavor, field)
    requests, limits = dict(quantities), dict(quantities)
    if size is not None:
        if "cpu" in size:
            requests["cpu"] = size["cpu"]
        if "memory" in size:
            requests["memory"] = limits["memory"] = size["memory"]

    node_selector = dict(pool.node_selector)
    for key, value in (extra_node_selector or {}).items():
        if key in node_selector and node_selector[key] != value:
            raise ValueError(
                f"{field}.nodeSelector: {key}={value!r} contradicts pool {pool_name!r}, "
                f"whose nodes have {key}={node_selector[key]!r}; drop it or choose another pool"
            )
        node_selector[key] = value

    tolerations: list[Toleration] = []
    for toleration in (*pool.tolerations, *(extra_tolerations or ())):
        copy: Toleration = {**toleration}
        if copy not in tolerations:
            tolerations.append(copy)

    return {
        "resources": {"requests": requests, "limits": limits},
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "affinity": _away_from_accelerators(pool, pools),
    }


def _flavor(pool: PoolConfig, flavor: str | None, field: str) -> Flavor | None:
    """The size of ``flavor``, else of the pool's default flavor; None when neither is set."""
    chosen = flavor or pool.default_flavor
    if chosen is None:
        return None
    size = pool.flavors.get(chosen)
    if size is None:
        allowed = ", ".join(sorted(pool.flavors))
        fix = (
            f"allowed values are {allowed}"
            if allowed
            else ("this pool has no flavors configured; leave it out")
        )
        raise ValueError(f"{field}.flavor: unknown flavor {chosen!r} of pool {pool.name!r}; {fix}")
    return size


def _away_from_accelerators(pool: PoolConfig, pools: Mapping[str, PoolConfig]) -> dict[str, Any]:
    """A required node affinity keeping a CPU pool's pods off every accelerator pool's
    nodes (``NotIn`` also matches nodes without the label); empty when it does not apply."""
    if pool.resource_name is not None or not pool.avoid_accelerator_nodes:
        return {}
    excluded: dict[str, list[str]] = {}
    for other in pools.values():
        if other.resource_name is None:
            continue
        for key, value in other.node_selector.items():
            values = excluded.setdefault(key, [])
            if value not in values:
                values.append(value)
    if not excluded:
        return {}
    expressions = [
        {"key": key, "operator": "NotIn", "values": values}
        for key, values in sorted(excluded.items())
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def place_pod(pod_spec: dict[str, Any], placement: Placement) -> None:
    """Write the pod-level parts of ``placement`` (selector, tolerations, affinity) into
    ``pod_spec``, leaving out the empty ones."""
    if placement["nodeSelector"]:
        pod_spec["nodeSelector"] = placement["nodeSelector"]
    if placement["tolerations"]:
        pod_spec["tolerations"] = placement["tolerations"]
    if placement["affinity"]:
        pod_spec["affinity"] = placement["affinity"]
