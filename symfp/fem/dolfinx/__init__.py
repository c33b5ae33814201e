"""The dolfinx (FEniCSx) finite-element backend: UFL forms, PETSc solves, MPI, gmsh, XDMF.

Importing this package does not import dolfinx; its sub-modules do (through :mod:`.compat`).
"""
