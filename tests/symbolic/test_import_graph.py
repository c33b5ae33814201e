"""The symbolic core's import graph, read from the source: no cycle among symfp.symbolic modules, and
every import of one core module by another runs at module level (no function-level import that
would only hide a cycle). The lazy imports left are the public API's delegations to the numeric
layers (``sde.simulate`` → particles), checked by tests/fem/test_import_direction.py.
"""

from __future__ import annotations

import ast
import pathlib

CORE = pathlib.Path(__file__).resolve().parents[2] / "symfp" / "symbolic"
PREFIX = "symfp.symbolic"


def _module_name(path: pathlib.Path) -> str:
    return PREFIX if path.stem == "__init__" else f"{PREFIX}.{path.stem}"


def _resolve(node: ast.ImportFrom, package: list[str]) -> list[str]:
    """Absolute names a ``from ... import`` statement may bind (the module and module.name)."""
    if node.level:
        base = package[: len(package) - node.level + 1]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [mod] + [f"{mod}.{a.name}" for a in node.names]


def core_imports(source: str, module: str) -> dict[str, bool]:
    """``{core module imported: True if at module level}`` for one module's source.

    A name counts at module level when any statement importing it runs on import (outside every
    function); ``from . import x`` counts as importing the sub-module x.
    """
    tree = ast.parse(source)
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")
    if module == PREFIX:
        package = module.split(".")
    out: dict[str, bool] = {}

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = _resolve(child, package)
            for n in names:
                if n.startswith(PREFIX + ".") and n.count(".") == 2:  # symfp.symbolic.<module>
                    out[n] = out.get(n, False) or inner
            visit(child, inner)

    visit(tree, True)
    out.pop(module, None)
    return out


def import_graph(sources: dict[str, str]) -> dict[str, dict[str, bool]]:
    """``{module: {imported core module: at module level}}``, restricted to the given modules."""
    graph = {m: core_imports(src, m) for m, src in sources.items()}
    return {m: {k: v for k, v in e.items() if k in graph} for m, e in graph.items()}


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _core_sources() -> dict[str, str]:
    return {_module_name(p): p.read_text() for p in sorted(CORE.glob("*.py"))}


def test_no_import_cycle_among_the_symbolic_modules():
    graph = import_graph(_core_sources())
    assert len(graph) >= 15  # every module of the core was read
    assert cycles(graph) == []


def test_core_modules_import_each_other_at_module_level_only():
    graph = import_graph(_core_sources())
    lazy = [f"{m} -> {k}" for m, e in graph.items() for k, top in e.items() if not top]
    assert lazy == []


def test_the_checker_finds_a_cycle_hidden_in_a_function():
    # a guard against a checker that cannot fail: a -> b at module level, b -> a inside a function
    src = {
        f"{PREFIX}.a": "from .b import g\n",
        f"{PREFIX}.b": "def g():\n    from .a import f\n    return f\n",
        f"{PREFIX}.c": "from . import a\nimport symfp.symbolic.b\n",
    }
    graph = import_graph(src)
    assert graph[f"{PREFIX}.b"] == {f"{PREFIX}.a": False}
    assert graph[f"{PREFIX}.c"] == {f"{PREFIX}.a": True, f"{PREFIX}.b": True}
    assert cycles(graph) == [[f"{PREFIX}.a", f"{PREFIX}.b"]]


def test_the_two_former_cycles_are_gone_in_the_real_graph():
    # recursion <-> moments <-> sme <-> regularizer and sde <-> fokker_planck <-> weakform (issue 13)
    g = import_graph(_core_sources())
    for low, high in (("moments", "recursion"), ("sme", "recursion"), ("regularizer", "recursion"),
                      ("fokker_planck", "sde"), ("weakform", "sde"), ("weakform", "fokker_planck")):
        assert f"{PREFIX}.{high}" not in g[f"{PREFIX}.{low}"], (low, high)
