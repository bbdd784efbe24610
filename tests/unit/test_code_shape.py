"""The operator stays readable as kinds arrive: no module over 700 lines and no function
over 80, so each piece of a kind (plan, builder, handler) fits in one reading."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OPERATOR = Path(__file__).resolve().parents[2] / "operator" / "kubearts"
MODULES = sorted(OPERATOR.rglob("*.py"))
MAX_MODULE_LINES = 700
MAX_FUNCTION_LINES = 80


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(OPERATOR)))
def test_module_is_at_most_700_lines(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module.name} has {lines} lines; split it by concern"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(OPERATOR)))
def test_functions_are_at_most_80_lines(module: Path) -> None:
    tree = ast.parse(module.read_text())
    long = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert not long, f"{module.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
