"""The import direction of the layers, read from the source (every ``import`` statement, lazy ones too).

symbolic/ imports nothing from fem, particles, bridge, app or report; particles/ imports no FE
backend (dolfinx, scikit-fem, symfp.fem); fem/ never imports torch or the particles; fem/skfem never
imports dolfinx (or symfp.fem.dolfinx) and fem/dolfinx never scikit-fem; the backend-neutral fem
modules import neither backend.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[2] / "symfp"


def imports_of(path: pathlib.Path, top_level: bool = False) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved).

    ``top_level``: only the statements run when the module is imported (not those inside functions).
    """
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        package = parts[:-1]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree)
    if top_level:
        def outside_functions(n):
            yield n
            for c in ast.iter_child_nodes(n):
                if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    yield from outside_functions(c)
        nodes = outside_functions(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def files(sub: str) -> list[pathlib.Path]:
    return sorted((PKG / sub).rglob("*.py"))


# symbolic/: the public API delegates lazily (sde.simulate → particles, fp.solve → the registry), so
# its rule reads module-level imports, and test_symbolic_core_loads_no_backend checks it at run time
RULES = [
    ("symbolic", ("symfp.fem", "symfp.particles", "symfp.bridge", "symfp.app", "symfp.report", "dolfinx",
                  "skfem", "torch", "mpi4py", "petsc4py")),
    ("particles", ("symfp.fem", "dolfinx", "skfem", "petsc4py", "ufl")),
    ("fem", ("torch", "symfp.particles", "symfp.bridge", "symfp.app", "symfp.report")),
    ("fem/skfem", ("dolfinx", "symfp.fem.dolfinx", "petsc4py", "ufl", "mpi4py")),
    ("fem/dolfinx", ("skfem", "symfp.fem.skfem")),
]


@pytest.mark.parametrize("sub,forbidden", RULES, ids=[r[0] for r in RULES])
def test_layer_imports_nothing_forbidden(sub, forbidden):
    bad = []
    for f in files(sub):
        for name in imports_of(f, top_level=(sub == "symbolic")):
            if any(name == p or name.startswith(p + ".") for p in forbidden):
                bad.append(f"{f.relative_to(PKG)}: {name}")
    # the one sanctioned crossing: particles' absorbing-set normaliser reaches the bridge's
    # MeshComplement lazily when handed a mesh (the bridge imports both worlds)
    bad = [b for b in bad if not b.startswith("particles/absorbing.py: symfp.bridge")]
    assert not bad, bad


def test_neutral_fem_modules_import_no_backend():
    neutral = [f for f in (PKG / "fem").glob("*.py") if f.name not in ("__init__.py", "domain.py")]
    bad = [f"{f.name}: {n}" for f in neutral for n in imports_of(f)
           if n.startswith(("dolfinx", "skfem", "symfp.fem.dolfinx", "symfp.fem.skfem", "petsc4py", "mpi4py"))
           and not (f.name == "registry.py")]
    assert not bad, bad


def test_the_checker_sees_lazy_and_relative_imports():
    # guard against a checker that cannot fail: it must see a relative import inside a function
    names = imports_of(PKG / "particles" / "absorbing.py")
    assert "symfp.bridge.absorbing" in names and "torch" in names


def test_symbolic_core_loads_no_backend():
    import subprocess
    import sys

    code = ("import importlib, pkgutil, sys, symfp.symbolic as s; "
            "[importlib.import_module(f'symfp.symbolic.{m.name}') "
            "for m in pkgutil.iter_modules(s.__path__)]; "
            "bad = [m for m in sys.modules if m.startswith(('symfp.fem', 'symfp.particles', 'symfp.bridge', "
            "'symfp.app', 'symfp.report', 'dolfinx', 'skfem', 'torch', 'mpi4py'))]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PKG.parent, env={**__import__("os").environ, "PYTHONPATH": str(PKG.parent)})
    assert out.returncode == 0, out.stderr
