"""Steady finite-element fields of the scikit-fem backend (mean exit time, stationary density)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...errors import InputError
from ..mesh import NeutralMesh
from ..output import atomic_write
from ..solution import write_xdmf


@dataclass(eq=False)
class Field:
    """A steady finite-element field (mean exit time, stationary density) of the scikit-fem backend.

    Attributes:
        values: the dof values. basis: the scikit-fem basis. mesh: the :class:`NeutralMesh`.
        sde: the SDE. name: "tau" or "p". degree: the Lagrange degree. info: summaries.
    """

    values: np.ndarray
    basis: Any
    mesh: NeutralMesh
    sde: Any
    name: str
    degree: int = 1
    info: dict[str, Any] = field(default_factory=dict)
    absorbing: tuple[str, ...] | None = None
    stabilization: str | None = None
    observables: dict[str, Any] = field(default_factory=dict)

    backend = "skfem"

    def eval(self, points: Any) -> np.ndarray:
        """Values at ``points`` (n, d) → (n,); NaN outside the mesh."""
        pts = np.asarray(points, dtype=float).reshape(-1, self.mesh.dim)
        if self.degree == 1:
            return self.mesh.interpolate_p1(self.values[: len(self.mesh.points)], pts)
        cells = self.mesh.locate_cells(pts)
        out = np.full(len(pts), np.nan)
        ok = cells >= 0
        if ok.any():
            out[ok] = self.basis.probes(pts[ok].T) @ self.values
        return out

    def max(self) -> float:
        """The largest nodal value."""
        return float(np.max(self.values))

    def integral(self, g: Any = 1) -> float:
        r""":math:`\int g\,u` for a SymPy expression ``g`` in the state."""
        from .lowering import assemble_weighted

        return float(assemble_weighted(g, self.basis, tuple(self.sde.state)) @ self.values)

    def mean_over(self, density: Any = None) -> float:
        r""":math:`\int u\rho/\int\rho` for a SymPy density (None: uniform on the mesh)."""
        from .lowering import assemble_weighted

        rho = sp.S.One if density is None else sp.sympify(density)
        w = assemble_weighted(rho, self.basis, tuple(self.sde.state))
        den = float(w.sum())
        if not den > 0:
            raise InputError(f"mean_over: the density integrates to {den} on the mesh; give a non-negative "
                             "density with positive mass there")
        return float(w @ self.values) / den

    def expect(self, expr: Any) -> float:
        r""":math:`\int g\,p` (stationary density)."""
        return self.integral(expr)

    @property
    def mass(self) -> float:
        return float(self.observables["mass"])

    @property
    def mean(self) -> np.ndarray:
        return self.observables["mean"]

    @property
    def cov(self) -> np.ndarray:
        return self.observables["cov"]

    def write(self, directory: str | os.PathLike) -> str:
        """Write the field (XDMF, vertex values) and a JSON summary; returns the XDMF path."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        label = "exit_time" if self.name == "tau" else "stationary"
        path = os.path.join(directory, f"{label}.xdmf")
        write_xdmf(path, self.mesh, self.name, [(0.0, self.eval(self.mesh.points))])
        summary = {"quantity": label.replace("_", " "), "max": self.max(), "degree": self.degree,
                   "backend": "skfem", **{k: np.asarray(v).tolist() for k, v in self.observables.items()},
                   **self.info}
        atomic_write(os.path.join(directory, f"{label}.json"), json.dumps(summary, indent=2, default=str))
        return path
