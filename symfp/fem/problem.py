"""Input checks shared by the backends' solves (backend-neutral)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError, MeshError

FCT_DEFAULTS = {"passes": 50, "tol": 1e-3, "method": "redistribute"}
FCT_METHODS = ("redistribute", "zalesak")


def as_fokker_planck(fp: Any, where: str = "solve") -> Any:
    """A :class:`symfp.FokkerPlanck` from itself or an SDE (InputError otherwise)."""
    if hasattr(fp, "stationary_density") and hasattr(fp, "sde"):
        return fp
    if hasattr(fp, "fokker_planck"):
        return fp.fokker_planck()
    raise InputError(f"{where}: expected a symfp.FokkerPlanck or symfp.SDE, got {type(fp).__name__}")


def is_number(v: Any) -> bool:
    """True for a finite real number."""
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def check_times(t_end: Any, dt: Any, where: str = "solve") -> tuple[float, float, int]:
    """(t_end, dt adjusted down to a whole number of steps, steps); InputError on bad values."""
    try:
        t_end, dt = float(t_end), float(dt)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: t_end and dt must be numbers, got t_end={t_end!r}, dt={dt!r}") from exc
    if not (math.isfinite(dt) and dt > 0):
        raise InputError(f"{where}: dt = {dt!r} must be a positive finite number")
    if not math.isfinite(t_end):
        raise InputError(f"{where}: t_end = {t_end!r} must be a finite time; for the long-time law use "
                         "symfp.fem.stationary_density(sde, mesh)")
    if t_end < dt * (1 - 1e-12):
        raise InputError(f"{where}: t_end = {t_end!r} must be at least dt = {dt!r}; lower dt or raise t_end")
    n = max(1, int(round(t_end / dt)))
    return t_end, t_end / n, n


def absorbing_parts(absorbing: str | Sequence[str] | None) -> tuple[str, ...]:
    """Absorbing part names as a tuple (() for None)."""
    if absorbing is None:
        return ()
    return (absorbing,) if isinstance(absorbing, str) else tuple(absorbing)


def fct_options(options: Mapping[str, Any] | None, where: str = "solve") -> dict[str, Any]:
    """The limiter controls ``method`` (:data:`FCT_METHODS`), ``passes`` (int ≥ 1) and ``tol`` (≥ 0).

    ``method="redistribute"`` (default, :class:`symfp.fem.fct.FCTLimiter`): the Galerkin target with its
    negative values clipped and their mass taken from the neighbouring positive mass (at most
    ``passes`` rounds, default capped by the limiter); ``"zalesak"``: Kuzmin's FEM-FCT with the lumped
    upwind predictor and iterated Zalesak passes (local extremum bounds; stagnates on degenerate
    oblique diffusion).
    """
    kw = dict(FCT_DEFAULTS)
    unknown = set(options or {}) - set(kw)
    if unknown:
        raise InputError(f"{where}: fct_options has unknown keys {sorted(unknown)} (known: method, passes, "
                         "tol)")
    kw.update(options or {})
    if kw["method"] not in FCT_METHODS:
        raise InputError(f"{where}: fct_options method={kw['method']!r} is not one of {FCT_METHODS}")
    if not (isinstance(kw["passes"], int) and kw["passes"] >= 1 and is_number(kw["tol"])
            and float(kw["tol"]) >= 0):
        raise InputError(f"{where}: fct_options={dict(options or {})!r}: passes must be an int ≥ 1 and "
                         "tol a number ≥ 0")
    return kw


_check_fct_options = fct_options  # for check_forward_options, whose keyword shadows the name


def check_output(output_every: Any, keep: Any, where: str = "solve") -> None:
    """InputError unless output_every is a positive int and keep is 'final' or 'all'."""
    if not isinstance(output_every, int) or output_every < 1:
        raise InputError(f"{where}: output_every={output_every!r} must be a positive int (steps)")
    if keep not in ("final", "all"):
        raise InputError(f"{where}: keep={keep!r} must be 'final' or 'all'")


def check_mesh_dimension(dim: int, state: Sequence[Any], where: str) -> None:
    """MeshError unless the mesh dimension equals the number of state variables."""
    if dim != len(state):
        raise MeshError(f"{where}: the mesh is {dim}-D but the SDE has {len(state)} state variables "
                        f"({', '.join(map(str, state))}); give a {len(state)}-D mesh")


def check_steady_sde(sde: Any, where: str) -> None:
    """The SDE of a steady solve (exit time, stationary density, spectrum): an SDE, numeric, autonomous.

    Raises:
        InputError: not an SDE, free parameters, or an explicit time dependence (a schedule).
    """
    if not all(hasattr(sde, a) for a in ("state", "drift", "diffusion")):
        raise InputError(f"{where}: expected a symfp.SDE, got {type(sde).__name__}; build one with "
                         "symfp.SDE(state, drift, diffusion) or model.sme()")
    if hasattr(sde, "require_numeric"):
        sde.require_numeric(where)
    if not getattr(sde, "is_autonomous", True):
        raise InputError(
            f"{where}: drift or diffusion depend explicitly on time {sde.time} (a schedule), but this "
            f"steady problem is defined for a time-homogeneous SDE only; build the SDE with {sde.time} "
            "replaced by a number (a frozen schedule), or solve the time-dependent forward equation "
            "with fp.solve")


def check_forward_options(sde: Any, mesh: Any, *, scheme: Any, output_every: Any, keep: Any,
                          absorbing: str | Sequence[str] | None, fct_options: Mapping[str, Any] | None,
                          where: str = "solve") -> tuple[dict[str, Any], tuple[str, ...], Any, Any]:
    """The option checks of a forward solve (both backends), after the times and the pre-solve checks.

    Validates the FCT options, the scheme, the output options and the absorbing part names (``mesh``
    answers ``boundary_facets(name)`` with a MeshError listing its parts), builds the weak form and
    refuses free parameters in it.

    Returns:
        ``(fct_kw, parts, wf, tsym)``: the checked FCT options, the absorbing part names, the weak form
        (:func:`symfp.symbolic.weakform.forward_form`) and its time symbol (None when autonomous).
    """
    from ..symbolic.weakform import forward_form
    from .schemes import check_scheme

    fct_kw = _check_fct_options(fct_options, where)
    if scheme is not None:
        check_scheme(scheme, where)
    check_output(output_every, keep, where)
    parts = absorbing_parts(absorbing)
    for name in parts:
        mesh.boundary_facets(name)  # raises MeshError listing the names it has
    wf = forward_form(sde)
    if wf.parameters:
        raise InputError(f"{where}: the Fokker–Planck equation still has free parameters "
                         f"{sorted(map(str, wf.parameters))}; substitute numbers with .subs({{...}}) first")
    return fct_kw, parts, wf, (None if wf.is_autonomous else wf.time)
