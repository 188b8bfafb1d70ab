"""No import cycles among restart_guard's modules (``adapters/`` counted as restart_guard.adapters).

The graph is read from the source with ``ast``, so nothing is imported: an
edge is every ``import``/``from … import`` that can run, at module level or
inside a function (a lazy import still ties the two modules together).
Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Package name → the folder it is shipped from (pyproject's package-dir).
PACKAGES = {
    "restart_guard": ROOT / "src" / "restart_guard",
    "restart_guard.adapters": ROOT / "adapters",
}

Graph = dict[str, set[str]]


def modules(packages: Mapping[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Module name → (file, is a package ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join([package, *parts])] = (path, is_package)
    return found


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def import_graph(packages: Mapping[str, Path]) -> Graph:
    """Module → the modules of ``packages`` it imports."""
    known = modules(packages)
    graph: Graph = {}
    for name, (path, is_package) in known.items():
        targets: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name in known)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(name, is_package, node)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in known:
                        targets.add(submodule)
                    elif base in known:
                        targets.add(base)
        graph[name] = targets - {name}
    return graph


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle per strongly connected group of modules, as ``[a, b, …, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_through(graph, group) for group in groups]


def _path_through(graph: Graph, group: set[str]) -> list[str]:
    """A concrete cycle inside ``group``, to name in the failure message."""
    start = min(group)
    path, seen = [start], {start}
    while True:
        here = path[-1]
        following = sorted(t for t in graph[here] if t in group)
        if start in following and len(path) > 1:
            return [*path, start]
        fresh = [t for t in following if t not in seen]
        target = fresh[0] if fresh else following[0]
        if target in seen:
            return [*path[path.index(target) :], target]
        path.append(target)
        seen.add(target)


def test_restart_guard_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGES)
    assert "restart_guard.adapters.telegram" in graph  # adapters/ is part of the graph
    found = cycles(graph)
    assert not found, "import cycles (break each by moving what both need below both):\n" + (
        "\n".join(" -> ".join(cycle) for cycle in found)
    )


def test_the_check_finds_a_cycle_and_ignores_type_checking_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def f():\n    from pkg import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import thing\n"
    )
    (package / "e.py").write_text("from . import d\n")
    graph = import_graph({"pkg": package})
    assert graph["pkg.d"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
