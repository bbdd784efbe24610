"""Every condition reason the operator can set is explained in docs/troubleshooting.md.

The reasons are collected from the code, not from a list kept by hand, so a new reason
fails this test until it is documented. They come from five places:

- ``REASON_*`` constants (in ``constants.py`` and the modules of each kind) that some code
  uses; one defined but used nowhere is not a reason the operator can set;
- string literals in a reason position: a ``reason=`` keyword, or the reason argument of
  ``ConditionUpdate``, ``RunStatus.set``, ``SpecError``, ``Wait``, ``WaitingError`` and the
  Dataset's ``ready`` helper, a ``"reason"`` key of a dict, and the fallback in
  ``<result>.get("reason") or "JobFailed"``;
- the exit-code tables (``EXIT_REASONS``) that name a worker's failure when its pod left
  no result;
- reasons passed through from elsewhere, which no literal in the operator names: the
  failure reasons of each worker image (``images/*/kubearts_*/errors.py``, ``EXIT_CODES``),
  copied from the worker's result into conditions; the kubelet's waiting reasons a stuck
  pod reports (``_STUCK_REASONS`` in ``workloads.py``); and the Job controller's reasons
  for a failed Job (:data:`JOB_CONTROLLER_REASONS`).

A reason counts as documented when it appears in backquotes, e.g. ```DownloadFailed```.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPERATOR = REPO / "operator" / "kubearts"
IMAGES = REPO / "images"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"

#: Reasons of a Job's ``Failed`` condition, set by Kubernetes' Job controller and copied
#: into the run's conditions by ``workloads.job_failure`` when the pod left no result.
JOB_CONTROLLER_REASONS = frozenset({"BackoffLimitExceeded", "DeadlineExceeded"})

#: Calls whose positional argument at this index is a condition reason.
REASON_ARGUMENT = {
    "ConditionUpdate": 2,
    "set": 2,  # RunStatus.set(type, status, reason, message)
    "set_condition": 3,
    "SpecError": 3,
    "Wait": 1,
    "WaitingError": 1,
    "ready": 1,  # dataset_status.ready(status, reason, message)
}


def _modules(root: Path) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _assigned(node: ast.AST) -> tuple[str, ast.AST | None] | None:
    """``(name, value)`` of ``NAME = value`` or ``NAME: T = value``."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return target.id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None


def _used_names(tree: ast.Module) -> set[str]:
    """Names read anywhere (``NAME`` or ``module.NAME``), imports included."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


def _reason_constants(trees: list[ast.Module]) -> dict[str, str]:
    """``REASON_*`` constants that are used somewhere, by name → value."""
    defined: dict[str, str] = {}
    used: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            found = _assigned(node)
            if found and found[0].startswith("REASON_"):
                value = _string(found[1])
                if value is not None:
                    defined[found[0]] = value
        used |= _used_names(tree)
    return {name: value for name, value in defined.items() if name in used}


def _literal_reasons(tree: ast.Module) -> set[str]:
    """String literals in the reason positions listed in the module docstring."""
    reasons: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "reason" and _string(keyword.value):
                    reasons.add(str(_string(keyword.value)))
            index = REASON_ARGUMENT.get(_call_name(node))
            if index is not None and len(node.args) > index and _string(node.args[index]):
                reasons.add(str(_string(node.args[index])))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _string(key) == "reason" and _string(value):
                    reasons.add(str(_string(value)))
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            first = node.values[0]
            reads_reason = any(
                isinstance(sub, ast.Call)
                and _call_name(sub) == "get"
                and sub.args
                and _string(sub.args[0]) == "reason"
                for sub in ast.walk(first)
            )
            if reads_reason:
                reasons.update(str(_string(v)) for v in node.values[1:] if _string(v))
    return reasons


def _table_values(tree: ast.Module, name: str, constants: dict[str, str]) -> set[str]:
    """The string values (literals or ``REASON_*`` names) of the table assigned to ``name``."""
    values: set[str] = set()
    for node in ast.walk(tree):
        found = _assigned(node)
        if not found or found[0] != name or found[1] is None:
            continue
        for element in ast.walk(found[1]):
            if _string(element):
                values.add(str(_string(element)))
            elif isinstance(element, ast.Name) and element.id in constants:
                values.add(constants[element.id])
    return values


def _table_keys(tree: ast.Module, name: str) -> set[str]:
    for node in ast.walk(tree):
        found = _assigned(node)
        if found and found[0] == name and isinstance(found[1], ast.Dict):
            return {str(_string(key)) for key in found[1].keys if _string(key)}
    return set()


def operator_reasons() -> dict[str, set[str]]:
    """Every reason the operator can set, by where it was found."""
    trees = [tree for _, tree in _modules(OPERATOR)]
    all_constants: dict[str, str] = {}
    for tree in trees:
        for node in ast.walk(tree):
            found = _assigned(node)
            if found and found[0].startswith("REASON_") and _string(found[1]):
                all_constants[found[0]] = str(_string(found[1]))
    found: dict[str, set[str]] = {
        "REASON_* constants": set(_reason_constants(trees).values()),
        "literals in reason positions": set().union(*(_literal_reasons(t) for t in trees)),
        "exit-code tables": set().union(
            *(_table_values(t, "EXIT_REASONS", all_constants) for t in trees)
        ),
        "waiting pods": set().union(
            *(_table_values(t, "_STUCK_REASONS", all_constants) for t in trees)
        ),
        "worker images": set().union(
            *(
                _table_keys(ast.parse(path.read_text()), "EXIT_CODES")
                for path in sorted(IMAGES.glob("*/kubearts_*/errors.py"))
            )
        ),
        "the Job controller": set(JOB_CONTROLLER_REASONS),
    }
    return found


def documented(text: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z][A-Za-z0-9]*)`", text))


def test_the_collection_finds_each_kind_of_source() -> None:
    """The collector itself works: each source yields the reasons known to be there."""
    found = operator_reasons()
    assert {"InvalidSpec", "DataImmutable", "ModelNotReady", "JobMissing"} <= found[
        "REASON_* constants"
    ]
    assert {"RunSpec", "JobFailed"} <= found["literals in reason positions"]
    assert {"InternalError", "DataUnavailable", "SourceUnavailable", "RemoveFailed"} <= found[
        "exit-code tables"
    ]
    assert {"ImagePullBackOff", "CrashLoopBackOff"} <= found["waiting pods"]
    assert {"PredictionFailed", "InputUnavailable", "RegistryConflict"} <= found["worker images"]
    # Defined in constants.py but set nowhere: not a reason a user can meet.
    every = set().union(*found.values())
    assert "ReconcileError" not in every


def test_every_reason_is_in_the_troubleshooting_guide() -> None:
    text = TROUBLESHOOTING.read_text()
    explained = documented(text)
    missing = {
        source: sorted(reasons - explained)
        for source, reasons in operator_reasons().items()
        if reasons - explained
    }
    assert not missing, (
        "docs/troubleshooting.md does not explain these condition reasons (write each in "
        f"backquotes with what it means and what to do), by where they come from: {missing}"
    )
