"""Storage URIs and what a pod needs to reach them: volumes, mounts, environment, paths.

Two kinds of storage hold data sets, training outputs and models:

- ``pvc://<claim>/<path>``: a path inside a PersistentVolumeClaim of the object's namespace.
  Pods mount the claim at ``/mnt/pvc/<claim>`` (:data:`PVC_ROOT`, the images'
  ``KUBEARTS_PVC_ROOT``), so the URI maps to ``/mnt/pvc/<claim>/<path>`` inside the pod;
- ``s3://<bucket>/<prefix>``: an S3 or S3-compatible store, reached with the credentials of
  a Secret as the standard ``AWS_*`` environment variables.

Sources may also be ``http(s)://`` (no volume; a Secret's ``Authorization`` key, when given,
becomes the request header through :func:`http_authorization_env`). Everything in this
module is pure: URIs in, manifest fragments out. The workspace (the namespace's default
storage) is just a claim: :func:`workspace_location` names a path in it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, NotRequired, TypedDict
from urllib.parse import unquote, urlsplit

__all__ = [
    "HTTP_AUTHORIZATION_ENV",
    "HTTP_AUTHORIZATION_KEY",
    "PVC_ROOT",
    "EnvVar",
    "StorageLocation",
    "StorageUriError",
    "Volume",
    "VolumeMount",
    "claim_mounts",
    "claim_volumes",
    "http_authorization_env",
    "mount_path",
    "parse_storage_uri",
    "s3_credentials_env",
    "workspace_location",
]

#: Where pods mount claims, one folder per claim name (the images' ``KUBEARTS_PVC_ROOT``).
PVC_ROOT: Final = "/mnt/pvc"

Scheme = Literal["pvc", "s3"]

# A claim name is a DNS subdomain; a bucket name follows S3's rules (3-63 characters).
_CLAIM: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

#: Keys of the credential Secret of an ``s3://`` location, and whether each must be present.
S3_SECRET_KEYS: Final[Mapping[str, bool]] = {
    "AWS_ACCESS_KEY_ID": True,
    "AWS_SECRET_ACCESS_KEY": True,
    "AWS_ENDPOINT_URL": False,
    "AWS_REGION": False,
}

#: Key of an ``http(s)://`` source's Secret holding the full ``Authorization`` header value.
HTTP_AUTHORIZATION_KEY: Final = "Authorization"
#: The dataset worker's variable for that header (images/dataset README).
HTTP_AUTHORIZATION_ENV: Final = "KUBEARTS_HTTP_AUTHORIZATION"


class StorageUriError(ValueError):
    """A storage URI that cannot be used; the message says what is wrong and how to write it."""


@dataclass(frozen=True)
class StorageLocation:
    """A parsed ``pvc://`` or ``s3://`` location; only the fields of its scheme are set."""

    scheme: Scheme
    claim: str = ""
    """PersistentVolumeClaim name (``pvc``)."""
    bucket: str = ""
    """Bucket (``s3``)."""
    path: str = ""
    """Path inside the claim, or key prefix inside the bucket: '/'-separated, no leading or
    trailing '/', no '.' or '..' segments; "" for the whole claim or bucket."""

    @property
    def uri(self) -> str:
        """The canonical URI, e.g. ``pvc://kubearts-workspace/datasets/flowers``."""
        host = self.claim if self.scheme == "pvc" else self.bucket
        return f"{self.scheme}://{host}/{self.path}" if self.path else f"{self.scheme}://{host}"

    def join(self, *parts: str) -> StorageLocation:
        """This location with ``parts`` appended (each may contain '/'; checked like a URI)."""
        segments = [*_segments(self.path, self.uri)]
        for part in parts:
            segments.extend(_segments(part, part))
        return StorageLocation(self.scheme, self.claim, self.bucket, "/".join(segments))

    def child_uri(self, relative: str) -> str:
        """URI of ``relative`` (a '/'-separated path) below this location."""
        return self.join(relative).uri

    def relative_path(self, uri: str) -> str:
        """The path of ``uri`` below this location; ValueError when it is not inside."""
        prefix = self.uri.rstrip("/") + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not inside {self.uri}")
        return uri[len(prefix) :]

    @property
    def local_path(self) -> str | None:
        """Where a pod sees a ``pvc`` location (None for ``s3``): ``/mnt/pvc/<claim>/<path>``."""
        if self.scheme != "pvc":
            return None
        base = mount_path(self.claim)
        return f"{base}/{self.path}" if self.path else base


def _segments(path: str, where: str) -> list[str]:
    segments = [segment for segment in path.split("/") if segment]
    for segment in segments:
        if segment in (".", ".."):
            raise StorageUriError(
                f"{where}: the path must not contain '.' or '..' segments; write the path "
                "from the root of the claim or bucket"
            )
        if "\\" in segment or "\x00" in segment:
            raise StorageUriError(f"{where}: the path must not contain '\\' or NUL characters")
    return segments


def parse_storage_uri(uri: str, schemes: Iterable[Scheme] = ("pvc", "s3")) -> StorageLocation:
    """Parse ``pvc://claim/path`` or ``s3://bucket/prefix`` (only the given ``schemes``).

    Raises :class:`StorageUriError` with the problem and the expected form.
    """
    allowed = tuple(schemes)
    forms = " or ".join(
        {"pvc": "pvc://<claim>/<path>", "s3": "s3://<bucket>/<prefix>"}[s] for s in allowed
    )
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in allowed:
        raise StorageUriError(f"{uri!r} is not a storage URI; write it as {forms}")
    if parts.query or parts.fragment:
        raise StorageUriError(f"{uri!r}: storage URIs take no '?' or '#' part; write {forms}")
    host = parts.netloc
    path = "/".join(_segments(unquote(parts.path), uri))
    if scheme == "pvc":
        if len(host) > 253 or not _CLAIM.match(host):
            raise StorageUriError(
                f"{uri!r}: {host!r} is not a PersistentVolumeClaim name (lower-case letters, "
                "digits, '-' and '.'); write pvc://<claim>/<path>"
            )
        return StorageLocation("pvc", claim=host, path=path)
    if not _BUCKET.match(host):
        raise StorageUriError(
            f"{uri!r}: {host!r} is not a bucket name (3-63 lower-case letters, digits, '-' and "
            "'.'); write s3://<bucket>/<prefix>"
        )
    return StorageLocation("s3", bucket=host, path=path)


def workspace_location(claim: str, *parts: str) -> StorageLocation:
    """A path in the namespace's workspace claim, e.g. ``datasets/<name>``."""
    return StorageLocation("pvc", claim=claim).join(*parts)


def output_folder(
    uri: str | None, workspace_claim: str, kind_dir: str, name: str
) -> StorageLocation:
    """Where a run writes: ``spec.output.uri`` (a ``pvc://`` folder), by default
    ``pvc://<workspace>/<kind_dir>/<name>``. Raises StorageUriError."""
    if not uri:
        return workspace_location(workspace_claim, kind_dir, name)
    return parse_storage_uri(uri, schemes=("pvc",))


def mount_path(claim: str) -> str:
    """Where pods mount ``claim``: ``/mnt/pvc/<claim>``."""
    return f"{PVC_ROOT}/{claim}"


def _volume_name(claim: str) -> str:
    # Volume names are DNS labels (no '.', at most 63); claim names may be longer subdomains.
    name = "pvc-" + claim.replace(".", "-")
    if len(name) <= 63:
        return name
    return f"pvc-{hashlib.sha256(claim.encode()).hexdigest()[:16]}"


class PersistentVolumeClaimSource(TypedDict):
    claimName: str
    readOnly: bool


class Volume(TypedDict):
    """A pod volume (only the kinds the operator uses)."""

    name: str
    persistentVolumeClaim: NotRequired[PersistentVolumeClaimSource]
    emptyDir: NotRequired[dict[str, str]]


class VolumeMount(TypedDict):
    name: str
    mountPath: str
    readOnly: bool
    subPath: NotRequired[str]


def _merged_claims(claims: Mapping[str, bool] | Iterable[tuple[str, bool]]) -> dict[str, bool]:
    """Claim → read-only, one entry per claim: writable when any use needs to write."""
    items = claims.items() if isinstance(claims, Mapping) else claims
    merged: dict[str, bool] = {}
    for claim, read_only in items:
        merged[claim] = merged.get(claim, True) and read_only
    return dict(sorted(merged.items()))


def claim_volumes(claims: Mapping[str, bool] | Iterable[tuple[str, bool]]) -> list[Volume]:
    """Pod volumes for ``(claim, read_only)`` pairs; a claim used twice is mounted once,
    writable if any use writes (a pod cannot mount one path twice)."""
    return [
        {
            "name": _volume_name(claim),
            "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only},
        }
        for claim, read_only in _merged_claims(claims).items()
    ]


def claim_mounts(claims: Mapping[str, bool] | Iterable[tuple[str, bool]]) -> list[VolumeMount]:
    """Container mounts matching :func:`claim_volumes`, each at ``/mnt/pvc/<claim>``."""
    return [
        {"name": _volume_name(claim), "mountPath": mount_path(claim), "readOnly": read_only}
        for claim, read_only in _merged_claims(claims).items()
    ]


def folder_mounts(
    folders: Iterable[tuple[StorageLocation, str, bool]],
) -> tuple[list[Volume], list[VolumeMount]]:
    """Volumes and mounts for ``(pvc location, mount path, read_only)`` triples: each folder
    mounted on its own (a ``subPath``), so a pod sees only the folders it works on, each
    read-only unless it writes there. A claim used by several folders is one volume."""
    folders = list(folders)
    volumes = claim_volumes((location.claim, read_only) for location, _, read_only in folders)
    mounts: list[VolumeMount] = []
    for location, path, read_only in folders:
        mount: VolumeMount = {
            "name": _volume_name(location.claim),
            "mountPath": path,
            "readOnly": read_only,
        }
        if location.path:
            mount["subPath"] = location.path
        mounts.append(mount)
    return volumes, mounts


class SecretKeySelector(TypedDict):
    name: str
    key: str
    optional: bool


class EnvVarSource(TypedDict):
    secretKeyRef: SecretKeySelector


class EnvVar(TypedDict):
    """A container environment variable: a literal value or a Secret key."""

    name: str
    value: NotRequired[str]
    valueFrom: NotRequired[EnvVarSource]


def s3_credentials_env(secret_name: str) -> list[EnvVar]:
    """``AWS_*`` variables from the Secret ``secret_name``: the key pair is required (a
    missing key stops the pod from starting, naming it), endpoint and region are optional.

    Referenced, never copied: the operator does not read the credentials themselves.
    """
    return [
        {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": secret_name, "key": key, "optional": not required}
            },
        }
        for key, required in S3_SECRET_KEYS.items()
    ]


def http_authorization_env(secret_name: str) -> list[EnvVar]:
    """The worker's ``Authorization`` header for an http(s) download, from the Secret's key
    of that name. Required: a Secret named for an http source exists only to hold it.

    Referenced, never copied, like the S3 credentials: the value is in no manifest.
    """
    return [
        {
            "name": HTTP_AUTHORIZATION_ENV,
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret_name,
                    "key": HTTP_AUTHORIZATION_KEY,
                    "optional": False,
                }
            },
        }
    ]
