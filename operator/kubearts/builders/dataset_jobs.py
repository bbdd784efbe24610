"""Pure builders for Datasets: a checked plan (:mod:`kubearts.dataset_spec`) into manifests.

A Dataset becomes Jobs running the dataset worker image (``images/dataset``, ``python -m
kubearts_dataset``), each with one container whose result is its termination message:

- one **ingest** Job (``<dataset>-ingest-<run key>``): download, unpack safely, verify every
  image and install the data in the dataset directory;
- after it succeeded, one **publish** Job per version (``<dataset>-publish-<version>-<key>``):
  write the version's immutable train/eval manifests. Versions are separate Jobs so that
  adding a version to a Dataset publishes just that version, and a failure names it;
- on deletion with ``deletePolicy: Delete``, **cleanup** Jobs removing the directory
  (``remove``), one per attempt (``<dataset>-cleanup-<n>``), each with a short deadline of
  its own.

The default storage is the namespace's workspace claim (:func:`workspace_claim`), at
``datasets/<name>``. It has no owner: it outlives every Dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kubearts.builders.jobs import RESULT_PATH, SCRATCH_PATH, JobLimits, worker_job
from kubearts.builders.meta import child_labels, owner_reference
from kubearts.builders.placement import Placement
from kubearts.constants import (
    DATA_KEY_LABEL,
    DATASET,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    STEP_LABEL,
    VERSION_LABEL,
)
from kubearts.dataset_spec import (
    STEP_CLEANUP,
    STEP_INGEST,
    STEP_PUBLISH,
    DatasetPlan,
    VersionPlan,
)
from kubearts.storage import (
    PVC_ROOT,
    EnvVar,
    SecretKeySelector,
    claim_mounts,
    claim_volumes,
    http_authorization_env,
    s3_credentials_env,
)

__all__ = [
    "cleanup_job",
    "ingest_job",
    "publish_job",
    "source_url_secret",
    "workspace_claim",
]

#: The Secret key and the worker's variable of a source URL that carries credentials.
SOURCE_URL_KEY: Final = "url"
SOURCE_URL_ENV: Final = "KUBEARTS_SOURCE_URL"

# --- manifests -------------------------------------------------------------------------------


def _target_arg(plan: DatasetPlan) -> str:
    # The worker understands pvc:// itself (with --pvc-root); pass the URI, not a path, so
    # its messages and results name the location the way the user wrote it.
    return plan.target.uri


def _worker_env(plan: DatasetPlan, *, downloads: bool = False) -> list[EnvVar]:
    """The worker's environment: settings, and credentials referenced from Secrets.

    Only the ingest Job (``downloads``) gets the http ``Authorization`` header: publishing
    and cleaning up never reach the source, and should not depend on its Secret.
    """
    env: list[EnvVar] = [
        {"name": "KUBEARTS_PVC_ROOT", "value": PVC_ROOT},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": SCRATCH_PATH},
    ]
    if plan.s3_secret:
        env.extend(s3_credentials_env(plan.s3_secret))
    if downloads and plan.authorization_secret:
        env.extend(http_authorization_env(plan.authorization_secret))
    if downloads and plan.source.has_credentials:
        secret: SecretKeySelector = {
            "name": plan.source_url_secret,
            "key": SOURCE_URL_KEY,
            "optional": False,
        }
        env.append({"name": SOURCE_URL_ENV, "valueFrom": {"secretKeyRef": secret}})
    return env


def _job(
    plan: DatasetPlan,
    owner: Mapping[str, Any],
    *,
    name: str,
    step: str,
    image: str,
    args: list[str],
    placement: Placement,
    claims: Mapping[str, bool],
    limits: JobLimits,
    extra_labels: Mapping[str, str] | None = None,
    downloads: bool = False,
) -> dict[str, Any]:
    labels = child_labels(DATASET, plan.name, **{STEP_LABEL: step, **(extra_labels or {})})
    container = {
        "name": step,
        "image": image,
        # No command: the image's entrypoint is `python -m kubearts_dataset`.
        "args": args,
        "env": _worker_env(plan, downloads=downloads),
    }
    return worker_job(
        DATASET,
        owner,
        name=name,
        labels=labels,
        container=container,
        placement=placement,
        limits=limits,
        volumes=claim_volumes(claims),
        mounts=claim_mounts(claims),
    )


def ingest_job(
    plan: DatasetPlan,
    owner: Mapping[str, Any],
    *,
    image: str,
    placement: Placement,
    deadline_seconds: int,
    scratch_size: str = "20Gi",
) -> dict[str, Any]:
    """The Job that downloads, verifies and installs the data (``ingest``).

    A source URL that carries credentials is not an argument (arguments are visible to
    anyone who may read Jobs and pods): the worker reads it from ``KUBEARTS_SOURCE_URL``,
    filled from the Secret :func:`source_url_secret` makes. The scratch space holds the
    downloaded archive, so it may grow to the download limit, or ``scratch_size``.
    """
    source = [] if plan.source.has_credentials else ["--source", plan.source.uri]
    limit = [] if plan.max_bytes is None else ["--max-bytes", str(plan.max_bytes)]
    args = [
        "ingest",
        *source,
        "--target",
        _target_arg(plan),
        "--format",
        plan.source.format,
        *limit,
        "--max-files",
        str(plan.max_files),
        "--pvc-root",
        PVC_ROOT,
        "--work-dir",
        SCRATCH_PATH,
        # A staging folder of its own: two ingest Jobs of one target never share one.
        "--staging-id",
        plan.ingest_job_name,
        "--result",
        RESULT_PATH,
    ]
    if plan.source.sha256:
        args += ["--sha256", plan.source.sha256]
    return _job(
        plan,
        owner,
        name=plan.ingest_job_name,
        step=STEP_INGEST,
        image=image,
        args=args,
        placement=placement,
        claims=plan.claims,
        limits=JobLimits(
            deadline_seconds,
            scratch_size=scratch_size if plan.max_bytes is None else str(plan.max_bytes),
        ),
        extra_labels={DATA_KEY_LABEL: plan.data_key},
        downloads=True,
    )


def _target_claims(plan: DatasetPlan) -> dict[str, bool]:
    """The claim the stored data lives on, mounted read-write (none for an s3 target)."""
    return {plan.target.claim: False} if plan.target.scheme == "pvc" else {}


def publish_job(
    plan: DatasetPlan,
    version: VersionPlan,
    owner: Mapping[str, Any],
    *,
    image: str,
    placement: Placement,
    deadline_seconds: int,
) -> dict[str, Any]:
    """The Job that publishes ``version`` of the ingested data (``publish``)."""
    args = [
        "publish",
        "--dataset",
        _target_arg(plan),
        "--version",
        version.name,
        "--train-ratio",
        repr(version.train_ratio),
        "--seed",
        str(version.seed),
        "--stratified" if version.stratified else "--no-stratified",
        "--pvc-root",
        PVC_ROOT,
        "--result",
        RESULT_PATH,
    ]
    return _job(
        plan,
        owner,
        name=plan.publish_job_name(version),
        step=STEP_PUBLISH,
        image=image,
        args=args,
        placement=placement,
        claims=_target_claims(plan),
        limits=JobLimits(deadline_seconds),
        extra_labels={DATA_KEY_LABEL: plan.data_key, VERSION_LABEL: version.name},
    )


def cleanup_job(
    plan: DatasetPlan,
    owner: Mapping[str, Any],
    *,
    image: str,
    placement: Placement,
    deadline_seconds: int,
    attempt: int = 1,
) -> dict[str, Any]:
    """Attempt ``attempt`` at removing the stored data (``deletePolicy: Delete``) with the
    worker's ``remove``, which refuses a target that holds no data set (no
    ``.kubearts/ingest.json``, nor only what an unfinished ingest leaves): a mistyped storage
    URI must not wipe someone else's files. ``deadline_seconds`` is short: a pod that
    cannot start must not hold the Dataset's deletion for hours."""
    args = [
        "remove",
        "--dataset",
        _target_arg(plan),
        "--pvc-root",
        PVC_ROOT,
        "--result",
        RESULT_PATH,
    ]
    return _job(
        plan,
        owner,
        name=plan.cleanup_job_name(attempt),
        step=STEP_CLEANUP,
        image=image,
        args=args,
        placement=placement,
        claims=_target_claims(plan),
        limits=JobLimits(deadline_seconds),
    )


def source_url_secret(plan: DatasetPlan, owner: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret holding a source URL with credentials, owned by the Dataset."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": plan.source_url_secret,
            "namespace": plan.namespace,
            "labels": child_labels(DATASET, plan.name),
            "ownerReferences": [owner_reference(DATASET, owner)],
        },
        "type": "Opaque",
        "stringData": {SOURCE_URL_KEY: plan.source.uri},
    }


def workspace_claim(namespace: str, name: str, size: str) -> dict[str, Any]:
    """The namespace's workspace PVC, from the default StorageClass (no storageClassName).

    Deliberately without an owner reference: data sets, training outputs and models of
    many objects live in it, and deleting any one of them must not delete the claim.
    """
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        },
    }
