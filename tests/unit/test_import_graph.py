"""No import cycles among the project's own modules.

A cycle means two modules cannot be understood, tested or changed apart; the usual fix is
a small module both can depend on (a Protocol, a dataclass, a constant). The graph is built
from the source with ``ast`` (nothing is imported), over the source roots ``operator/``,
each image's folder under ``images/`` and ``hack/``. Every import statement counts, also
the ones under ``if TYPE_CHECKING:`` and inside functions: they hide a cycle from the
interpreter, not from a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

REPO: Final = Path(__file__).resolve().parents[2]

# Cycles that are known and owned by someone else, each as the sorted tuple of its modules.
# Empty: every source root is acyclic today; a cycle added here needs a named owner.
KNOWN_CYCLES: Final[frozenset[tuple[str, ...]]] = frozenset()


def source_roots() -> list[Path]:
    """The folders whose contents are importable by their path, as ruff's ``src`` lists."""
    images = sorted(p for p in (REPO / "images").iterdir() if p.is_dir())
    return [REPO / "operator", *images, REPO / "hack"]


def module_name(root: Path, path: Path) -> str:
    """``root/a/b/c.py`` is ``a.b.c``; ``root/a/b/__init__.py`` is the package ``a.b``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Every project module by dotted name, skipping tests and caches."""
    modules: dict[str, Path] = {}
    for root in source_roots():
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).parts
            if "__pycache__" in rel or "tests" in rel or ".venv" in rel:
                continue
            modules[module_name(root, path)] = path
    return modules


def _base_package(module: str, path: Path, level: int) -> str:
    """The package a relative import with ``level`` dots starts from."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return package


def _deepest_known(name: str, modules: dict[str, Path]) -> str | None:
    """``a.b.c`` resolves to the longest prefix that is a project module, if any."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules that ``module`` imports, wherever the statement sits."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _deepest_known(alias.name, modules)
                if target:
                    yield target
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _base_package(module, path, node.level)
                source = ".".join(p for p in (base, node.module or "") if p)
            else:
                source = node.module or ""
            for alias in node.names:
                # `from pkg import mod` imports the submodule; `from mod import name`, the
                # module (a package's __init__ when mod is a package).
                target = _deepest_known(f"{source}.{alias.name}", modules) or _deepest_known(
                    source, modules
                )
                if target:
                    yield target


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (self-imports dropped)."""
    modules = project_modules()
    return {
        name: {t for t in imports_of(name, path, modules) if t != name}
        for name, path in modules.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A concrete path ``a -> b -> ... -> a`` inside a component, for the failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = min(n for n in graph[path[-1]] if n in members)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_the_graph_sees_the_local_cluster_modules() -> None:
    graph = import_graph()
    assert "localcluster.runtime" in graph["localcluster.agent"]
    assert "kubearts.k8s" in {m for deps in graph.values() for m in deps}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("from . import network\n", "localcluster.network", id="from-dot-module"),
        pytest.param("from .layout import Layout\n", "localcluster.layout", id="from-dot-name"),
        pytest.param("from localcluster import pki\n", "localcluster.pki", id="from-pkg-module"),
        pytest.param("import localcluster.nodes\n", "localcluster.nodes", id="import-dotted"),
        pytest.param("from localcluster import main\n", "localcluster", id="name-in-init"),
    ],
)
def test_imports_resolve_to_modules_and_packages(
    tmp_path: Path, source: str, expected: str
) -> None:
    modules = {
        name: Path()
        for name in (
            "localcluster",
            "localcluster.network",
            "localcluster.layout",
            "localcluster.pki",
            "localcluster.nodes",
        )
    }
    path = tmp_path / "agent.py"
    path.write_text(source)
    assert list(imports_of("localcluster.agent", path, modules)) == [expected]


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if tuple(c) not in KNOWN_CYCLES]
    report = "\n".join(" -> ".join(one_cycle(graph, c)) for c in cycles)
    assert not cycles, f"import cycles among project modules:\n{report}"
