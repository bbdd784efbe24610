"""Hostile data on the local cluster: archives built to exhaust a worker's memory end in
Ready=False with their own reason while the worker stays inside its memory limit (the
local cluster enforces it as a kubelet does, so a worker that held the inflated bytes would
end OOMKilled instead); an image with too many pixels is listed as invalid, never decoded;
and a valid data set in the same namespace still becomes Ready. Every worker pod is sized
and runs on the CPU node, off the accelerator nodes.

Each bomb inflates to more than the dataset worker's default memory limit (2Gi).
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from PIL import Image

from clusterkit import Kube
from datagen import tar_of_zeros, tar_with_metadata_header, write_digits

#: More than the dataset worker's memory limit: held whole, any of these is an OOM kill.
BOMB_BYTES = 5 * 2**29  # 2.5 GiB
WORKER_MEMORY = "2Gi"
#: 81 megapixels, over the default cap of 64.
BOMB_SIDE = 9000
READY_TIMEOUT = 240


def _zip_of_zeros(path: Path, size: int, method: int) -> Path:
    """A zip with one member of ``size`` zero bytes, written as a stream."""
    chunk = bytes(2**24)
    with (
        zipfile.ZipFile(path, "w", method, compresslevel=1) as archive,
        archive.open("roses/zeros.png", "w", force_zip64=True) as member,
    ):
        for _ in range(size // len(chunk)):
            member.write(chunk)
    return path


@pytest.fixture(scope="module")
def served(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The hostile archives and a valid one, over http on the cluster bridge."""
    folder = tmp_path_factory.mktemp("hostile")
    tar_with_metadata_header(folder / "pax-header.tar.gz", BOMB_BYTES, compression="gz")
    _zip_of_zeros(folder / "bzip2-bomb.zip", BOMB_BYTES, zipfile.ZIP_BZIP2)
    tar_of_zeros(folder / "ratio-bomb.tar.gz", BOMB_BYTES, mode="w:gz")
    images = tmp_path_factory.mktemp("pixels")
    write_digits(images / "digits", every=20)
    Image.new("L", (BOMB_SIDE, BOMB_SIDE)).save(images / "digits" / "0" / "huge.png")
    with zipfile.ZipFile(folder / "pixel-bomb.zip", "w") as archive:
        for path in sorted(images.rglob("*.png")):
            archive.write(path, path.relative_to(images).as_posix())
    valid = tmp_path_factory.mktemp("valid")
    write_digits(valid / "digits", every=20)
    with zipfile.ZipFile(folder / "valid.zip", "w") as archive:
        for path in sorted(valid.rglob("*.png")):
            archive.write(path, path.relative_to(valid).as_posix())
    with kube.serve(folder) as base:
        yield base


@pytest.fixture(scope="module")
def ns(kube: Kube, kubearts_operator: KopfRunner, served: str) -> Iterator[str]:
    """One namespace with every case's Dataset, applied at once."""
    name = kube.create_namespace(f"t-hostile-{uuid.uuid4().hex[:5]}")
    for case in ("pax-header.tar.gz", "bzip2-bomb.zip", "ratio-bomb.tar.gz", "pixel-bomb.zip"):
        kube.apply(_dataset(case.split(".")[0], f"{served}/{case}"), name)
    kube.apply(_dataset("valid", f"{served}/valid.zip"), name)
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _dataset(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": {"uri": uri}, "versions": [{"name": "v1", "trainRatio": 0.8}]},
    }


def _worker_pods(kube: Kube, ns: str, dataset: str) -> list[dict[str, Any]]:
    pods = kube.get("pods", "-n", ns, "-l", f"kubearts.io/dataset={dataset}")["items"]
    assert pods, f"no worker pod of {dataset}"
    return list(pods)


def _assert_bounded_on_the_cpu_node(pod: dict[str, Any]) -> None:
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == WORKER_MEMORY
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["nodeName"] == "cpu-0"
    for status in pod["status"].get("containerStatuses") or []:
        terminated = status["state"].get("terminated") or {}
        assert terminated.get("reason") != "OOMKilled", terminated


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("pax-header", "header claims", id="oversized-pax-header"),
        pytest.param("bzip2-bomb", "inflates", id="bzip2-bomb"),
        pytest.param("ratio-bomb", "inflates", id="ratio-bomb"),
    ],
)
def test_a_hostile_archive_fails_with_its_reason_inside_the_memory_limit(
    kube: Kube, ns: str, name: str, message: str
) -> None:
    ready = kube.wait_ready(
        "dataset.kubearts.io",
        name,
        ns,
        status="False",
        reason="LimitExceeded",
        timeout=READY_TIMEOUT,
    )
    assert message in ready["message"]
    for pod in _worker_pods(kube, ns, name):
        _assert_bounded_on_the_cpu_node(pod)


def test_an_image_with_too_many_pixels_is_listed_not_decoded(kube: Kube, ns: str) -> None:
    kube.wait_ready("dataset.kubearts.io", "pixel-bomb", ns, timeout=READY_TIMEOUT)
    status = kube.get("dataset.kubearts.io", "pixel-bomb", "-n", ns)["status"]
    assert status["invalidFileCount"] == 1
    [invalid] = status["invalidFiles"]
    assert invalid["path"].endswith("digits/0/huge.png")
    assert "too many pixels" in invalid["reason"]
    for pod in _worker_pods(kube, ns, "pixel-bomb"):
        _assert_bounded_on_the_cpu_node(pod)


def test_a_valid_data_set_next_to_them_becomes_ready(kube: Kube, ns: str) -> None:
    kube.wait_ready("dataset.kubearts.io", "valid", ns, timeout=READY_TIMEOUT)
    status = kube.get("dataset.kubearts.io", "valid", "-n", ns)["status"]
    assert status["invalidFileCount"] == 0
    assert status["sampleCount"] > 0
