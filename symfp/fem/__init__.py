"""The dolfinx finite-element backend of symfp.

Importing this package does not import dolfinx; the sub-modules do, when a solve is requested:

- :mod:`symfp.fem.compat`: one spelling for dolfinx 0.5.2 … 0.11 (feature detection);
- :mod:`symfp.fem.translate`: SymPy → UFL;
- :mod:`symfp.fem.mesh`: built-in boxes and gmsh meshes with named boundary parts and regions;
- :mod:`symfp.fem.forward`: the forward Fokker–Planck stepper, returning a
  :class:`symfp.fem.solution.Solution`.

The FE layer never imports torch.
"""

from __future__ import annotations
