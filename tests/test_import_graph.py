"""The package's modules import each other one way only (DESIGN.md: imports point down).

An AST pass over ``src/dataprune`` builds the graph of intra-package imports - module level,
inside functions (a lazy import is still a cycle) and under ``if TYPE_CHECKING:`` (a cycle
hidden from the interpreter is still one for the reader and for type checkers) - and every
strongly connected component with more than one module is a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "dataprune"


def module_names() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for file in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(file.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = file
    return out


def _imports(tree: ast.AST):
    """Every import node of ``tree``, ``if TYPE_CHECKING:`` bodies included."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from .x import name`` where ``name`` is
    a submodule counts as importing the submodule)."""
    mods = module_names()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, file in mods.items():
        is_pkg = file.name == "__init__.py"
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in _imports(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    anchor = base[: len(base) - (node.level - 1)]
                    target = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import a.b.c` of a non-module: its package
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith(PACKAGE):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_checker_finds_a_cycle_and_sees_type_checking_imports() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]
    assert cycles({"a": {"b"}, "b": set()}) == []
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
                     "def f():\n    import y\n")
    assert sorted(a.name for n in _imports(tree) if isinstance(n, ast.Import) for a in n.names) == ["x", "y"]


def test_graph_sees_lazy_imports() -> None:
    g = import_graph()
    assert "dataprune.bench.report" in g["dataprune.bench.runner"]
    assert "dataprune.bench.runner" not in g["dataprune.bench.report"]
    assert "dataprune.train.imagefolder" in g["dataprune.train.data"]  # under TYPE_CHECKING


def _cycle_names() -> list[set[str]]:
    return cycles(import_graph())


def test_no_import_cycle_in_bench() -> None:
    bad = [c for c in _cycle_names() if any(m.startswith("dataprune.bench") for m in c)]
    assert bad == [], f"import cycles: {bad}"


def test_no_import_cycle_anywhere() -> None:
    assert _cycle_names() == []
