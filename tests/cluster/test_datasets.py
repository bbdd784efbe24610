"""Datasets on the local cluster, with the operator running: data from http, s3 and a PVC
reaches Ready with seeded, stratified, reproducible versions; bad archives and unreachable
sources end in Ready=False with the worker's reason and nothing written outside the target;
published versions are immutable and keep their files whatever is ingested later into
the same folder; two Datasets never share a folder; the workspace claim outlives Datasets;
deletePolicy decides whether the files go, and a cleanup that cannot run still lets the
Dataset go.

Everything that takes a pod is created up front by module fixtures where it can, so the
pods of all cases run side by side and each test only waits for its own Dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kopf.testing import KopfRunner
from moto.server import ThreadedMotoServer

from clusterkit import Kube, wait_for
from datagen import (
    DIGITS_CLASSES,
    DIGITS_SAMPLES,
    image_bytes,
    tar_of,
    tar_of_members,
    tar_tree,
    write_digits,
    zip_of,
)

WORKSPACE = "kubearts-workspace"
#: Generous: pods of many cases share two cores, next to other test sessions.
READY_TIMEOUT = 150
#: Three cleanup attempts of the test operator's deadline (conftest, 15 s) and the grace
#: after each (kubearts.dataset_storage.ATTEMPT_GRACE_SECONDS), and slack.
CLEANUP_TIMEOUT = 3 * (15 + 15) + 60
PNG = image_bytes()
ESCAPE_MARK = f"escaped-{uuid.uuid4().hex[:8]}"


# --- data, servers and the namespace -----------------------------------------------------------


@pytest.fixture(scope="module")
def digits_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """scikit-learn's digits as ``<root>/digits/<class>/<n>.png``, and the count per class."""
    root = tmp_path_factory.mktemp("digits")
    counts = write_digits(root / "digits")
    return root, counts


@pytest.fixture(scope="module")
def archives(
    tmp_path_factory: pytest.TempPathFactory, digits_tree: tuple[Path, dict[str, int]]
) -> dict[str, Path]:
    """The archives the cases download, by name."""
    folder = tmp_path_factory.mktemp("served")
    small = tmp_path_factory.mktemp("small")
    write_digits(small / "digits", every=20)
    # Unpacked naively, these would land in the workspace claim's root (three levels up
    # from the worker's staging folder) and in the root of the pod's file system.
    escapes = {"../" * 3 + ESCAPE_MARK: b"escaped", "../" * 12 + ESCAPE_MARK: b"escaped"}
    link = tarfile.TarInfo("0/outside")
    link.type = tarfile.SYMTYPE
    # Inside the pod, this leads to the root of the workspace claim, outside the target.
    link.linkname = "../" * 8 + f"mnt/pvc/{WORKSPACE}"
    inside = tarfile.TarInfo(f"0/outside/{ESCAPE_MARK}")
    return {
        "digits": tar_tree(folder / "digits.tar.gz", digits_tree[0]),
        "small": tar_tree(folder / "small.tar.gz", small),
        "zip-slip": zip_of(folder / "zip-slip.zip", {"0/a.png": PNG, "1/b.png": PNG, **escapes}),
        "symlink": tar_of_members(
            folder / "symlink.tar.gz",
            [(tarfile.TarInfo("0/a.png"), PNG), (link, None), (inside, b"escaped")],
        ),
        "no-images": tar_of(
            folder / "no-images.tar.gz", {"0/readme.txt": b"not an image", "notes.md": b"#"}
        ),
        "other": tar_of(
            folder / "other.tar.gz",
            {
                f"{label}/{i}.png": image_bytes(color=i * 40 + ord(label))
                for label in "ab"
                for i in range(3)
            },
        ),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def http_base(kube: Kube, archives: dict[str, Path]) -> Iterator[str]:
    """An http server for the archives on the cluster bridge, where pods reach the host."""
    with kube.serve(next(iter(archives.values())).parent) as base:
        yield base


#: Credentials of the password-protected server: they must show up nowhere.
USER, PASSWORD = "reader", "pa55-w0rd-Zq"


@pytest.fixture(scope="module")
def auth_base(kube: Kube, archives: dict[str, Path]) -> Iterator[str]:
    """The archives again, behind HTTP basic auth; the base URL carries no credentials."""
    folder = next(iter(archives.values())).parent
    with kube.serve(folder, basic_auth=(USER, PASSWORD)) as base:
        yield base


@pytest.fixture(scope="module")
def s3_endpoint(kube: Kube, archives: dict[str, Path]) -> Iterator[str]:
    """moto's S3 server on the bridge with bucket ``data`` holding the digits archive."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=str(kube.layout.gateway), port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="data")
    client.upload_file(str(archives["digits"]), "data", "archives/digits.tar.gz")
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def ns(kube: Kube, kubearts_operator: KopfRunner) -> Iterator[str]:
    """One namespace for the module's Datasets (their pods run side by side)."""
    name = kube.create_namespace(f"t-datasets-{uuid.uuid4().hex[:5]}")
    yield name
    kube.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def gallery(kube: Kube, http_base: str, archives: dict[str, Path]) -> Iterator[str]:
    """A gallery of its own (a labelled ConfigMap in the operator namespace) offering the
    small digits archive as ``small-digits``; returns the gallery's name."""
    name = f"t-{uuid.uuid4().hex[:6]}"
    entry = {
        "displayName": "Digits (every 20th)",
        "task": "image-classification",
        "format": "ImageFolder",
        "source": {"uri": f"{http_base}/small.tar.gz", "sha256": _sha256(archives["small"])},
        "classes": [str(d) for d in range(10)],
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"gallery-{name}", "labels": {"kubearts.io/gallery": name}},
        "data": {"dataset.small-digits.yaml": json.dumps(entry)},
    }
    kube.apply(configmap, "kubearts-system")
    yield name
    kube.kubectl("delete", "configmap", f"gallery-{name}", "-n", "kubearts-system", check=False)


def dataset(name: str, source: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubearts.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {"source": source, **spec},
    }


V1 = {"name": "v1", "trainRatio": 0.8, "seed": 7}


@pytest.fixture(scope="module")
def created(
    kube: Kube,
    ns: str,
    http_base: str,
    auth_base: str,
    s3_endpoint: str,
    archives: dict[str, Path],
    gallery: str,
) -> dict[str, float]:
    """Every Dataset of the module, applied at once; their creation times (monotonic)."""
    # The pvc source: a claim whose bound volume (a host folder here) already holds digits.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "camera-data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        ns,
    )
    volume = claim_folder(kube, ns, "camera-data")
    tar_tree_into(archives["digits"], volume / "upload")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-credentials"},
            "stringData": {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_ENDPOINT_URL": s3_endpoint,
            },
        },
        ns,
    )
    unsplit = {"name": "all", "trainRatio": 1}
    objects = [
        dataset("digits", {"uri": f"{http_base}/digits.tar.gz"}, versions=[V1, unsplit]),
        dataset("digits-again", {"uri": f"{http_base}/digits.tar.gz"}, versions=[V1]),
        dataset(
            "digits-s3",
            {"uri": "s3://data/archives/digits.tar.gz", "secretRef": {"name": "s3-credentials"}},
            versions=[V1],
        ),
        dataset("digits-pvc", {"uri": "pvc://camera-data/upload"}, versions=[V1]),
        dataset(
            "wrong-sha256",
            {"uri": f"{http_base}/digits.tar.gz", "sha256": "0" * 64},
        ),
        dataset("zip-slip", {"uri": f"{http_base}/zip-slip.zip"}),
        dataset("symlink", {"uri": f"{http_base}/symlink.tar.gz"}),
        dataset("over-limit", {"uri": f"{http_base}/digits.tar.gz"}, limits={"maxBytes": 20000}),
        dataset("no-images", {"uri": f"{http_base}/no-images.tar.gz"}),
        dataset("unreachable", {"uri": f"http://{kube.layout.gateway}:9/digits.tar.gz"}),
        dataset("edit", {"uri": f"{http_base}/small.tar.gz"}, versions=[V1]),
        dataset("add", {"uri": f"{http_base}/small.tar.gz"}, versions=[V1]),
        dataset("from-gallery", {"uri": f"gallery://{gallery}/small-digits"}),
        dataset(
            "with-password",
            {"uri": auth_base.replace("://", f"://{USER}:{PASSWORD}@") + "/small.tar.gz"},
        ),
        dataset("retained", {"uri": f"{http_base}/small.tar.gz"}),
        dataset(
            "reused-first",
            {"uri": f"{http_base}/small.tar.gz"},
            storage={"uri": f"pvc://{WORKSPACE}/datasets/reused"},
            versions=[V1],
        ),
        dataset(
            "shared-first",
            {"uri": f"{http_base}/small.tar.gz"},
            storage={"uri": f"pvc://{WORKSPACE}/datasets/shared"},
        ),
        dataset(
            "deleted",
            {"uri": f"{http_base}/small.tar.gz", "sha256": _sha256(archives["small"])},
            storage={"deletePolicy": "Delete"},
        ),
    ]
    started: dict[str, float] = {}
    for obj in objects:
        kube.apply(obj, ns)
        started[obj["metadata"]["name"]] = time.monotonic()
    return started


def claim_folder(kube: Kube, namespace: str, claim: str) -> Path:
    """The host folder of the volume bound to ``claim`` (the local cluster's volumes are
    host paths)."""

    def bound() -> str | None:
        pvc = kube.get("pvc", claim, "-n", namespace)
        return pvc["spec"].get("volumeName") if pvc["status"].get("phase") == "Bound" else None

    volume = wait_for(bound, 60, f"claim {claim} to be bound")
    return Path(kube.get("pv", volume)["spec"]["hostPath"]["path"])


def tar_tree_into(archive: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)


def status_of(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return kube.get("dataset.kubearts.io", name, "-n", ns).get("status") or {}


def wait_ready(kube: Kube, ns: str, name: str, status: str = "True", **kw: Any) -> dict[str, Any]:
    return kube.wait_ready(
        "dataset.kubearts.io", name, ns, status=status, timeout=READY_TIMEOUT, **kw
    )


def version(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in status.get("versions", []) if v["name"] == name)


def round_half_up(n: int, ratio: float) -> int:
    return int(n * ratio + 0.5)


# --- sources ---------------------------------------------------------------------------------


def test_digits_over_http_reach_ready_with_every_image_and_class(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "digits", reason="Published")
    status = status_of(kube, ns, "digits")
    assert status["sampleCount"] == DIGITS_SAMPLES
    assert status["classCount"] == DIGITS_CLASSES
    assert status["classes"] == [str(d) for d in range(10)]
    assert status["digest"].startswith("sha256:")
    assert status["invalidFileCount"] == 0
    assert status["location"] == f"pvc://{WORKSPACE}/datasets/digits"
    assert status["phase"] == "Ready"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Downloaded": "True",
        "Verified": "True",
        "VersionsValid": "True",
        "Ready": "True",
    }


def test_a_ratio_of_1_publishes_an_unsplit_version(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "digits", reason="Published")
    unsplit = version(status_of(kube, ns, "digits"), "all")
    assert unsplit["split"] is False
    assert unsplit["trainRatio"] == 1
    assert (unsplit["trainCount"], unsplit["evalCount"]) == (DIGITS_SAMPLES, 0)
    assert set(unsplit["manifests"]) == {"train"}


def test_a_version_is_a_seeded_stratified_split_with_per_class_counts(
    kube: Kube, ns: str, created: dict[str, float], digits_tree: tuple[Path, dict[str, int]]
) -> None:
    counts = digits_tree[1]
    wait_ready(kube, ns, "digits", reason="Published")
    v1 = version(status_of(kube, ns, "digits"), "v1")
    expected = {
        label: {"train": round_half_up(n, 0.8), "eval": n - round_half_up(n, 0.8)}
        for label, n in counts.items()
    }
    assert v1["perClass"] == expected
    assert v1["trainCount"] == sum(c["train"] for c in expected.values())
    assert v1["evalCount"] == sum(c["eval"] for c in expected.values())
    assert (v1["trainRatio"], v1["seed"], v1["stratified"], v1["split"]) == (0.8, 7, True, True)
    assert v1["published"] is True
    assert v1["manifestDigest"].startswith("sha256:")


def test_version_manifests_are_stored_where_the_status_says(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "digits", reason="Published")
    v1 = version(status_of(kube, ns, "digits"), "v1")
    base = f"pvc://{WORKSPACE}/datasets/digits/"
    assert v1["manifests"] == {
        "train": base + ".kubearts/versions/v1/train.jsonl",
        "eval": base + ".kubearts/versions/v1/eval.jsonl",
    }
    volume = claim_folder(kube, ns, WORKSPACE)
    for usage, count in (("train", v1["trainCount"]), ("eval", v1["evalCount"])):
        path = volume / v1["manifests"][usage].removeprefix(f"pvc://{WORKSPACE}/")
        lines = path.read_text().splitlines()
        assert len(lines) == count
        assert json.loads(lines[0])["usage"] == usage.upper()


def test_the_same_data_seed_and_ratio_give_the_same_split(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    for name in ("digits", "digits-again"):
        wait_ready(kube, ns, name, reason="Published")
    first, second = (version(status_of(kube, ns, n), "v1") for n in ("digits", "digits-again"))
    assert second["manifestDigest"] == first["manifestDigest"]
    assert second["perClass"] == first["perClass"]


@pytest.mark.parametrize("name", ["digits-s3", "digits-pvc"], ids=["s3", "pvc"])
def test_the_same_images_from_another_source_give_the_same_data_set(
    kube: Kube, ns: str, created: dict[str, float], name: str
) -> None:
    wait_ready(kube, ns, "digits", reason="Published")
    wait_ready(kube, ns, name, reason="Published")
    reference, status = status_of(kube, ns, "digits"), status_of(kube, ns, name)
    assert (status["sampleCount"], status["classCount"]) == (DIGITS_SAMPLES, DIGITS_CLASSES)
    # The digest covers contents and labels, not the archive or wrapper folders.
    assert status["digest"] == reference["digest"]
    assert version(status, "v1")["manifestDigest"] == version(reference, "v1")["manifestDigest"]


def test_a_gallery_entry_is_resolved_and_ingested(
    kube: Kube, ns: str, created: dict[str, float], gallery: str, http_base: str
) -> None:
    ready = wait_ready(kube, ns, "from-gallery", reason="Ingested")
    assert "add spec.versions" in ready["message"]
    downloaded = kube.condition("dataset.kubearts.io", "from-gallery", "-n", ns, type="Downloaded")
    assert downloaded["message"].startswith(f"{http_base}/small.tar.gz")
    assert f"gallery entry {gallery}/small-digits" in downloaded["message"]
    assert status_of(kube, ns, "from-gallery")["classCount"] == DIGITS_CLASSES


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason", "stage"),
    [
        pytest.param("wrong-sha256", "ChecksumMismatch", "Downloaded", id="wrong-sha256"),
        pytest.param("zip-slip", "UnsafeArchive", "Verified", id="zip-slip"),
        pytest.param("symlink", "UnsafeArchive", "Verified", id="symlink-escape"),
        pytest.param("over-limit", "LimitExceeded", "Downloaded", id="over-size-limit"),
        pytest.param("no-images", "NoImagesFound", "Verified", id="no-images"),
    ],
)
def test_a_bad_archive_fails_with_its_reason_and_writes_nothing(
    kube: Kube, ns: str, created: dict[str, float], name: str, reason: str, stage: str
) -> None:
    ready = wait_ready(kube, ns, name, status="False", reason=reason)
    assert ready["message"]
    status = status_of(kube, ns, name)
    assert kube.condition("dataset.kubearts.io", name, "-n", ns, type=stage)["reason"] == reason
    assert status["phase"] == "Failed"
    assert "sampleCount" not in status
    target = claim_folder(kube, ns, WORKSPACE) / "datasets" / name
    assert not [p for p in target.rglob("*") if p.is_file()] if target.exists() else True
    escaped = [
        *kube.layout.volumes.rglob(f"*{ESCAPE_MARK}*"),
        *Path("/").glob(f"*{ESCAPE_MARK}*"),
        *Path("/mnt").rglob(f"*{ESCAPE_MARK}*"),
    ]
    assert escaped == []


def test_an_unreachable_url_is_retried_with_backoff_and_reported(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    ready = wait_ready(kube, ns, "unreachable", status="False", reason="DownloadFailed")
    url = f"http://{kube.layout.gateway}:9/digits.tar.gz"
    assert url in ready["message"]
    assert "after 5 attempts" in ready["message"]
    downloaded = kube.condition("dataset.kubearts.io", "unreachable", "-n", ns, type="Downloaded")
    assert (downloaded["status"], downloaded["reason"]) == ("False", "DownloadFailed")


def test_a_whole_claim_as_storage_is_an_invalid_spec(kube: Kube, ns: str) -> None:
    kube.apply(
        dataset(
            "whole-claim", {"uri": "http://example.invalid/a.tgz"}, storage={"uri": "pvc://data"}
        ),
        ns,
    )
    ready = wait_ready(kube, ns, "whole-claim", status="False", reason="InvalidSpec")
    assert ready["message"].startswith("spec.storage.uri:")
    assert "pvc://data/datasets/whole-claim" in ready["message"]


def test_a_missing_source_claim_is_waited_for(kube: Kube, ns: str) -> None:
    kube.apply(dataset("waits", {"uri": "pvc://not-there/images"}), ns)
    ready = wait_ready(kube, ns, "waits", status="False", reason="WaitingForDependency")
    assert "'not-there' does not exist" in ready["message"]
    assert status_of(kube, ns, "waits")["phase"] == "Pending"


# --- versions --------------------------------------------------------------------------------


def _patch(kube: Kube, ns: str, name: str, operations: list[dict[str, Any]]) -> None:
    kube.kubectl(
        "patch", "dataset.kubearts.io", name, "-n", ns, "--type=json", "-p", json.dumps(operations)
    )


def _observed(
    kube: Kube, ns: str, name: str, generation: int
) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        status = status_of(kube, ns, name)
        return status if status.get("observedGeneration") == generation else None

    return check


def test_editing_a_published_split_is_refused_and_the_version_kept(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "edit", reason="Published")
    before = version(status_of(kube, ns, "edit"), "v1")
    _patch(
        kube, ns, "edit", [{"op": "replace", "path": "/spec/versions/0/trainRatio", "value": 0.5}]
    )
    refused = kube.wait_condition(
        "dataset.kubearts.io",
        "edit",
        "-n",
        ns,
        type="VersionsValid",
        status="False",
        reason="VersionImmutable",
        timeout=60,
    )
    assert refused["message"].startswith("spec.versions[0] (v1): trainRatio 0.5")
    assert "new version" in refused["message"]
    status = wait_for(_observed(kube, ns, "edit", 2), 30, "generation 2 to be observed")
    assert version(status, "v1") == before
    ready = kube.condition("dataset.kubearts.io", "edit", "-n", ns, type="Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Published")


def test_adding_a_version_publishes_just_that_version(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "add", reason="Published")
    before = version(status_of(kube, ns, "add"), "v1")
    _patch(
        kube,
        ns,
        "add",
        [{"op": "add", "path": "/spec/versions/-", "value": {"name": "v2", "trainRatio": 0.5}}],
    )

    def published() -> dict[str, Any] | None:
        status = status_of(kube, ns, "add")
        names = [v["name"] for v in status.get("versions", [])]
        ready = kube.condition("dataset.kubearts.io", "add", "-n", ns, type="Ready") or {}
        done = status.get("observedGeneration") == 2 and ready.get("status") == "True"
        return status if done and names == ["v1", "v2"] else None

    status = wait_for(published, READY_TIMEOUT, "version v2 to be published")
    assert version(status, "v1") == before
    assert version(status, "v2")["trainRatio"] == 0.5
    jobs = kube.get("jobs", "-n", ns, "-l", "kubearts.io/dataset=add,kubearts.io/step=publish")
    assert sorted(j["metadata"]["labels"]["kubearts.io/version"] for j in jobs["items"]) == [
        "v1",
        "v2",
    ]


# --- storage ---------------------------------------------------------------------------------


def test_the_workspace_claim_is_created_without_an_owner(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "retained", reason="Ingested")
    claim = kube.get("pvc", WORKSPACE, "-n", ns)
    assert "ownerReferences" not in claim["metadata"]
    assert claim["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubearts"


def test_a_retained_data_set_has_no_finalizer_and_keeps_its_files(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "retained", reason="Ingested")
    wait_for(
        lambda: (
            not kube.get("dataset.kubearts.io", "retained", "-n", ns)["metadata"].get("finalizers")
        ),
        30,
        "the Retain Dataset to carry no finalizer",
    )
    kube.kubectl("delete", "dataset.kubearts.io", "retained", "-n", ns, "--timeout=60s")
    files = claim_folder(kube, ns, WORKSPACE) / "datasets" / "retained"
    assert (files / ".kubearts" / "ingest.json").is_file()
    assert kube.get("pvc", WORKSPACE, "-n", ns)["metadata"]["name"] == WORKSPACE


def test_delete_policy_delete_removes_the_files_with_the_data_set(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "deleted", reason="Ingested")
    files = claim_folder(kube, ns, WORKSPACE) / "datasets" / "deleted"
    assert (files / ".kubearts" / "ingest.json").is_file()
    kube.kubectl("delete", "dataset.kubearts.io", "deleted", "-n", ns, "--wait=false")
    wait_for(
        lambda: (
            kube.kubectl("get", "dataset.kubearts.io", "deleted", "-n", ns, check=False).returncode
            != 0
        ),
        90,
        "the Dataset to be gone",
    )
    assert not files.exists()
    assert kube.get("pvc", WORKSPACE, "-n", ns)["metadata"]["name"] == WORKSPACE


def _sources(folder: Path, entry: dict[str, Any]) -> dict[str, bytes]:
    """Every file a published version lists (its train and eval manifests), with its bytes;
    ``folder`` is the claim's volume."""
    files: dict[str, bytes] = {}
    for uri in entry["manifests"].values():
        manifest = folder / uri.removeprefix(f"pvc://{WORKSPACE}/")
        dataset_dir = folder / "datasets" / "reused"
        for line in manifest.read_text().splitlines():
            source = json.loads(line)["source"]
            files[source] = (dataset_dir / source).read_bytes()
    return files


def test_new_data_in_the_folder_leaves_a_published_versions_files_intact(
    kube: Kube, ns: str, created: dict[str, float], http_base: str
) -> None:
    """A Dataset deleted with its files retained, then another Dataset in the same folder
    with other data: the first one's published version still finds every file it lists."""
    wait_ready(kube, ns, "reused-first", reason="Published")
    volume = claim_folder(kube, ns, WORKSPACE)
    v1 = version(status_of(kube, ns, "reused-first"), "v1")
    assert v1["datasetDigest"] == status_of(kube, ns, "reused-first")["digest"]
    before = _sources(volume, v1)
    assert before
    kube.kubectl("delete", "dataset.kubearts.io", "reused-first", "-n", ns, "--timeout=60s")
    kube.apply(
        dataset(
            "reused-second",
            {"uri": f"{http_base}/other.tar.gz"},
            storage={"uri": f"pvc://{WORKSPACE}/datasets/reused"},
            versions=[{"name": "v2", "trainRatio": 0.5}],
        ),
        ns,
    )
    wait_ready(kube, ns, "reused-second", reason="Published")
    assert _sources(volume, v1) == before
    v2 = version(status_of(kube, ns, "reused-second"), "v2")
    after = _sources(volume, v2)
    assert len(after) == 6
    folders = {source.split("/")[1] for source in after}
    assert folders.isdisjoint(source.split("/")[1] for source in before)


def test_a_dataset_in_a_folder_another_one_uses_waits_with_storage_in_use(
    kube: Kube, ns: str, created: dict[str, float], http_base: str
) -> None:
    wait_for(
        lambda: status_of(kube, ns, "shared-first").get("location"),
        READY_TIMEOUT,
        "shared-first to store its data",
    )
    kube.apply(
        dataset(
            "shared-second",
            {"uri": f"{http_base}/other.tar.gz"},
            storage={"uri": f"pvc://{WORKSPACE}/datasets/shared/"},
        ),
        ns,
    )
    message = wait_ready(kube, ns, "shared-second", status="False", reason="StorageInUse")[
        "message"
    ]
    assert f"Dataset {ns}/shared-first" in message
    assert "a folder of its own" in message
    jobs = kube.get("jobs", "-n", ns, "-l", "kubearts.io/dataset=shared-second")["items"]
    assert jobs == []
    wait_ready(kube, ns, "shared-first", reason="Ingested")
    assert status_of(kube, ns, "shared-second").get("location") is None


def test_a_cleanup_that_cannot_run_still_lets_the_dataset_go_with_a_warning(
    kube: Kube, namespace: str, kubearts_operator: KopfRunner, http_base: str
) -> None:
    """No pod may start in the namespace (a quota of zero pods): every cleanup attempt runs
    out of its deadline, and the Dataset goes with a Warning naming the folder left."""
    kube.apply(
        dataset("doomed", {"uri": f"{http_base}/other.tar.gz"}, storage={"deletePolicy": "Delete"}),
        namespace,
    )
    wait_ready(kube, namespace, "doomed", reason="Ingested")
    files = claim_folder(kube, namespace, WORKSPACE) / "datasets" / "doomed"
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    kube.apply(quota, namespace)
    wait_for(
        lambda: kube.get("resourcequota", "no-pods", "-n", namespace).get("status", {}).get("hard"),
        60,
        "the quota to be in force",
    )
    kube.kubectl("delete", "dataset.kubearts.io", "doomed", "-n", namespace, "--wait=false")
    wait_for(
        lambda: (
            kube.kubectl(
                "get", "dataset.kubearts.io", "doomed", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        CLEANUP_TIMEOUT,
        "the Dataset to be gone",
    )
    events = kube.get("events", "-n", namespace, "--field-selector", "involvedObject.name=doomed")[
        "items"
    ]
    warnings = [e for e in events if e["type"] == "Warning" and e["reason"] == "CleanupFailed"]
    assert len(warnings) == 1, [(e["type"], e["reason"], e["message"]) for e in events]
    assert f"pvc://{WORKSPACE}/datasets/doomed" in warnings[0]["message"]
    assert "3 attempts" in warnings[0]["message"]
    assert (files / ".kubearts" / "ingest.json").is_file()  # left behind, as the event says


def test_deleting_a_dataset_during_its_first_ingest_removes_its_staging_data(
    kube: Kube, namespace: str, kubearts_operator: KopfRunner, http_base: str
) -> None:
    kube.apply(
        dataset(
            "interrupted", {"uri": f"{http_base}/digits.tar.gz"}, storage={"deletePolicy": "Delete"}
        ),
        namespace,
    )
    folder = claim_folder(kube, namespace, WORKSPACE) / "datasets" / "interrupted"
    staging = wait_for(
        lambda: next((folder / ".kubearts" / "staging").glob("interrupted-ingest-*"), None),
        READY_TIMEOUT,
        "the ingest Job's own staging folder",
        interval=0.05,
    )
    (job,) = kube.get("jobs", "-n", namespace, "-l", "kubearts.io/step=ingest")["items"]
    kube.kubectl("delete", "dataset.kubearts.io", "interrupted", "-n", namespace, "--wait=false")
    assert not (folder / ".kubearts" / "ingest.json").exists(), "the ingest finished first"
    assert staging.name == job["metadata"]["name"]
    wait_for(
        lambda: (
            kube.kubectl(
                "get", "dataset.kubearts.io", "interrupted", "-n", namespace, check=False
            ).returncode
            != 0
        ),
        CLEANUP_TIMEOUT,
        "the Dataset to be gone",
    )
    assert not folder.exists()


# --- credentials -------------------------------------------------------------------------------


def test_a_password_in_the_url_authenticates_and_shows_nowhere(
    kube: Kube, ns: str, created: dict[str, float]
) -> None:
    wait_ready(kube, ns, "with-password")
    status = status_of(kube, ns, "with-password")
    assert status["source"].startswith(f"http://{USER}:***@")
    printed = kube.kubectl("get", "kads", "with-password", "-n", ns).stdout
    seen = {
        "the printed columns": printed,
        "the status": json.dumps(status),
        "the events": kube.kubectl("get", "events", "-n", ns, "-o", "json").stdout,
        "the Jobs": kube.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout,
        "the pods": kube.kubectl("get", "pods", "-n", ns, "-o", "json").stdout,
    }
    for pod in kube.get("pods", "-n", ns, "-l", "kubearts.io/dataset=with-password")["items"]:
        name = pod["metadata"]["name"]
        seen[f"the log of {name}"] = kube.kubectl("logs", name, "-n", ns).stdout
    leaks = [where for where, text in seen.items() if PASSWORD in text]
    assert not leaks, f"the password appears in {leaks}"
    assert "***" in printed
