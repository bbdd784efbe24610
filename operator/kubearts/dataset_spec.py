"""A Dataset's spec, checked into a plan (pure): sources, storage, limits, versions.

:func:`plan_dataset` applies the defaults and refuses what cannot work with a
:class:`~kubearts.conditions.SpecError` naming the field and the fix. The
:class:`DatasetPlan` names every Job the Dataset runs: names carry a digest of what the Job
does, so a changed spec (a fixed sha256, a raised limit) gets a new Job while re-running a
handler finds the existing one. The digest of what defines the data (source, format,
storage) is also a label: the operator recognises the ingest that produced the data the
spec asks for, whatever the limits were.

The default storage is the namespace's workspace claim, at ``datasets/<name>``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict
from urllib.parse import urlsplit

from kubearts.builders.meta import child_name
from kubearts.conditions import SpecError
from kubearts.redact import has_credentials, redact_url
from kubearts.storage import (
    StorageLocation,
    StorageUriError,
    parse_storage_uri,
    workspace_location,
)

__all__ = [
    "DatasetPlan",
    "DatasetSpec",
    "ResolvedSource",
    "SpecError",
    "VersionPlan",
    "gallery_reference",
    "plan_dataset",
]

STEP_INGEST: Final = "ingest"
STEP_PUBLISH: Final = "publish"
STEP_CLEANUP: Final = "cleanup"

#: Folder of the workspace claim holding data sets, one sub-folder per Dataset.
WORKSPACE_DATASETS_DIR: Final = "datasets"
#: Default entry limit, the CRD's default. Bytes have none: the worker takes a share of
#: the free space of the volume it writes.
DEFAULT_MAX_FILES: Final = 1_000_000
DEFAULT_GALLERY: Final = "default"

Format = Literal["ImageFolder", "Manifest"]
FORMATS: Final[tuple[Format, ...]] = ("ImageFolder", "Manifest")
DeletePolicy = Literal["Retain", "Delete"]

# --- spec shapes -----------------------------------------------------------------------------


class SecretRef(TypedDict):
    name: str


class SourceSpec(TypedDict):
    uri: str
    secretRef: NotRequired[SecretRef]
    sha256: NotRequired[str]


class StorageSpec(TypedDict, total=False):
    uri: str
    secretRef: SecretRef
    deletePolicy: DeletePolicy


class LimitsSpec(TypedDict, total=False):
    maxBytes: int
    maxFiles: int


class VersionSpec(TypedDict):
    name: str
    trainRatio: float
    seed: NotRequired[int]
    stratified: NotRequired[bool]


class DatasetSpec(TypedDict, total=False):
    """``spec`` of a Dataset (see crds/kubearts.io_datasets.yaml)."""

    source: SourceSpec
    format: Format
    storage: StorageSpec
    limits: LimitsSpec
    versions: list[VersionSpec]


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedSource:
    """Where the data really comes from, after resolving ``gallery://`` entries."""

    uri: str
    sha256: str | None = None
    format: Format = "ImageFolder"
    gallery_entry: str | None = None
    """``<gallery>/<name>`` when the spec named a gallery entry."""

    @property
    def shown(self) -> str:
        """The URI as it may be shown: credentials in it replaced by ``***``."""
        return redact_url(self.uri)

    @property
    def has_credentials(self) -> bool:
        """Whether the URI itself carries credentials (user information, a signature)."""
        return has_credentials(self.uri)


@dataclass(frozen=True)
class VersionPlan:
    """One entry of ``spec.versions`` with defaults applied."""

    index: int
    name: str
    train_ratio: float
    seed: int
    stratified: bool

    @property
    def field(self) -> str:
        return f"spec.versions[{self.index}]"

    def key(self, data_key: str) -> str:
        """Digest of what the publish Job does: the split over the data of ``data_key``."""
        return _digest(
            {
                "data": data_key,
                "trainRatio": self.train_ratio,
                "seed": self.seed,
                "stratified": self.stratified,
            }
        )[:8]


@dataclass(frozen=True)
class DatasetPlan:
    """What a Dataset's spec asks for, checked and with every default applied."""

    name: str
    namespace: str
    source: ResolvedSource
    source_secret: str | None
    target: StorageLocation
    storage_secret: str | None
    uses_workspace: bool
    max_bytes: int | None
    """``spec.limits.maxBytes``; None lets the worker take a share of the free space."""
    max_files: int
    delete_policy: DeletePolicy
    versions: tuple[VersionPlan, ...] = field(default=())

    @property
    def source_location(self) -> StorageLocation | None:
        """The parsed source when it is a ``pvc://`` or ``s3://`` location, else None."""
        scheme = urlsplit(self.source.uri).scheme.lower()
        if scheme in ("pvc", "s3"):
            return parse_storage_uri(self.source.uri)
        return None

    @property
    def data_key(self) -> str:
        """Digest of what defines the data: resolved source, checksum, format, target."""
        return _digest(
            {
                "source": self.source.uri,
                "sha256": self.source.sha256,
                "format": self.source.format,
                "target": self.target.uri,
            }
        )[:12]

    @property
    def run_key(self) -> str:
        """Digest of everything the ingest Job does (the data key plus the limits)."""
        return _digest(
            {"data": self.data_key, "maxBytes": self.max_bytes, "maxFiles": self.max_files}
        )[:10]

    @property
    def ingest_job_name(self) -> str:
        return child_name(self.name, f"{STEP_INGEST}-{self.run_key}")

    def publish_job_name(self, version: VersionPlan) -> str:
        return child_name(self.name, f"{STEP_PUBLISH}-{version.name}-{version.key(self.data_key)}")

    def cleanup_job_name(self, attempt: int) -> str:
        """The cleanup Job of ``attempt`` (1, 2, …): a failed one stays, so the attempts
        made so far are counted from the Jobs themselves."""
        return child_name(self.name, f"{STEP_CLEANUP}-{attempt}")

    @property
    def source_url_secret(self) -> str:
        """The Secret holding a source URL that carries credentials (one per data key, so
        an edited URL gets a Secret of its own)."""
        return child_name(self.name, f"source-{self.data_key}")

    @property
    def claims(self) -> dict[str, bool]:
        """Claims the worker mounts, with whether read-only: the source's read-only, the
        target's writable (one mount when they are the same claim)."""
        claims: dict[str, bool] = {}
        source = self.source_location
        if source is not None and source.scheme == "pvc":
            claims[source.claim] = True
        if self.target.scheme == "pvc":
            claims[self.target.claim] = False
        return claims

    @property
    def s3_secret(self) -> str | None:
        """The Secret whose ``AWS_*`` keys the worker gets: the source's for an ``s3://``
        source (an s3 target shares it, one process reads one set of variables), else the
        storage's."""
        scheme = urlsplit(self.source.uri).scheme
        if scheme == "s3":
            return self.source_secret or self.storage_secret
        if scheme == "gallery":
            # Unresolved (only to remove the data): the entry may be an s3 source.
            return self.storage_secret or self.source_secret
        return self.storage_secret

    @property
    def authorization_secret(self) -> str | None:
        """The Secret whose ``Authorization`` key is the header of an ``http(s)://`` download."""
        if urlsplit(self.source.uri).scheme in ("http", "https"):
            return self.source_secret
        return None


def _digest(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def gallery_reference(uri: str) -> tuple[str, str] | None:
    """``gallery://<name>`` → (``default``, name); ``gallery://<gallery>/<name>`` → both;
    None for other schemes. Raises SpecError for a malformed gallery URI."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "gallery":
        return None
    names = [p for p in (parts.netloc, *parts.path.split("/")) if p]
    if len(names) == 1:
        return DEFAULT_GALLERY, names[0]
    if len(names) == 2:
        return names[0], names[1]
    raise SpecError(
        "spec.source.uri",
        f"{uri!r} is not a gallery reference",
        "write gallery://<name> (the default gallery) or gallery://<gallery>/<name>",
    )


def _int(value: Any, default: int, field: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(field, f"{value!r} is not a positive whole number", "write e.g. 1000000")
    return value


def _optional_int(value: Any, field: str) -> int | None:
    return None if value is None else _int(value, 0, field)


def _secret_name(ref: Any, field: str) -> str | None:
    if ref is None:
        return None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if not isinstance(name, str) or not name:
        raise SpecError(
            field, "names no Secret", "set secretRef.name to a Secret in this namespace"
        )
    return name


def _versions(raw: Any) -> tuple[VersionPlan, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise SpecError("spec.versions", "is not a list", "write a list of {name, trainRatio}")
    plans: list[VersionPlan] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw):
        where = f"spec.versions[{index}]"
        if not isinstance(entry, Mapping):
            raise SpecError(where, "is not an object", "write {name: v1, trainRatio: 0.8}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}.name", "is missing", "name the version, e.g. v1")
        if name in seen:
            raise SpecError(
                f"{where}.name",
                f"{name!r} is also spec.versions[{seen[name]}]",
                "give every version its own name",
            )
        seen[name] = index
        ratio = entry.get("trainRatio")
        if (
            isinstance(ratio, bool)
            or not isinstance(ratio, int | float)
            or not math.isfinite(ratio)
            or not 0 < ratio <= 1
        ):
            raise SpecError(
                f"{where}.trainRatio",
                f"{ratio!r} is not in (0, 1]",
                "write e.g. 0.8 (80% train, 20% eval), or 1 for an unsplit version",
            )
        seed = entry.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SpecError(f"{where}.seed", f"{seed!r} is not a whole number >= 0", "write e.g. 0")
        stratified = entry.get("stratified", True)
        if not isinstance(stratified, bool):
            raise SpecError(f"{where}.stratified", f"{stratified!r} is not a boolean", "write true")
        plans.append(VersionPlan(index, name, float(ratio), seed, stratified))
    return tuple(plans)


def plan_dataset(
    name: str,
    namespace: str,
    spec: Mapping[str, Any],
    *,
    workspace_pvc: str,
    source: ResolvedSource | None = None,
) -> DatasetPlan:
    """Check ``spec`` and apply defaults; ``source`` is the resolved ``gallery://`` entry
    (required for those, ignored otherwise). Raises :class:`SpecError`.

    The API server already enforces the CRD schema; the checks here are what it cannot
    express (storage URIs, secret combinations), plus the schema's rules again for objects
    that bypassed it (older CRD versions, direct handler calls in tests).
    """
    raw_source = spec.get("source")
    if not isinstance(raw_source, Mapping) or not isinstance(raw_source.get("uri"), str):
        raise SpecError("spec.source.uri", "is missing", "set it to the data's location")
    resolved = _resolve_source(raw_source, spec.get("format", "ImageFolder"), source)
    storage = spec.get("storage") or {}
    target, uses_workspace = _target(storage, name, workspace_pvc)
    source_secret = _secret_name(raw_source.get("secretRef"), "spec.source.secretRef")
    storage_secret = _secret_name(storage.get("secretRef"), "spec.storage.secretRef")
    _check_secrets(resolved, target, source_secret, storage_secret)
    limits = spec.get("limits") or {}
    delete_policy = storage.get("deletePolicy", "Retain")
    if delete_policy not in ("Retain", "Delete"):
        raise SpecError(
            "spec.storage.deletePolicy",
            f"{delete_policy!r} is not a policy",
            "use Retain or Delete",
        )
    return DatasetPlan(
        name=name,
        namespace=namespace,
        source=resolved,
        source_secret=source_secret,
        target=target,
        storage_secret=storage_secret,
        uses_workspace=uses_workspace,
        max_bytes=_optional_int(limits.get("maxBytes"), "spec.limits.maxBytes"),
        max_files=_int(limits.get("maxFiles"), DEFAULT_MAX_FILES, "spec.limits.maxFiles"),
        delete_policy=delete_policy,
        versions=_versions(spec.get("versions")),
    )


def _resolve_source(
    raw_source: Mapping[str, Any], spec_format: Any, source: ResolvedSource | None
) -> ResolvedSource:
    """``spec.source`` and ``spec.format`` checked, a ``gallery://`` entry resolved."""
    uri: str = raw_source["uri"]
    scheme = urlsplit(uri).scheme.lower()
    spec_sha = raw_source.get("sha256")
    if spec_sha is not None and (
        not isinstance(spec_sha, str)
        or len(spec_sha) != 64
        or any(c not in "0123456789abcdef" for c in spec_sha)
    ):
        raise SpecError(
            "spec.source.sha256", f"{spec_sha!r} is not a SHA-256", "write 64 lower-case hex digits"
        )
    if spec_format not in FORMATS:
        raise SpecError(
            "spec.format", f"{spec_format!r} is not a format", "use ImageFolder or Manifest"
        )
    if scheme == "gallery":
        if source is None:
            # Unresolved: enough to know the storage (e.g. for removing it), not to ingest.
            entry = "/".join(gallery_reference(uri) or ())
            return ResolvedSource(uri, spec_sha, spec_format, entry)
        # An explicit checksum in the spec pins the download even for a gallery entry.
        return ResolvedSource(
            source.uri, spec_sha or source.sha256, source.format, source.gallery_entry
        )
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        if not parts.netloc:
            raise SpecError(
                "spec.source.uri", f"{redact_url(uri)!r} has no host", "write http(s)://host/path"
            )
        if not parts.path or parts.path.endswith("/"):
            raise SpecError(
                "spec.source.uri",
                f"{redact_url(uri)!r} names a folder; folder listings over http cannot be read",
                "point at an archive (.tar, .tar.gz, .tgz, .zip) or use an s3:// prefix",
            )
        return ResolvedSource(uri, spec_sha, spec_format)
    if scheme in ("pvc", "s3"):
        try:
            location = parse_storage_uri(uri)
        except StorageUriError as exc:
            raise SpecError("spec.source.uri", str(exc), "fix the URI") from None
        return ResolvedSource(location.uri, spec_sha, spec_format)
    raise SpecError(
        "spec.source.uri",
        f"{redact_url(uri)!r} has an unsupported scheme",
        "use http(s)://, s3://, pvc://<claim>/<path> or gallery://<name>",
    )


def _target(
    storage: Mapping[str, Any], name: str, workspace_pvc: str
) -> tuple[StorageLocation, bool]:
    """Where the data goes, and whether that is the namespace's workspace claim."""
    storage_uri = storage.get("uri")
    if not storage_uri:
        return workspace_location(workspace_pvc, WORKSPACE_DATASETS_DIR, name), True
    try:
        target = parse_storage_uri(storage_uri)
    except StorageUriError as exc:
        raise SpecError("spec.storage.uri", str(exc), "fix the URI or leave it out") from None
    if target.scheme == "pvc" and not target.path:
        # The worker replaces the target's content: a whole claim is too big a blast radius.
        raise SpecError(
            "spec.storage.uri",
            f"{storage_uri!r} is a whole claim",
            f"name a folder inside it, e.g. pvc://{target.claim}/datasets/{name}",
        )
    return target, False


def _check_secrets(
    resolved: ResolvedSource,
    target: StorageLocation,
    source_secret: str | None,
    storage_secret: str | None,
) -> None:
    """Refuse Secret combinations the worker could not use, or would silently ignore."""
    source_is_s3 = urlsplit(resolved.uri).scheme == "s3"
    both_s3 = source_is_s3 and target.scheme == "s3"
    if both_s3 and source_secret and storage_secret and source_secret != storage_secret:
        # One worker process reads one set of AWS_* variables.
        raise SpecError(
            "spec.storage.secretRef",
            f"differs from spec.source.secretRef ({storage_secret!r} and {source_secret!r})",
            "use one Secret with access to both buckets, or store the data on a pvc:// target",
        )
    if storage_secret and target.scheme != "s3":
        raise SpecError(
            "spec.storage.secretRef",
            "is set but the storage is not an s3:// location",
            "remove it, or set spec.storage.uri to s3://<bucket>/<prefix>",
        )
    if source_secret and urlsplit(resolved.uri).scheme == "pvc":
        # A claim is mounted, not logged in to: a Secret would be ignored silently.
        raise SpecError(
            "spec.source.secretRef",
            "is set but pvc:// sources need no credentials",
            "remove it (the claim is mounted into the worker's pod)",
        )
