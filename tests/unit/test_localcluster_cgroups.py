"""Container limits become the cgroup values a kubelet and runc would write."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from localcluster.cgroups import CFS_PERIOD_US, ContainerCgroup, Hierarchy, Limits, parse_quantity


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        pytest.param("50Mi", 50 * 2**20, id="binary-suffix"),
        pytest.param("1G", 10**9, id="decimal-suffix"),
        pytest.param("200m", Decimal("0.2"), id="milli"),
        pytest.param("1.5", Decimal("1.5"), id="fraction"),
        pytest.param(2, 2, id="integer"),
        pytest.param("1e3", 1000, id="exponent"),
    ],
)
def test_quantities_parse_like_kubernetes(quantity: str | int, value: Decimal | int) -> None:
    assert parse_quantity(quantity) == value


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(
            {"limits": {"memory": "50Mi", "cpu": "200m"}},
            Limits(memory_bytes=50 * 2**20, cpu_quota_us=20_000),
            id="both",
        ),
        pytest.param({"limits": {"cpu": 2}}, Limits(cpu_quota_us=2 * CFS_PERIOD_US), id="cores"),
        pytest.param({"limits": {"cpu": "1m"}}, Limits(cpu_quota_us=1_000), id="minimum-quota"),
        pytest.param({"requests": {"memory": "1Gi", "cpu": "1"}}, Limits(), id="requests-only"),
        pytest.param(None, Limits(), id="none"),
    ],
)
def test_limits_from_resources(resources: dict[str, Any] | None, expected: Limits) -> None:
    assert Limits.from_resources(resources) == expected


@pytest.mark.parametrize(
    ("version", "file"), [(1, "memory.max_usage_in_bytes"), (2, "memory.peak")], ids=["v1", "v2"]
)
def test_peak_memory_is_read_from_the_kernel_counter(
    tmp_path: Path, version: int, file: str
) -> None:
    hierarchy = Hierarchy(version, tmp_path / "memory", tmp_path / "cpu")
    cgroup = ContainerCgroup(hierarchy, "uid", "main")
    folder = tmp_path / "memory" / "poduid" / "main"
    assert cgroup.peak_memory() is None  # no cgroup, or a kernel that does not count
    folder.mkdir(parents=True)
    (folder / file).write_text("123456789\n")
    assert cgroup.peak_memory() == 123456789
