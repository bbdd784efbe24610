"""Parsing the URIs a source or a target may be given as.

Supported forms:

- ``http://…`` and ``https://…`` — an archive (tar, tar.gz, tgz, tar.bz2, tar.xz or zip);
  sources only;
- ``s3://bucket/key`` — an archive object, or every object below a prefix;
- ``pvc://claim/path`` — a path inside a PersistentVolumeClaim that the pod mounts at
  ``<pvc-root>/<claim>`` (``--pvc-root``, default ``/mnt/pvc``);
- ``file:///abs/path`` or a plain path — a local folder or archive file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from kubearts_dataset.errors import DatasetError, Reason
from kubearts_dataset.paths import UnsafeNameError, safe_relative
from kubearts_dataset.redact import redact_url

DEFAULT_PVC_ROOT: Final = Path("/mnt/pvc")

_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class Location:
    """A parsed source or target; exactly the fields of its ``kind`` are set."""

    uri: str
    kind: Literal["http", "s3", "local"]
    path: Path | None = None
    """Local path (``local``), after resolving ``pvc://`` and ``file://``."""
    bucket: str = ""
    """Bucket (``s3``)."""
    key: str = ""
    """Key or prefix without a leading slash (``s3``); may be empty for a whole bucket."""

    @property
    def shown(self) -> str:
        """The URI as it may be shown: without credentials (see :mod:`kubearts_dataset.redact`)."""
        return redact_url(self.uri)


def parse_location(
    uri: str, *, pvc_root: Path, flag: str, reason: Reason, allow_http: bool = False
) -> Location:
    """Parse ``uri`` given as ``flag``, or fail with ``reason`` naming the flag and the fix."""
    if not uri:
        raise DatasetError(reason, f"{flag} is empty; give a URI such as s3://bucket/prefix")
    shown = redact_url(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not allow_http:
            raise DatasetError(reason, f"{flag} {shown}: http(s) is not supported here")
        if not parts.netloc:
            raise DatasetError(reason, f"{flag} {shown}: the URL has no host")
        if parts.path.endswith("/") or not parts.path:
            raise DatasetError(
                reason,
                f"{flag} {shown}: folder listings over http are not supported; point at an "
                "archive (.tar, .tar.gz, .tgz, .zip) or use an s3:// prefix",
            )
        return Location(uri=uri, kind="http")
    if scheme == "s3":
        if not parts.netloc:
            raise DatasetError(reason, f"{flag} {shown}: s3 URIs need a bucket (s3://bucket/key)")
        return Location(uri=uri, kind="s3", bucket=parts.netloc, key=parts.path.lstrip("/"))
    if scheme == "pvc":
        claim = parts.netloc
        if not _CLAIM.match(claim):
            raise DatasetError(
                reason,
                f"{flag} {shown}: {claim!r} is not a valid claim name; use pvc://<claim>/<path>",
            )
        local = pvc_root / claim
        inner = unquote(parts.path).strip("/")
        if inner:
            try:
                local = local.joinpath(*safe_relative(inner).parts)
            except UnsafeNameError as exc:
                raise DatasetError(reason, f"{flag} {shown}: the path {exc}") from None
        return Location(uri=uri, kind="local", path=local)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DatasetError(reason, f"{flag} {shown}: file URIs must not name a host")
        return Location(uri=uri, kind="local", path=Path(unquote(parts.path)))
    if scheme and len(scheme) > 1:
        raise DatasetError(
            reason,
            f"{flag} {shown}: unsupported scheme {scheme}://; use http(s)://, s3://, pvc:// or "
            "file:// (gallery:// entries are resolved by the operator before this step)",
        )
    return Location(uri=uri, kind="local", path=Path(uri))
