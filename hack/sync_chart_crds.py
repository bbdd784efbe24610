"""Copy the CRDs from ``crds/`` into the Helm chart's templates, or check that the copies match.

``crds/`` is the single source of the six kubearts.io CRDs. The chart carries them as
templates (``charts/kubearts/templates/crds/``), not in its ``crds/`` folder, because Helm
installs that folder once and never upgrades it; as templates, ``helm upgrade`` updates the
CRDs together with the operator that expects them. Each copy is the source file verbatim,
wrapped in ``{{- if .Values.crds.install }}`` and given a ``helm.sh/resource-policy: keep``
annotation when ``crds.keep`` is set.

    python hack/sync_chart_crds.py           # write the copies (and remove stale ones)
    python hack/sync_chart_crds.py --check   # exit 1, naming every copy that has drifted

The functions are importable so that tests check the same thing ``--check`` does.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import yaml

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
#: The single source of the CRDs.
DEFAULT_SOURCE_DIR: Final = REPO_ROOT / "crds"
#: Where the chart's generated copies live.
DEFAULT_TARGET_DIR: Final = REPO_ROOT / "charts" / "kubearts" / "templates" / "crds"
#: Which files in both folders are CRDs of ours (one CRD per file).
CRD_GLOB: Final = "kubearts.io_*.yaml"

#: Annotation that makes ``helm uninstall`` leave an object in place.
KEEP_ANNOTATION: Final = "helm.sh/resource-policy: keep"

_TOP_LEVEL_KEY = re.compile(r"^[A-Za-z_][\w-]*:")
_METADATA = re.compile(r"^metadata:\s*$")


class CrdSourceError(ValueError):
    """A file in ``crds/`` cannot be turned into a chart template."""


def _check_source(text: str, name: str) -> None:
    """Refuse anything but exactly one CustomResourceDefinition with a block-style metadata."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise CrdSourceError(f"crds/{name} is not valid YAML: {exc}") from exc
    if len(documents) != 1:
        raise CrdSourceError(
            f"crds/{name} holds {len(documents)} YAML documents; put exactly one CRD in each file"
        )
    document = documents[0]
    if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
        raise CrdSourceError(f"crds/{name} is not a CustomResourceDefinition (kind is missing)")


def _metadata_block(lines: list[str], name: str) -> tuple[int, int, str]:
    """Locate the top-level ``metadata:`` block.

    Returns the index of the ``metadata:`` line, the index one past the block's last line,
    and the indentation of the block's keys.
    """
    starts = [i for i, line in enumerate(lines) if _METADATA.match(line)]
    if len(starts) != 1:
        raise CrdSourceError(
            f"crds/{name} needs exactly one top-level 'metadata:' line in block style"
        )
    start = starts[0]
    end = start + 1
    while end < len(lines) and not _TOP_LEVEL_KEY.match(lines[end]) and lines[end] != "---":
        end += 1
    body = [
        line
        for line in lines[start + 1 : end]
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not body:
        raise CrdSourceError(f"crds/{name} has an empty metadata block")
    indent = body[0][: len(body[0]) - len(body[0].lstrip())]
    return start, end, indent


def _with_keep_annotation(text: str, name: str) -> str:
    """Insert the conditional keep annotation into the CRD's metadata, leaving the rest as is."""
    lines = text.splitlines()
    start, end, indent = _metadata_block(lines, name)
    annotations = [
        i
        for i in range(start + 1, end)
        if lines[i].startswith(indent + "annotations:") and not lines[i].startswith(indent + " ")
    ]
    if annotations:
        at = annotations[0]
        if lines[at].strip() != "annotations:":
            raise CrdSourceError(
                f"crds/{name}: write metadata.annotations in block style "
                "(one 'key: value' per line) so the chart can add its annotation"
            )
        child = indent * 2
        insert = [
            f"{child}{{{{- if .Values.crds.keep }}}}",
            f"{child}{KEEP_ANNOTATION}",
            f"{child}{{{{- end }}}}",
        ]
        lines[at + 1 : at + 1] = insert
    else:
        insert = [
            f"{indent}{{{{- if .Values.crds.keep }}}}",
            f"{indent}annotations:",
            f"{indent * 2}{KEEP_ANNOTATION}",
            f"{indent}{{{{- end }}}}",
        ]
        lines[start + 1 : start + 1] = insert
    return "\n".join(lines)


def chart_template(text: str, name: str) -> str:
    """The chart template for the CRD source ``text`` read from ``crds/<name>``."""
    _check_source(text, name)
    # Helm would read "{{" in a description as a template action; emit it literally.
    escaped = text.replace("{{", '{{ "{{" }}')
    body = _with_keep_annotation(escaped, name)
    return (
        f"{{{{- /* Generated by hack/sync_chart_crds.py from crds/{name}: do not edit. */}}}}\n"
        "{{- if .Values.crds.install }}\n"
        f"{body.rstrip()}\n"
        "{{- end }}\n"
    )


def expected_copies(source_dir: Path = DEFAULT_SOURCE_DIR) -> dict[str, str]:
    """File name → the chart template it should contain, for every CRD in ``source_dir``."""
    sources = sorted(source_dir.glob(CRD_GLOB))
    if not sources:
        raise CrdSourceError(f"no {CRD_GLOB} files in {source_dir}")
    return {
        path.name: chart_template(path.read_text(encoding="utf-8"), path.name) for path in sources
    }


def drifted(
    source_dir: Path = DEFAULT_SOURCE_DIR, target_dir: Path = DEFAULT_TARGET_DIR
) -> list[str]:
    """Copies in ``target_dir`` that are missing, differ from their source, or have none.

    Each entry is a line for people: the copy's path and what is wrong with it.
    """
    expected = expected_copies(source_dir)
    problems: list[str] = []
    for name, text in expected.items():
        copy = target_dir / name
        if not copy.is_file():
            problems.append(f"{copy}: missing")
        elif copy.read_text(encoding="utf-8") != text:
            problems.append(f"{copy}: differs from {source_dir / name}")
    for copy in sorted(target_dir.glob(CRD_GLOB)):
        if copy.name not in expected:
            problems.append(f"{copy}: stale, {source_dir / copy.name} does not exist")
    return problems


def write(
    source_dir: Path = DEFAULT_SOURCE_DIR, target_dir: Path = DEFAULT_TARGET_DIR
) -> list[Path]:
    """Write every copy that differs, delete stale ones; return the paths changed."""
    expected = expected_copies(source_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for name, text in expected.items():
        copy = target_dir / name
        if not copy.is_file() or copy.read_text(encoding="utf-8") != text:
            copy.write_text(text, encoding="utf-8")
            changed.append(copy)
    for copy in sorted(target_dir.glob(CRD_GLOB)):
        if copy.name not in expected:
            copy.unlink()
            changed.append(copy)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 and name every copy that differs from crds/",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE_DIR, help="the CRD folder")
    parser.add_argument(
        "--target", type=Path, default=DEFAULT_TARGET_DIR, help="the chart's CRD template folder"
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = drifted(args.source, args.target)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print(
                    "The chart's CRDs differ from crds/: run `python hack/sync_chart_crds.py`.",
                    file=sys.stderr,
                )
                return 1
            return 0
        for path in write(args.source, args.target):
            print(f"updated {path}")
    except CrdSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
