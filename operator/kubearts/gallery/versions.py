"""Semantic versions of gallery algorithms: parsing and precedence (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["SemVer", "parse_version", "sort_versions"]

_SEMVER_RE: Final = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


@dataclass(frozen=True)
class SemVer:
    """A parsed semantic version; compare with :attr:`key` (build metadata is ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: str = ""

    @property
    def key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        """Sort key implementing semver precedence.

        A release sorts after its pre-releases; pre-release identifiers compare numerically
        when numeric, lexically otherwise, numeric before alphanumeric; a longer list of
        equal leading identifiers sorts later.
        """
        pre = tuple(
            (0, part, "") if isinstance(part, int) else (1, 0, part) for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def parse_version(text: str) -> SemVer:
    """Parse ``MAJOR.MINOR.PATCH[-pre][+build]``; raise ValueError naming the expected form."""
    match = _SEMVER_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version like 1.2.0 or 1.2.0-rc.1")
    pre = match.group(4)
    parts: tuple[int | str, ...] = ()
    if pre:
        parts = tuple(int(p) if p.isdigit() else p for p in pre.split("."))
    return SemVer(
        int(match.group(1)), int(match.group(2)), int(match.group(3)), parts, match.group(5) or ""
    )


def sort_versions(versions: Iterable[str]) -> list[str]:
    """Version strings in ascending semver precedence (all must be valid)."""
    return sorted(versions, key=lambda v: parse_version(v).key)
