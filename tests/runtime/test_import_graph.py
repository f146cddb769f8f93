"""The runtime's import graph has no cycle, and the runtime does not reach the migrator.

Read from the source with ``ast`` (nothing is imported): every module-level import of
``workers``, including those under ``if TYPE_CHECKING:`` -- a cycle that holds only
because one edge is hidden from the interpreter is still a cycle for the reader and for
mypy. Imports inside functions are deliberate late imports and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.harness import REPO

PACKAGE = REPO / "workers"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run at import time, descending into if/try blocks (not functions)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _top_level(node.body) + _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += _top_level(node.body) + _top_level(node.orelse) + _top_level(node.finalbody)
            for handler in node.handlers:
                out += _top_level(handler.body)
    return out


def imports_of(module: str) -> set[str]:
    """The ``workers`` modules ``module`` imports at module level."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in MODULES:
                    found.add(sub)
                elif node.module in MODULES:
                    found.add(node.module)
    return found - {module}


GRAPH = {m: imports_of(m) for m in MODULES}


def cycle_through(start: str) -> list[str] | None:
    """An import path from ``start`` back to itself, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(GRAPH[node]):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def reachable(start: str) -> set[str]:
    out: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - out:
            out.add(nxt)
            todo.append(nxt)
    return out


def test_the_graph_is_read_from_the_source() -> None:
    # The edges this test exists for: were they missing, every check below would pass.
    assert "workers.runtime.queries" in GRAPH["workers.runtime.context"]
    assert "workers.runtime.context" in GRAPH["workers.runtime.handlers"]  # TYPE_CHECKING


def test_no_runtime_module_is_on_an_import_cycle() -> None:
    cycles = [
        " -> ".join(c)
        for m in sorted(GRAPH)
        if m.startswith("workers.runtime")
        if (c := cycle_through(m)) is not None
    ]
    assert cycles == []


def test_the_runtime_does_not_reach_the_migrator() -> None:
    for module in (m for m in GRAPH if m.startswith("workers.runtime")):
        assert "workers.db.migrate" not in reachable(module), module
