r"""Spec files: a derivation written as a Python file that the ``symfp`` command runs.

A spec is an ordinary Python script (it may also run on its own) that builds its model with the public
API and leaves a few well-known names in its namespace. The command looks for these names only:

=============== ============================================================================================
name            meaning
=============== ============================================================================================
``model``       an :class:`symfp.SGD` (or any :class:`symfp.Recursion`) — the algorithm; **or**
``sde``         an :class:`symfp.SDE` given directly (used when there is no ``model``, or to override the
                modified equation of ``model``). One of the two is required.
``params``      ``{symbol or name: number}`` substituted (``.subs``) into model and SDE before solving or
                simulating; the derivation itself stays symbolic. Default ``{}``.
``order``       order of the stochastic modified equation of ``model`` (default 1; ``--order`` overrides).
``mesh``        a symfp/dolfinx mesh, or better a zero-argument callable returning one, so that
                ``symfp derive`` never builds a mesh. Needed by ``solve``.
``p0``          initial density of the Fokker–Planck solve (SymPy expression in the state, callable or a
                point). Needed by ``solve``.
``t_end``       final time (t = kη: an SGD step is dt = η). Needed by ``solve`` and ``simulate``.
``dt``          FE time step. Needed by ``solve``.
``solve_options`` optional ``dict(stabilisation=..., scheme=..., ...)``: keyword arguments passed to
                the FE forward solve (:func:`symfp.fem.dolfinx.forward.solve`:
                ``stabilisation`` "auto", "fct",
                "upwind", "none", "gibbs", "supg"; ``scheme`` "bdf2", "cn", "euler"; also e.g.
                ``petsc_options``, ``negative_tol``, ``wall_tol``); a key the solver does not take
                is an error.
``particles``   ``dict(n=10_000, init=..., seed=0, method="recursion" | "sde", dt=..., scheme=...)``:
                the particle simulation. ``init``: a point, ``{symbol: sympy.stats random variable}``,
                an (n, d) array or a callable ``f(n, generator)`` (default ``p0``, then a point);
                ``method`` defaults to ``"recursion"`` (the exact algorithm) when there is a ``model``,
                else ``"sde"`` (step ``dt``; ``scheme`` "euler" (Euler–Maruyama, default) or "weak2"
                (Platen's weak order-2 scheme), for SDE particles only).
``observables`` optional ``{name: SymPy expression in the state}``: expectations reported over time.
``basins``      optional ``{name: SymPy relation in the state}`` (e.g. ``{"left": th < 0}``): mass per basin.
``exit_time``   optional ``dict(mesh=..., absorbing=["xmax"], start=[...], set=..., n=2000, t_max=...)``:
                mean exit time from FE (:func:`symfp.mean_exit_time` on ``mesh`` — default the main mesh —
                with τ = 0 on the ``absorbing`` boundary parts, the others reflecting) against the exit
                times of ``n`` particles started at ``start`` and absorbed in ``set`` (a
                ``symfp.particles`` absorbing set, or a callable returning one so that ``derive`` never
                imports torch; default: leaving the mesh), censored at ``t_max``; ``method``
                "recursion" (default with a ``model``) or "sde" (with step ``dt``).
``weak_error``  optional ``dict(lrs=[...], observable=expr, t_end=...)``: weak-error study (log–log plot).
``title``       optional one-line title of the report; ``description`` optional paragraph.
=============== ============================================================================================

Sizes: a spec should be small and fast by default and read :func:`size` (the ``SYMFP_SIZE`` environment
variable, set by ``symfp --size large``) to choose bigger meshes or more particles.

Loading runs the file with :func:`runpy.run_path` in a fresh namespace. A missing file, a syntax error,
an exception while running the spec or a spec without ``model``/``sde`` raises :class:`InputError` with a
one-line message naming the file (and line).
"""

from __future__ import annotations

import os
import runpy
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, SymfpError

SIZE_ENV = "SYMFP_SIZE"
KNOWN_NAMES = (
    "model",
    "sde",
    "params",
    "order",
    "mesh",
    "p0",
    "t_end",
    "dt",
    "solve_options",
    "particles",
    "observables",
    "basins",
    "absorbing",
    "exit_mesh",
    "exit_start",
    "weak_error",
    "title",
    "description",
)


def size() -> str:
    """The requested problem size: ``"small"`` (default, fast) or ``"large"`` (``SYMFP_SIZE``)."""
    value = os.environ.get(SIZE_ENV, "small").strip().lower() or "small"
    if value not in ("small", "large"):
        raise InputError(f"{SIZE_ENV}={value!r}: expected 'small' or 'large'")
    return value


@dataclass
class Spec:
    """A loaded spec file: the names the command uses, validated.

    Attributes:
        path: the spec file.
        namespace: everything the file defined.
        model: the recursion (SGD), or None.
        given_sde: an SDE given by the spec, or None.
        params: substitutions for solving and simulating.
        order: order of the modified equation.
    """

    path: Path
    namespace: dict[str, Any] = field(repr=False)
    model: Any = None
    given_sde: Any = None
    params: dict[Any, Any] = field(default_factory=dict)
    order: int = 1
    _sde_by_order: dict[int, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ plain settings
    @property
    def name(self) -> str:
        """The spec's name (file stem), used for report titles and folders."""
        return self.path.stem

    @property
    def title(self) -> str:
        """Report title (``title`` in the spec, else the file name)."""
        return str(self.namespace.get("title") or self.name.replace("_", " "))

    @property
    def description(self) -> str:
        """Optional paragraph describing the spec."""
        return str(self.namespace.get("description") or "")

    def get(self, name: str, default: Any = None) -> Any:
        """A name of the spec namespace (``default`` when absent)."""
        return self.namespace.get(name, default)

    def require(self, name: str, verb: str) -> Any:
        """A name the verb needs, or an :class:`InputError` saying to define it."""
        if name not in self.namespace or self.namespace[name] is None:
            raise InputError(
                f"{self.path}: `symfp {verb}` needs `{name}` in the spec (see symfp/app/spec.py)"
            )
        return self.namespace[name]

    def number(self, name: str, verb: str) -> float:
        """A positive float setting (``t_end``, ``dt``) or an :class:`InputError`."""
        value = self.require(name, verb)
        try:
            out = float(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.path}: `{name}` = {value!r} is not a number") from exc
        if not out > 0:
            raise InputError(f"{self.path}: `{name}` = {out} must be positive")
        return out

    @property
    def state(self) -> tuple:
        """The state symbols (of the model, else of the SDE)."""
        if self.model is not None:
            return tuple(self.model.state)
        return tuple(self.given_sde.state)

    # ------------------------------------------------------------------ pipeline stages
    def sde(self, order: int | None = None) -> Any:
        """The symbolic SDE: the spec's ``sde`` if given, else ``model.sme(order)``.

        Derived once per order (``symfp run`` asks for it in derive, solve, simulate and exit time).
        """
        if self.given_sde is not None:
            return self.given_sde
        order = order or self.order
        if order not in self._sde_by_order:
            self._sde_by_order[order] = self.model.sme(order=order)
        return self._sde_by_order[order]

    def numeric_sde(self, order: int | None = None) -> Any:
        """The SDE with ``params`` substituted; raises if symbols remain."""
        sde = self.sde(order)
        if self.params:
            sde = sde.subs(self.params)
        sde.require_numeric(f"{self.path}: the SDE with `params` substituted")
        return sde

    def numeric_model(self) -> Any:
        """The model with ``params`` substituted (None without a model)."""
        if self.model is None:
            return None
        return self.model.subs(self.params) if self.params else self.model

    def build(self, name: str, verb: str) -> Any:
        """A mesh-like setting: called when it is a callable (so meshes are built only when needed)."""
        value = self.require(name, verb)
        if callable(value) and not _is_mesh(value):
            try:
                value = value()
            except SymfpError:
                raise
            except Exception as exc:
                raise InputError(f"{self.path}: building `{name}` failed: {_one_line(exc)}") from exc
        return value

    def mesh(self, verb: str = "solve") -> Any:
        """The mesh (built now if the spec gave a callable)."""
        return self.build("mesh", verb)

    def particles(self, verb: str = "simulate") -> dict[str, Any]:
        """The particle settings with defaults filled in (n, init, seed, method)."""
        raw = self.get("particles") or {}
        if not isinstance(raw, Mapping):
            raise InputError(f"{self.path}: `particles` must be a dict, not {type(raw).__name__}")
        unknown = set(raw) - {"n", "init", "seed", "method", "dt", "batch", "device", "scheme"}
        if unknown:
            raise InputError(f"{self.path}: unknown keys in `particles`: {sorted(unknown)}")
        out = {"n": 10_000, "seed": 0, "method": "recursion" if self.model is not None else "sde", **raw}
        if "init" not in out:
            out["init"] = self.require("p0", verb)
        if out["method"] not in ("recursion", "sde"):
            raise InputError(f"{self.path}: particles method {out['method']!r}: use 'recursion' or 'sde'")
        if out["method"] == "recursion" and self.model is None:
            raise InputError(f"{self.path}: particles method 'recursion' needs a `model`")
        if "scheme" in out and (out["method"] != "sde" or out["scheme"] not in ("euler", "weak2")):
            raise InputError(
                f"{self.path}: particles scheme {out['scheme']!r}: use 'euler' or 'weak2', with method='sde' "
                "(the exact recursion has no scheme)"
            )
        try:
            out["n"] = int(out["n"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.path}: particles n = {out['n']!r} is not an integer") from exc
        if out["n"] < 2:
            raise InputError(f"{self.path}: particles n = {out['n']} must be at least 2")
        return out


    def validate(self) -> None:
        """Check every setting a run will use before the first stage (particles, basins, observables,
        numbers), so that a mistake in the last section is found in a second, not after the solve."""
        import sympy as sp

        if self.get("particles") is not None or self.get("p0") is not None:
            self.particles("run")
        for name in ("t_end", "dt"):
            if self.get(name) is not None:
                value = self.number(name, "run")
                if value == float("inf"):
                    raise InputError(f"{self.path}: `{name}` = inf must be finite")
        for key in ("basins", "observables"):
            raw = self.get(key)
            if raw is None:
                continue
            if not isinstance(raw, Mapping):
                raise InputError(f"{self.path}: `{key}` must be a dict {{name: SymPy expression}}")
            for name, expr in raw.items():
                ok = isinstance(expr, sp.Basic) and (
                    isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.Boolean))
                    if key == "basins" else isinstance(expr, sp.Expr)
                )
                if not ok:
                    want = "a SymPy relation such as theta < 0" if key == "basins" else "a SymPy expression"
                    raise InputError(
                        f"{self.path}: `{key}`[{name!r}] = {expr!r} is a {type(expr).__name__}, "
                        f"expected {want} "
                        "in the state symbols (strings are not parsed here)"
                    )
                extra = {str(x) for x in expr.free_symbols} - {str(x) for x in self.state}
                if extra:
                    raise InputError(
                        f"{self.path}: `{key}`[{name!r}] = {expr} uses {sorted(extra)}, which are not state "
                        f"variables ({', '.join(map(str, self.state))})"
                    )


def _is_mesh(value: Any) -> bool:
    """True for mesh objects (which may happen to be callable)."""
    return hasattr(value, "topology") or hasattr(value, "boundaries") or hasattr(value, "mesh")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _spec_line(exc: BaseException, path: Path) -> int | None:
    """The line of the spec file where ``exc`` was raised (innermost frame in that file)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return line


def load(path: str | os.PathLike[str], order: int | None = None) -> Spec:
    """Run a spec file in a fresh namespace and validate the names the command uses.

    Args:
        path: the spec file (``.py``).
        order: overrides the spec's ``order`` when given.

    Returns:
        The :class:`Spec`.

    Raises:
        InputError: missing file, syntax error (with its line), an exception while running the spec
            (with the spec line), no ``model``/``sde``, or malformed settings.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such spec file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a spec file (.py)")
    p = p.resolve()
    try:
        ns = runpy.run_path(str(p), run_name="__symfp_spec__")
    except SyntaxError as exc:
        raise InputError(f"{path}:{exc.lineno}: syntax error in the spec: {exc.msg}") from exc
    except SymfpError as exc:
        line = _spec_line(exc, p)
        where = f"{path}:{line}" if line else str(path)
        raise type(exc)(f"{where}: {' '.join(str(exc).split())}") from exc
    except SystemExit as exc:
        raise InputError(f"{path}: the spec called exit({exc.code})") from exc
    except Exception as exc:
        line = _spec_line(exc, p)
        where = f"{path}:{line}" if line else str(path)
        raise InputError(f"{where}: running the spec failed: {_one_line(exc)}") from exc

    from ..symbolic.recursion import SGD, Recursion
    from ..symbolic.sde import SDE

    model, given_sde = ns.get("model"), ns.get("sde")
    if model is None and given_sde is None:
        raise InputError(f"{path}: the spec defines neither `model` (an SGD/Recursion) nor `sde` (an SDE)")
    if model is not None and not isinstance(model, (SGD, Recursion)):
        raise InputError(
            f"{path}: `model` is a {type(model).__name__}, expected a symfp.SGD or symfp.Recursion "
            "(an object that only looks like one cannot be derived, solved and simulated)"
        )
    if given_sde is not None and not isinstance(given_sde, SDE):
        raise InputError(f"{path}: `sde` is a {type(given_sde).__name__}, expected a symfp.SDE")
    params = ns.get("params") or {}
    if not isinstance(params, Mapping):
        raise InputError(f"{path}: `params` must be a dict {{symbol or name: number}}")
    known = set()
    for obj in (model, given_sde):
        if obj is not None:
            known |= {str(sym) for sym in getattr(obj, "parameters", set())}
    unknown = [k for k in params if str(k) not in known]
    if unknown:
        raise InputError(
            f"{path}: `params` has key(s) {sorted(map(str, unknown))} that are not symbols of the "
            f"{'model' if model is not None else 'SDE'} (its free symbols: {sorted(known) or 'none'}); "
            "a misspelt key would be ignored silently"
        )
    spec_order = ns.get("order", 1) if order is None else order
    if not isinstance(spec_order, int) or spec_order < 1:
        raise InputError(f"{path}: order {spec_order!r} must be a positive integer")
    return Spec(path=p, namespace=ns, model=model, given_sde=given_sde, params=dict(params), order=spec_order)
