"""kubearts.storage, kubearts.dataset_spec and kubearts.builders.dataset_jobs: storage
URIs, the checked plan of a Dataset spec, and the Jobs and claim built from it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from kubearts.builders.dataset_jobs import (
    cleanup_job,
    ingest_job,
    publish_job,
    source_url_secret,
    workspace_claim,
)
from kubearts.builders.placement import build_placement
from kubearts.config import DEFAULT_POOLS, PoolConfig
from kubearts.dataset_spec import (
    DEFAULT_MAX_FILES,
    ResolvedSource,
    SpecError,
    gallery_reference,
    plan_dataset,
)
from kubearts.storage import (
    StorageLocation,
    StorageUriError,
    claim_mounts,
    claim_volumes,
    parse_storage_uri,
    s3_credentials_env,
    workspace_location,
)


def _load_pss() -> ModuleType:
    """tests/pss.py by path: tests/ is a folder of scripts, not a package."""
    path = Path(__file__).resolve().parents[1] / "pss.py"
    spec = importlib.util.spec_from_file_location("kubearts_pss_for_datasets", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pss = _load_pss()

OWNER = {"metadata": {"name": "flowers", "namespace": "ml", "uid": "uid-1"}}
IMAGE = "ghcr.io/kubearts/dataset:0.1.0"
DEADLINE = 3600
PLACEMENT = build_placement("cpu", 0, DEFAULT_POOLS)
#: What every Job builder takes besides the plan and the owner.
JOB: dict[str, Any] = {"image": IMAGE, "placement": PLACEMENT, "deadline_seconds": DEADLINE}


def plan(spec: dict[str, Any], **kwargs: Any) -> Any:
    return plan_dataset("flowers", "ml", spec, workspace_pvc="kubearts-workspace", **kwargs)


HTTP = {"source": {"uri": "https://data.example/flowers.tgz"}}


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


# --- storage URIs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("pvc://data/sets/flowers", StorageLocation("pvc", "data", "", "sets/flowers")),
        pytest.param("pvc://data", StorageLocation("pvc", "data"), id="whole-claim"),
        pytest.param("pvc://data//a/", StorageLocation("pvc", "data", "", "a"), id="slashes"),
        pytest.param("s3://bucket-1/p/q", StorageLocation("s3", "", "bucket-1", "p/q"), id="s3"),
        pytest.param(
            "pvc://data/%E7%8E%AB%E7%91%B0", StorageLocation("pvc", "data", "", "玫瑰"), id="utf8"
        ),
    ],
)
def test_storage_uris_parse_into_locations(uri: str, expected: StorageLocation) -> None:
    assert parse_storage_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("http://x/y", "write it as pvc://<claim>/<path> or s3://", id="scheme"),
        pytest.param("pvc://Data/x", "not a PersistentVolumeClaim name", id="claim-case"),
        pytest.param("pvc://data/../etc", "'.' or '..' segments", id="dotdot"),
        pytest.param("s3://b/x", "not a bucket name", id="short-bucket"),
        pytest.param("s3://bucket/x?versionId=1", r"no '\?' or '#'", id="query"),
    ],
)
def test_bad_storage_uris_say_what_to_write(uri: str, message: str) -> None:
    with pytest.raises(StorageUriError, match=message):
        parse_storage_uri(uri)


def test_locations_join_paths_and_map_claims_to_mount_points() -> None:
    location = workspace_location("kubearts-workspace", "datasets", "flowers")
    assert location.uri == "pvc://kubearts-workspace/datasets/flowers"
    assert location.local_path == "/mnt/pvc/kubearts-workspace/datasets/flowers"
    assert location.child_uri(".kubearts/versions/v1/train.jsonl") == (
        "pvc://kubearts-workspace/datasets/flowers/.kubearts/versions/v1/train.jsonl"
    )
    assert parse_storage_uri("s3://bucket/a").local_path is None


def test_a_claim_used_twice_is_mounted_once_and_writable_if_any_use_writes() -> None:
    claims = [("data", True), ("work.space", False), ("data", False)]
    assert claim_volumes(claims) == [
        {"name": "pvc-data", "persistentVolumeClaim": {"claimName": "data", "readOnly": False}},
        {
            "name": "pvc-work-space",
            "persistentVolumeClaim": {"claimName": "work.space", "readOnly": False},
        },
    ]
    assert [m["mountPath"] for m in claim_mounts(claims)] == [
        "/mnt/pvc/data",
        "/mnt/pvc/work.space",
    ]


def test_s3_credentials_come_from_secret_keys_endpoint_and_region_optional() -> None:
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in s3_credentials_env("creds")}
    assert env == {
        "AWS_ACCESS_KEY_ID": {"name": "creds", "key": "AWS_ACCESS_KEY_ID", "optional": False},
        "AWS_SECRET_ACCESS_KEY": {
            "name": "creds",
            "key": "AWS_SECRET_ACCESS_KEY",
            "optional": False,
        },
        "AWS_ENDPOINT_URL": {"name": "creds", "key": "AWS_ENDPOINT_URL", "optional": True},
        "AWS_REGION": {"name": "creds", "key": "AWS_REGION", "optional": True},
    }


# --- the plan --------------------------------------------------------------------------------


def test_a_minimal_spec_goes_to_the_workspace_with_default_limits() -> None:
    result = plan(HTTP)
    assert result.target.uri == "pvc://kubearts-workspace/datasets/flowers"
    assert result.uses_workspace is True
    # No byte limit: the worker takes a share of the free space it finds.
    assert (result.max_bytes, result.max_files) == (None, DEFAULT_MAX_FILES)
    assert result.delete_policy == "Retain"
    assert result.source == ResolvedSource("https://data.example/flowers.tgz")
    assert result.versions == ()


def test_versions_get_the_crd_defaults() -> None:
    result = plan({**HTTP, "versions": [{"name": "v1", "trainRatio": 0.8}]})
    version = result.versions[0]
    assert (version.name, version.train_ratio, version.seed, version.stratified) == (
        "v1",
        0.8,
        0,
        True,
    )
    assert version.field == "spec.versions[0]"


@pytest.mark.parametrize(
    ("spec", "field", "fix"),
    [
        pytest.param({}, "spec.source.uri", "set it", id="no-source"),
        pytest.param(
            {"source": {"uri": "ftp://x/y"}}, "spec.source.uri", "use http(s)://", id="scheme"
        ),
        pytest.param(
            {"source": {"uri": "https://x/folder/"}},
            "spec.source.uri",
            "point at an archive",
            id="http-folder",
        ),
        pytest.param(
            {"source": {"uri": "pvc://Bad/x"}}, "spec.source.uri", "fix the URI", id="pvc-claim"
        ),
        pytest.param(
            {**HTTP, "storage": {"uri": "pvc://data"}},
            "spec.storage.uri",
            "pvc://data/datasets/flowers",
            id="whole-claim",
        ),
        pytest.param(
            {**HTTP, "versions": [{"name": "v1", "trainRatio": 0}]},
            "spec.versions[0].trainRatio",
            "or 1 for an unsplit version",
            id="ratio-zero",
        ),
        pytest.param(
            {
                **HTTP,
                "versions": [{"name": "v1", "trainRatio": 0.8}, {"name": "v1", "trainRatio": 0.5}],
            },
            "spec.versions[1].name",
            "its own name",
            id="duplicate-version",
        ),
        pytest.param(
            {"source": {"uri": "pvc://camera/raw", "secretRef": {"name": "s"}}},
            "spec.source.secretRef",
            "remove it",
            id="pvc-source-secret",
        ),
        pytest.param(
            {**HTTP, "storage": {"uri": "pvc://data/x", "secretRef": {"name": "s"}}},
            "spec.storage.secretRef",
            "s3://<bucket>/<prefix>",
            id="pvc-storage-secret",
        ),
        pytest.param(
            {
                "source": {"uri": "s3://in-bucket/a.tgz", "secretRef": {"name": "a"}},
                "storage": {"uri": "s3://out-bucket/x", "secretRef": {"name": "b"}},
            },
            "spec.storage.secretRef",
            "one Secret",
            id="two-s3-secrets",
        ),
        pytest.param(
            {**HTTP, "limits": {"maxBytes": 0}}, "spec.limits.maxBytes", "1000000", id="limit"
        ),
    ],
)
def test_an_invalid_spec_names_the_field_and_the_fix(
    spec: dict[str, Any], field: str, fix: str
) -> None:
    with pytest.raises(SpecError) as error:
        plan(spec)
    assert error.value.field == field
    assert fix in str(error.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("gallery://flowers", ("default", "flowers"), id="default-gallery"),
        pytest.param("gallery://team/flowers", ("team", "flowers"), id="named-gallery"),
        pytest.param("https://x/y.tgz", None, id="not-gallery"),
    ],
)
def test_gallery_references(uri: str, expected: tuple[str, str] | None) -> None:
    assert gallery_reference(uri) == expected


def test_a_gallery_source_uses_the_entry_but_the_specs_checksum_wins() -> None:
    entry = ResolvedSource("https://x/flowers.tgz", "a" * 64, "ImageFolder", "default/flowers")
    resolved = plan({"source": {"uri": "gallery://flowers"}}, source=entry).source
    assert resolved == entry
    pinned = plan({"source": {"uri": "gallery://flowers", "sha256": "b" * 64}}, source=entry)
    assert pinned.source.sha256 == "b" * 64


# --- Jobs ------------------------------------------------------------------------------------


def test_the_ingest_job_runs_the_worker_with_the_plan() -> None:
    sha = "c" * 64
    job = ingest_job(
        plan({"source": {"uri": "https://x/a.tgz", "sha256": sha}, "limits": {"maxBytes": 1000}}),
        OWNER,
        image=IMAGE,
        placement=PLACEMENT,
        deadline_seconds=DEADLINE,
    )
    main = container(job)
    args = main["args"]
    assert args[0] == "ingest"
    assert "command" not in main  # the image's entrypoint: python -m kubearts_dataset
    assert arg(args, "--source") == "https://x/a.tgz"
    assert arg(args, "--target") == "pvc://kubearts-workspace/datasets/flowers"
    assert arg(args, "--sha256") == sha
    assert arg(args, "--max-bytes") == "1000"
    assert arg(args, "--pvc-root") == "/mnt/pvc"
    assert arg(args, "--result") == main["terminationMessagePath"] == "/dev/termination-log"
    assert main["image"] == IMAGE
    # Each ingest Job stages in a folder of its own, named after it.
    assert arg(args, "--staging-id") == job["metadata"]["name"]


def test_dataset_jobs_are_owned_labelled_and_not_retried() -> None:
    job = ingest_job(plan(HTTP), OWNER, **JOB)
    metadata = job["metadata"]
    assert metadata["namespace"] == "ml"
    assert metadata["name"].startswith("flowers-ingest-")
    assert metadata["ownerReferences"][0]["uid"] == "uid-1"
    assert metadata["labels"]["kubearts.io/dataset"] == "flowers"
    assert metadata["labels"]["kubearts.io/step"] == "ingest"
    assert job["spec"]["template"]["metadata"]["labels"] == metadata["labels"]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == DEADLINE
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_job_names_follow_what_the_job_does() -> None:
    base = plan(HTTP)
    same = plan(dict(HTTP))
    other_limit = plan({**HTTP, "limits": {"maxFiles": 10}})
    other_source = plan({"source": {"uri": "https://x/b.tgz"}})
    assert same.ingest_job_name == base.ingest_job_name
    # A new limit runs again for the same data; a new source is other data.
    assert other_limit.ingest_job_name != base.ingest_job_name
    assert other_limit.data_key == base.data_key
    assert other_source.data_key != base.data_key


def test_a_pvc_source_is_mounted_read_only_next_to_the_writable_target() -> None:
    job = ingest_job(plan({"source": {"uri": "pvc://camera/raw"}}), OWNER, **JOB)
    pod = job["spec"]["template"]["spec"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims["camera"]["persistentVolumeClaim"]["readOnly"] is True
    assert claims["kubearts-workspace"]["persistentVolumeClaim"]["readOnly"] is False
    mounts = {m["mountPath"]: m["readOnly"] for m in container(job)["volumeMounts"]}
    assert mounts == {"/tmp": False, "/mnt/pvc/camera": True, "/mnt/pvc/kubearts-workspace": False}
    # The scratch space holds the download: bounded by the workspace's size by default.
    assert {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}} in pod["volumes"]


def test_an_s3_source_gets_the_secrets_credentials() -> None:
    spec = {"source": {"uri": "s3://data/a.tgz", "secretRef": {"name": "creds"}}}
    env = container(ingest_job(plan(spec), OWNER, **JOB))["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs == dict.fromkeys(
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"], "creds"
    )


def _secret_env(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The container's variables that come from Secrets, with their key selectors."""
    env = container(job)["env"]
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}


def test_an_http_sources_secret_becomes_the_authorization_header_of_the_download() -> None:
    spec = {
        "source": {"uri": "https://data.example/private.tgz", "secretRef": {"name": "token"}},
        "versions": [{"name": "v1", "trainRatio": 0.8}],
    }
    result = plan(spec)
    assert _secret_env(ingest_job(result, OWNER, **JOB)) == {
        "KUBEARTS_HTTP_AUTHORIZATION": {"name": "token", "key": "Authorization", "optional": False}
    }
    # Publishing and removing never reach the source: they do not depend on its Secret.
    publish = publish_job(result, result.versions[0], OWNER, **JOB)
    assert _secret_env(publish) == {}
    assert _secret_env(cleanup_job(result, OWNER, **JOB)) == {}


def test_an_http_source_and_an_s3_target_each_use_their_own_secret() -> None:
    spec = {
        "source": {"uri": "https://data.example/private.tgz", "secretRef": {"name": "token"}},
        "storage": {"uri": "s3://bucket/flowers", "secretRef": {"name": "s3-creds"}},
    }
    env = _secret_env(ingest_job(plan(spec), OWNER, **JOB))
    assert env.pop("KUBEARTS_HTTP_AUTHORIZATION")["name"] == "token"
    assert {selector["name"] for selector in env.values()} == {"s3-creds"}
    assert set(env) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
    }


def test_dataset_pods_run_in_the_cpu_pool() -> None:
    pools = {
        "cpu": PoolConfig(
            "cpu",
            None,
            {"kubearts.io/pool": "cpu"},
            flavors={"s": {"cpu": "1", "memory": "1Gi"}},
            default_flavor="s",
        )
    }
    placement = build_placement("cpu", 0, pools)
    job = ingest_job(plan(HTTP), OWNER, image=IMAGE, placement=placement, deadline_seconds=DEADLINE)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubearts.io/pool": "cpu"}
    assert container(job)["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }


@pytest.mark.parametrize(
    ("ratio", "stratified", "expected"),
    [
        pytest.param(
            0.8, True, ["--train-ratio", "0.8", "--seed", "3", "--stratified"], id="split"
        ),
        pytest.param(
            1, False, ["--train-ratio", "1.0", "--seed", "3", "--no-stratified"], id="all"
        ),
    ],
)
def test_the_publish_job_publishes_one_version(
    ratio: float, stratified: bool, expected: list[str]
) -> None:
    spec = {
        **HTTP,
        "versions": [{"name": "v1.2", "trainRatio": ratio, "seed": 3, "stratified": stratified}],
    }
    result = plan(spec)
    job = publish_job(result, result.versions[0], OWNER, **JOB)
    args = container(job)["args"]
    assert args[:5] == ["publish", "--dataset", result.target.uri, "--version", "v1.2"]
    assert args[5:10] == expected
    assert job["metadata"]["labels"]["kubearts.io/version"] == "v1.2"
    assert job["metadata"]["name"].startswith("flowers-publish-v1-2-")


def test_a_changed_split_is_another_publish_job() -> None:
    first = plan({**HTTP, "versions": [{"name": "v1", "trainRatio": 0.8}]})
    second = plan({**HTTP, "versions": [{"name": "v1", "trainRatio": 0.7}]})
    assert first.publish_job_name(first.versions[0]) != second.publish_job_name(second.versions[0])


@pytest.mark.parametrize(
    ("storage", "claims"),
    [
        pytest.param({}, {"/mnt/pvc/kubearts-workspace": False}, id="workspace"),
        pytest.param({"uri": "s3://bucket/datasets/flowers"}, {}, id="s3"),
    ],
)
def test_the_cleanup_job_runs_the_workers_remove_on_the_target(
    storage: dict[str, str], claims: dict[str, bool]
) -> None:
    result = plan({**HTTP, "storage": {**storage, "deletePolicy": "Delete"}})
    job = cleanup_job(result, OWNER, **{**JOB, "deadline_seconds": 120}, attempt=2)
    main = container(job)
    assert "command" not in main  # the image's entrypoint: python -m kubearts_dataset
    # The worker refuses a target without .kubearts/ingest.json: foreign data stays.
    assert main["args"][:3] == ["remove", "--dataset", result.target.uri]
    assert arg(main["args"], "--pvc-root") == "/mnt/pvc"
    assert arg(main["args"], "--result") == main["terminationMessagePath"]
    mounts = {m["mountPath"]: m["readOnly"] for m in main["volumeMounts"]}
    assert mounts == {"/tmp": False, **claims}
    # One Job per attempt, each with the short deadline it was given.
    assert job["metadata"]["name"] == "flowers-cleanup-2"
    assert job["spec"]["activeDeadlineSeconds"] == 120


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda p: ingest_job(p, OWNER, **JOB), id="ingest"),
        pytest.param(
            lambda p: publish_job(p, p.versions[0], OWNER, **JOB),
            id="publish",
        ),
        pytest.param(lambda p: cleanup_job(p, OWNER, **JOB), id="cleanup"),
    ],
)
def test_dataset_pods_meet_the_restricted_pod_security_standard(build: Any) -> None:
    spec = {
        "source": {"uri": "pvc://camera/raw"},
        "versions": [{"name": "v1", "trainRatio": 0.8}],
    }
    pod = pss.pod_spec_of(build(plan(spec)))
    assert pss.restricted_violations(pod) == []
    assert pod["automountServiceAccountToken"] is False


def test_the_workspace_claim_has_no_owner_and_uses_the_default_storage_class() -> None:
    claim = workspace_claim("ml", "kubearts-workspace", "50Gi")
    assert claim["metadata"] == {
        "name": "kubearts-workspace",
        "namespace": "ml",
        "labels": {"app.kubernetes.io/managed-by": "kubearts"},
    }
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "50Gi"}}


def test_without_a_byte_limit_the_worker_gets_none_and_sizes_it_from_free_space() -> None:
    job = ingest_job(plan(HTTP), OWNER, **JOB)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "--max-bytes" not in container["args"]


def test_a_source_url_with_credentials_reaches_the_worker_only_through_a_secret() -> None:
    secret_url = "http://user:pa55@data.example:8080/flowers.tgz?sig=abc"
    result = plan({"source": {"uri": secret_url}})
    job = ingest_job(result, OWNER, **JOB)
    text = json.dumps(job)
    assert "pa55" not in text
    assert "sig=abc" not in text
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBEARTS_SOURCE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": result.source_url_secret,
        "key": "url",
        "optional": False,
    }
    secret = source_url_secret(result, OWNER)
    assert secret["stringData"] == {"url": secret_url}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == OWNER["metadata"]["uid"]
    assert result.source.shown == "http://user:***@data.example:8080/flowers.tgz?sig=***"
