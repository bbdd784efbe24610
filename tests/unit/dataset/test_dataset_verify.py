"""Specification of image verification: what counts as a usable image."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from datagen import image_bytes, noisy_jpeg
from kubearts_dataset.verify import DEFAULT_MAX_PIXELS, check_file, check_files, cpu_budget


def _png_with_broken_data_crc() -> bytes:
    # Pixel data still inflates, so only the CRC check of verify() notices.
    data = bytearray(image_bytes("PNG"))
    data[-13] ^= 0xFF  # last byte of the IDAT chunk's CRC (IEND is the final 12 bytes)
    return bytes(data)


def _png_with_broken_header_crc() -> bytes:
    data = bytearray(image_bytes("PNG"))
    data[30] ^= 0xFF  # inside the IHDR chunk's CRC
    return bytes(data)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(noisy_jpeg()[: len(noisy_jpeg()) // 2], "truncated", id="truncated-jpeg"),
        pytest.param(image_bytes("PNG")[:-30], "corrupt image", id="truncated-png"),
        pytest.param(_png_with_broken_data_crc(), "corrupt image", id="png-data-crc-broken"),
        pytest.param(_png_with_broken_header_crc(), "corrupt image", id="png-header-crc-broken"),
        pytest.param(b"just some text\n", "not an image", id="text-file"),
        pytest.param(b"", "empty file", id="empty-file"),
        pytest.param(image_bytes("TIFF"), "unsupported image format TIFF", id="tiff"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "sample"
    path.write_bytes(content)
    check = check_file(path)
    assert check.error is not None
    assert fragment in check.error
    assert check.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP"])
def test_supported_images_pass(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"ok.{fmt.lower()}"
    path.write_bytes(image_bytes(fmt))
    check = check_file(path)
    assert (check.error, check.format) == (None, fmt)
    assert check.size == path.stat().st_size


@pytest.mark.parametrize(
    "count", [pytest.param(40, id="in-process"), pytest.param(600, id="worker-processes")]
)
def test_check_files_keeps_the_input_order(tmp_path: Path, count: int) -> None:
    paths = []
    for index in range(count):
        path = tmp_path / f"{index}.png"
        path.write_bytes(image_bytes(color=index % 256) if index % 3 else b"broken")
        paths.append(path)
    results = check_files(paths, workers=2)
    assert [r.error is None for r in results] == [bool(i % 3) for i in range(count)]


# -- pixel bombs ------------------------------------------------------------------------------


def test_images_over_the_default_pixel_limit_are_listed_not_decoded(tmp_path: Path) -> None:
    # 65.6 Mpx: over the 64 Mpx default, under Pillow's own 89 Mpx.
    side = 8100
    assert side * side > DEFAULT_MAX_PIXELS
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)
    check = check_file(path)
    assert check.error is not None
    assert "too many pixels" in check.error


def test_the_pixel_limit_holds_in_worker_processes_too(tmp_path: Path) -> None:
    paths = []
    for index in range(500):
        path = tmp_path / f"{index}.png"
        path.write_bytes(image_bytes(size=(16, 16) if index % 2 else (8, 8)))
        paths.append(path)
    results = check_files(paths, workers=2, max_pixels=100)
    assert [r.error is None for r in results] == [not i % 2 for i in range(500)]
    assert all("too many pixels" in (r.error or "") for r in results[1::2])


# -- CPU budget -------------------------------------------------------------------------------


def _cgroup(tmp_path: Path, files: dict[str, str], proc: str = "") -> dict[str, Path]:
    root = tmp_path / "sys-fs-cgroup"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    root.mkdir(exist_ok=True)
    proc_cgroup = tmp_path / "proc-self-cgroup"
    proc_cgroup.write_text(proc)
    return {"cgroup_root": root, "proc_cgroup": proc_cgroup}


@pytest.mark.parametrize(
    ("files", "proc", "budget"),
    [
        pytest.param({"cpu.max": "150000 100000\n"}, "0::/\n", 2, id="v2-1.5-cpus"),
        pytest.param({"cpu.max": "max 100000\n"}, "0::/\n", 8, id="v2-unlimited"),
        pytest.param({"cpu.max": "20000 100000\n"}, "0::/\n", 1, id="v2-fraction-of-one"),
        pytest.param({"cpu.max": "6400000 100000\n"}, "0::/\n", 8, id="v2-more-than-cpus"),
        pytest.param(
            {"kubepods/pod1/c1/cpu.max": "300000 100000\n", "cpu.max": "max 100000\n"},
            "0::/kubepods/pod1/c1\n",
            3,
            id="v2-own-cgroup-first",
        ),
        pytest.param(
            {
                "cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            "",
            2,
            id="v1-root",
        ),
        pytest.param(
            {
                "cpu/kubepods/pod1/cpu.cfs_quota_us": "50000\n",
                "cpu/kubepods/pod1/cpu.cfs_period_us": "100000\n",
                "cpu/cpu.cfs_quota_us": "-1\n",
                "cpu/cpu.cfs_period_us": "100000\n",
            },
            "12:cpu,cpuacct:/kubepods/pod1\n4:memory:/kubepods/pod1\n",
            1,
            id="v1-own-cgroup",
        ),
        pytest.param(
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            "",
            8,
            id="v1-unlimited",
        ),
        pytest.param({}, "", 8, id="no-cgroup-files"),
        pytest.param({"cpu.max": "garbage\n"}, "", 8, id="unreadable-value"),
    ],
)
def test_the_cpu_budget_follows_the_cgroup_quota(
    tmp_path: Path, files: dict[str, str], proc: str, budget: int
) -> None:
    assert cpu_budget(cpus=8, **_cgroup(tmp_path, files, proc)) == budget


def test_the_cpu_budget_without_cgroups_is_the_usable_cpus(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert cpu_budget(cgroup_root=missing, proc_cgroup=missing) >= 1
