"""The two data set layouts: class folders (ImageFolder) and ModelArts-style manifests.

Both turn an unpacked tree into *candidates* (file, label, usage) plus the entries that
cannot be used, each with a reason; the images themselves are checked afterwards.

**ImageFolder** — one sub-folder per class (``roses/1.jpg``). Wrapper folders are skipped:
while a level holds exactly one folder and that folder holds folders, the data root moves
down (``flower_photos/roses/1.jpg`` → classes under ``flower_photos``). Files below a class
folder belong to that class at any depth. Files outside every class folder are listed as
excluded. Operating-system metadata (``__MACOSX/``, ``._*``, ``.DS_Store``, ``Thumbs.db``)
is never a class and is listed as excluded too.

**Manifest** — JSON lines as ModelArts writes them::

    {"source": "images/1.jpg", "usage": "TRAIN",
     "annotation": [{"type": "modelarts/image_classification", "name": "rose"}]}

``source`` relative to the manifest's folder, or an absolute ``s3://``/``obs://``/path URI
from the store the manifest was exported from; those are matched to the unpacked files by
their longest path suffix that exists. ``usage`` is TRAIN, EVAL, TEST, INFERENCE or absent.
One annotation name per sample (single-label classification).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final, Literal

from kubearts_dataset.errors import DatasetError
from kubearts_dataset.paths import UnsafeNameError, resolve_link, safe_relative
from kubearts_dataset.result import InvalidFile

Format = Literal["ImageFolder", "Manifest"]
Usage = Literal["TRAIN", "EVAL", "TEST", "INFERENCE", ""]

USAGES: Final[tuple[Usage, ...]] = ("TRAIN", "EVAL", "TEST", "INFERENCE", "")
MANIFEST_SUFFIXES: Final = (".manifest", ".jsonl")
CLASSIFICATION_TYPE: Final = "modelarts/image_classification"
_JUNK_FILES: Final = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_JUNK_DIRS: Final = frozenset({"__MACOSX"})


@dataclass(frozen=True)
class Candidate:
    """A file that should be an image of class ``label``."""

    path: PurePosixPath
    """Relative to the dataset directory."""
    label: str
    usage: Usage = ""
    key: str = ""
    """Path relative to the data root; what the content digest is computed over."""


@dataclass
class Layout:
    """A scanned data set before image checks."""

    candidates: list[Candidate]
    invalid: list[InvalidFile] = field(default_factory=list)
    data_root: PurePosixPath = field(default_factory=PurePosixPath)
    manifest: PurePosixPath | None = None
    unreferenced: int = 0
    """Files a manifest data set holds but its manifest does not mention."""


def is_junk(name: str) -> bool:
    """Operating-system metadata, never data."""
    return name in _JUNK_FILES or name.startswith("._")


def scan(content: Path, fmt: Format, manifest: str | None = None) -> Layout:
    """Scan ``content`` as ``fmt``."""
    if fmt == "ImageFolder":
        return scan_image_folder(content)
    return scan_manifest(content, manifest)


# -- ImageFolder ------------------------------------------------------------------------------


def _listing(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """Sorted (class-candidate folders, files, metadata folders) directly in ``folder``."""
    dirs: list[str] = []
    files: list[str] = []
    junk: list[str] = []
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            (junk if entry.name in _JUNK_DIRS else dirs).append(entry.name)
        elif entry.is_file(follow_symlinks=False):
            files.append(entry.name)
    return sorted(dirs), sorted(files), sorted(junk)


def _walk_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(current) / name for name in sorted(files))
    return found


def scan_image_folder(content: Path) -> Layout:
    """Scan class folders below ``content`` (see the module docstring)."""
    layout = Layout(candidates=[])
    root = PurePosixPath()
    while True:
        folder = content.joinpath(*root.parts)
        dirs, files, junk = _listing(folder)
        for name in junk:
            for path in _walk_files(folder / name):
                layout.invalid.append(
                    {"path": _rel(content, path), "reason": "operating-system metadata"}
                )
        for name in files:
            reason = (
                "operating-system metadata"
                if is_junk(name)
                else "outside any class folder (ImageFolder expects <class>/<image>)"
            )
            layout.invalid.append({"path": (root / name).as_posix(), "reason": reason})
        if len(dirs) == 1 and _listing(folder / dirs[0])[0]:
            root = root / dirs[0]
            continue
        break
    layout.data_root = root
    if not dirs:
        raise DatasetError(
            "NoImagesFound",
            "no class folders found: the ImageFolder format expects one sub-folder per class "
            f"(e.g. roses/1.jpg); the data has {len(layout.invalid)} loose files instead",
        )
    for label in dirs:
        for path in _walk_files(folder / label):
            relative = PurePosixPath(_rel(content, path))
            if is_junk(path.name) or _JUNK_DIRS & set(relative.parts):
                layout.invalid.append(
                    {"path": relative.as_posix(), "reason": "operating-system metadata"}
                )
                continue
            layout.candidates.append(
                Candidate(
                    path=relative,
                    label=label,
                    key=relative.relative_to(root).as_posix(),
                )
            )
    return layout


def _rel(content: Path, path: Path) -> str:
    return path.relative_to(content).as_posix()


# -- Manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestEntry:
    """One usable manifest line."""

    line: int
    source: str
    label: str
    usage: Usage


def parse_manifest(
    lines: Iterable[bytes | str], name: str = "manifest"
) -> tuple[list[ManifestEntry], list[InvalidFile]]:
    """Parse JSON lines; each bad line becomes an ``InvalidFile`` at ``name:line``."""
    entries: list[ManifestEntry] = []
    invalid: list[InvalidFile] = []
    for number, raw in enumerate(lines, start=1):
        where = f"{name}:{number}"
        try:
            text = (
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
                if isinstance(raw, bytes)
                else raw
            )
        except UnicodeDecodeError:
            invalid.append({"path": where, "reason": "not valid UTF-8"})
            continue
        if not text.strip():
            continue
        try:
            entry = _parse_line(number, json.loads(text))
        except json.JSONDecodeError as exc:
            invalid.append(
                {"path": where, "reason": f"not valid JSON ({exc.msg} at column {exc.colno})"}
            )
        except ValueError as exc:
            invalid.append({"path": where, "reason": str(exc)})
        else:
            entries.append(entry)
    return entries, invalid


def _parse_line(number: int, value: object) -> ManifestEntry:
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    source = value.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("missing 'source' (the image's path or URI)")
    usage_value = value.get("usage", "")
    if usage_value is None:
        usage_value = ""
    if not isinstance(usage_value, str) or usage_value.upper() not in USAGES:
        raise ValueError(
            f"unknown usage {usage_value!r}; expected TRAIN, EVAL, TEST, INFERENCE or none"
        )
    usage: Usage = next(u for u in USAGES if u == usage_value.upper())
    annotations = value.get("annotation")
    if not isinstance(annotations, list) or not annotations:
        raise ValueError("no 'annotation': unlabelled samples cannot be used for classification")
    names: list[str] = []
    for annotation in annotations:
        if not isinstance(annotation, dict):
            raise ValueError("an 'annotation' item is not a JSON object")
        kind = annotation.get("type", CLASSIFICATION_TYPE)
        if kind != CLASSIFICATION_TYPE:
            raise ValueError(f"annotation type {kind!r} is not {CLASSIFICATION_TYPE}")
        label = annotation.get("name")
        if not isinstance(label, str) or not label.strip():
            raise ValueError("an annotation has no 'name' (the class label)")
        if label not in names:
            names.append(label)
    if len(names) > 1:
        raise ValueError(
            f"{len(names)} labels ({', '.join(names)}): multi-label samples are not supported"
        )
    return ManifestEntry(line=number, source=source.strip(), label=names[0], usage=usage)


def find_manifest(content: Path, manifest: str | None) -> PurePosixPath:
    """The manifest named by ``--manifest``, or the only one at the top or one level down."""
    if manifest:
        try:
            relative = safe_relative(manifest)
        except UnsafeNameError as exc:
            raise DatasetError("InvalidArgument", f"--manifest {manifest!r} {exc}") from None
        if not content.joinpath(*relative.parts).is_file():
            raise DatasetError(
                "InvalidFormat", f"the manifest {manifest} named by --manifest is not in the data"
            )
        return relative
    found = sorted(
        path.relative_to(content).as_posix()
        for pattern in ("*", "*/*")
        for path in content.glob(pattern)
        if path.suffix in MANIFEST_SUFFIXES and path.is_file() and not is_junk(path.name)
    )
    if len(found) != 1:
        detail = f"found {', '.join(found)}" if found else "found none"
        raise DatasetError(
            "InvalidFormat",
            f"the Manifest format needs exactly one *.manifest or *.jsonl file at the top "
            f"(or one folder down), {detail}; name it with spec.format's manifest field",
        )
    return PurePosixPath(found[0])


def _resolve_source(content: Path, manifest: PurePosixPath, source: str) -> PurePosixPath | None:
    """The file ``source`` names inside ``content``, or ``None`` when it is not there.

    Raises :class:`UnsafeNameError` for a relative source that would leave the data set.
    """
    if "://" in source:
        scheme, _, rest = source.partition("://")
        if scheme.lower() not in ("s3", "obs", "file"):
            raise ValueError(f"source scheme {scheme}:// is not supported")
        parts = [p for p in rest.split("/") if p]
        if scheme.lower() != "file":
            parts = parts[1:]  # the bucket
    elif source.startswith("/"):
        parts = [p for p in source.split("/") if p]
    else:
        # Relative to the manifest's folder; ".." is fine while it stays in the data set.
        relative = safe_relative(resolve_link(manifest, source, hard=False).as_posix())
        return relative if content.joinpath(*relative.parts).is_file() else None
    base = manifest.parent
    # An absolute location from the exporting store: match the longest suffix that exists.
    for start in range(len(parts)):
        try:
            suffix = safe_relative("/".join(parts[start:]))
        except UnsafeNameError:
            continue
        for candidate in (base / suffix, suffix):
            if content.joinpath(*candidate.parts).is_file():
                return candidate
    return None


def scan_manifest(content: Path, manifest: str | None) -> Layout:
    """Scan a manifest data set below ``content``."""
    manifest_path = find_manifest(content, manifest)
    base = manifest_path.parent
    with content.joinpath(*manifest_path.parts).open("rb") as handle:
        entries, invalid = parse_manifest(handle, manifest_path.as_posix())
    layout = Layout(candidates=[], invalid=invalid, data_root=base, manifest=manifest_path)
    seen: dict[PurePosixPath, int] = {}
    for entry in entries:
        where = f"{manifest_path.as_posix()}:{entry.line}"
        try:
            resolved = _resolve_source(content, manifest_path, entry.source)
        except UnsafeNameError as exc:
            layout.invalid.append({"path": where, "reason": f"source {entry.source!r} {exc}"})
            continue
        except ValueError as exc:
            layout.invalid.append({"path": where, "reason": str(exc)})
            continue
        if resolved is None:
            layout.invalid.append(
                {"path": where, "reason": f"source {entry.source!r} is not in the data set"}
            )
            continue
        if resolved in seen:
            layout.invalid.append(
                {"path": where, "reason": f"duplicate of line {seen[resolved]} ({resolved})"}
            )
            continue
        seen[resolved] = entry.line
        key = resolved.relative_to(base) if resolved.is_relative_to(base) else resolved
        layout.candidates.append(
            Candidate(path=resolved, label=entry.label, usage=entry.usage, key=key.as_posix())
        )
    referenced = {*seen, manifest_path}
    layout.unreferenced = sum(
        1 for path in _walk_files(content) if PurePosixPath(_rel(content, path)) not in referenced
    )
    return layout
