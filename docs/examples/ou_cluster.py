"""``symfp solve`` spec for a cluster: the 2-D OU Fokker–Planck problem on a mesh read from a file.

    mpirun -n 64 symfp solve docs/examples/ou_cluster.py        # SYMFP_MESH=ou.xdmf, SYMFP_CELLS=4096

The mesh file is XDMF (written once by rank 0's partition of a box here, or by any mesher through
``meshio``/``dolfinx.io``); ``dolfinx.io.XDMFFile.read_mesh`` reads it *partitioned*: every rank reads
its share of the cells and dolfinx's graph partitioner (ParMETIS/SCOTCH/KaHIP, whichever PETSc/dolfinx
was built with) distributes them, with one layer of ghost cells. ``symfp.mesh.as_mesh`` wraps the
distributed dolfinx mesh (boundary parts by bounding box: xmin, xmax, ymin, ymax). The time-step
solver is chosen by :func:`symfp.fem.dolfinx.solvers.ksp_options` from the global size and the ranks
(docs/scaling.md); ``solve_options["petsc_options"]`` overrides it.
"""

import os

import sympy as sp

import symfp

x, y = sp.symbols("x y", real=True)
A = sp.Matrix([[1, 0.6], [-0.4, 1.5]])
D = sp.Matrix([[0.05, 0.02], [0.02, 0.03]])
sde = symfp.SDE(state=[x, y], drift=-A * sp.Matrix([x, y]), diffusion=D)
p0 = sp.exp(-((x - 0.6) ** 2 + (y + 0.3) ** 2) / 0.02)
t_end, dt = 0.1, 0.01
BOX = [(-1.0, 1.6), (-1.3, 1.0)]


def mesh():
    """The mesh of SYMFP_MESH (default ou.xdmf), written from a box of SYMFP_CELLS² cells if absent."""
    import dolfinx.io
    from mpi4py import MPI

    path = os.environ.get("SYMFP_MESH", "ou.xdmf")
    comm = MPI.COMM_WORLD
    if not os.path.exists(path):  # collective: every rank writes its part of the box
        msh = symfp.mesh.box(BOX, cells=int(os.environ.get("SYMFP_CELLS", "64")), comm=comm).mesh
        with dolfinx.io.XDMFFile(comm, path, "w") as f:
            f.write_mesh(msh)
    comm.barrier()
    with dolfinx.io.XDMFFile(comm, path, "r") as f:
        msh = f.read_mesh(name="mesh")  # partitioned on read
    return symfp.mesh.as_mesh(msh)


solve_options = {"scheme": "bdf2", "stabilisation": "none", "negative_tol": 1.0}
