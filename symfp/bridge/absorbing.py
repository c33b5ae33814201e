"""Absorbing sets on FE meshes for the particle engine: the complement of a mesh (exit from a domain).

The only place where particles meet a mesh: point location goes through the mesh protocol of
:mod:`symfp.fem.mesh` (``contains``), so a dolfinx mesh (distributed: collective) and a neutral mesh
both work. No distance to the boundary is known, so the SDE's Brownian-bridge correction is skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import MeshError
from ..particles.absorbing import AbsorbingSet


class MeshComplement(AbsorbingSet):
    """Everything outside an FE mesh (any symfp mesh, or a raw dolfinx mesh): exit from the domain.

    Under MPI ``absorbed`` is collective (every rank must call it equally often, i.e. the same number
    of particle blocks): each rank's particles are located in the whole distributed mesh.
    """

    has_margin = False

    def __init__(self, mesh: Any):
        super().__init__(False)
        from ..mesh import protocol

        try:
            self.mesh = protocol(mesh)
        except MeshError as exc:
            raise MeshError(f"MeshComplement: {mesh!r} is not a symfp or dolfinx mesh") from exc
        self.dim = self.mesh.dim

    def absorbed(self, theta):
        pts = theta.detach().cpu().numpy().astype(np.float64)
        inside = np.asarray(self.mesh.contains(pts), dtype=bool)
        return torch.as_tensor(~inside, device=theta.device)

    def margin_normal(self, theta):
        m = torch.where(self.absorbed(theta), -1.0, 1.0).to(theta.dtype)
        return m, torch.zeros_like(theta)
