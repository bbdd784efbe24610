"""Metadata of children: deterministic names, labels and owner references.

A child's name is derived only from its owner's name and a role suffix, so re-running a
handler finds the child it created before instead of creating a second one; the owner
reference makes Kubernetes garbage-collect children with their owner.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final, TypedDict

from kubearts.constants import API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE, KindNames

__all__ = ["OwnerReference", "child_labels", "child_name", "owner_reference"]

#: Most object names are DNS subdomains (253), but Services, and names that end up in
#: labels or pod hostnames, must be DNS labels: keep every child name within 63.
MAX_NAME_LENGTH: Final = 63
_INVALID = re.compile(r"[^a-z0-9-]+")


class OwnerReference(TypedDict):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


def owner_reference(kind: KindNames, owner: Mapping[str, Any]) -> OwnerReference:
    """Controller owner reference to the kubearts.io object ``owner`` (its body) of ``kind``."""
    metadata = owner.get("metadata") or {}
    name, uid = metadata.get("name"), metadata.get("uid")
    if not name or not uid:
        raise ValueError(f"{kind.kind} body lacks metadata.name or metadata.uid: cannot own")
    return {
        "apiVersion": API_VERSION,
        "kind": kind.kind,
        "name": str(name),
        "uid": str(uid),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_labels(kind: KindNames, owner_name: str, **extra: str) -> dict[str, str]:
    """Labels of a child of the ``kind`` object ``owner_name``: managed-by plus
    ``kubearts.io/<kind>: <owner>``, which is also how its pods are listed."""
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE, kind.label: owner_name, **extra}


def child_name(owner_name: str, suffix: str) -> str:
    """Deterministic child name ``<owner>-<suffix>``, at most 63 characters.

    Too long a name is cut and given a short hash of the full name, so two owners whose
    names share a long prefix still get different children.
    """
    full = _INVALID.sub("-", f"{owner_name}-{suffix}".lower()).strip("-")
    if not full:
        raise ValueError(f"cannot derive a child name from {owner_name!r} and {suffix!r}")
    if len(full) <= MAX_NAME_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"
