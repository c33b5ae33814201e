"""dolfinx compatibility layer: one spelling for dolfinx 0.5.2 (Debian 12) through 0.11.

Every helper detects the *feature* it needs (an attribute, a keyword) rather than comparing version
numbers, following the table in ``shared/ENVIRONMENT.md``:

==============================  =================================  ==================================
need                            0.5.2                              0.9 and later
==============================  =================================  ==================================
PETSc helpers                   imported with ``dolfinx.fem``      ``import dolfinx.fem.petsc``
scalar / vector space           ``FunctionSpace`` / ``Vector...``  ``functionspace(msh, (f, k, shape))``
form options                    ``jit_params=``                    ``jit_options=``
PETSc Vec of a Function         ``u.vector``                       ``u.x.petsc_vec``
``create_vector``               takes a Form                       0.11: takes the space
bounding boxes                  ``BoundingBoxTree`` + ...          ``bb_tree``,
                                ``compute_collisions``             ``compute_collisions_points``
gmsh                            ``io.gmshio`` (``read_from_msh``    0.11: ``io.gmsh`` (``MeshData``)
                                broken: merge + ``model_to_mesh``)
``assemble_matrix`` bc rows     ``diagonal=``                      0.10+: ``diag=``
``apply_lifting``/``set_bc``    ``scale=``                         0.10+: ``alpha=`` (passed positionally)
interpolation points            the dof coordinates                0.10+: pushed forward (x = 1e-16
                                                                   where a node is at 0)
==============================  =================================  ==================================

Checked in CI on 0.5.2 (host), 0.9 (``scripts/ci-dolfinx09``) and 0.11 (``scripts/ci-dolfinx011``).

Collective helpers (:func:`eval_points`, :func:`gather_function`, :func:`assemble_scalar`) must be
called on every rank of the mesh communicator; they return the same answer on every rank (or, for
gathers, on rank 0).

This module imports dolfinx lazily (inside :func:`dolfinx_modules`) and never imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from ...errors import MeshError, SolverError, require


@functools.cache
def dolfinx_modules() -> SimpleNamespace:
    """Import dolfinx, its PETSc layer, ufl, petsc4py and mpi4py once; quiet the JIT loggers.

    Returns:
        A namespace with ``dolfinx``, ``fem``, ``fem_petsc``, ``mesh``, ``geometry``, ``io``, ``ufl``,
        ``PETSc``, ``MPI``.
    """
    require("dolfinx", "the finite-element solver")
    import dolfinx
    import dolfinx.fem
    import dolfinx.geometry
    import dolfinx.io
    import dolfinx.mesh

    try:  # 0.9+: the PETSc helpers are a separate sub-module
        import dolfinx.fem.petsc as fem_petsc
    except ImportError:  # pragma: no cover - always importable on 0.5.2 too
        fem_petsc = dolfinx.fem.petsc
    import ufl
    from mpi4py import MPI
    from petsc4py import PETSc

    # "compilers" (and "distutils"): setuptools' distutils logs each gcc command line of the cold JIT
    # at INFO on these (newer setuptools) or on the root logger (DistutilsInfoFilter); warnings pass
    for name in ("ffcx", "UFL", "ufl", "dolfinx", "compilers", "distutils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not any(isinstance(f, DistutilsInfoFilter) for f in logging.root.filters):
        logging.root.addFilter(DistutilsInfoFilter())
    return SimpleNamespace(
        dolfinx=dolfinx,
        fem=dolfinx.fem,
        fem_petsc=fem_petsc,
        mesh=dolfinx.mesh,
        geometry=dolfinx.geometry,
        io=dolfinx.io,
        ufl=ufl,
        PETSc=PETSc,
        MPI=MPI,
    )


class CommReductions:
    """:class:`symfp.fem.observables.Reductions` over an MPI communicator (collective calls)."""

    def __init__(self, comm: Any):
        self.comm = comm
        self._MPI = dolfinx_modules().MPI

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Elementwise sum over the ranks (one Allreduce)."""
        local = np.ascontiguousarray(values, dtype=float)
        out = np.empty_like(local)
        self.comm.Allreduce(local, out, op=self._MPI.SUM)
        return out

    def min(self, value: float) -> float:
        """Minimum over the ranks."""
        return float(self.comm.allreduce(float(value), op=self._MPI.MIN))

    def max(self, value: float) -> float:
        """Maximum over the ranks."""
        return float(self.comm.allreduce(float(value), op=self._MPI.MAX))

    def scalar_sum(self, value: float) -> float:
        """Sum over the ranks of one number."""
        return float(self.comm.allreduce(float(value), op=self._MPI.SUM))

    def minmax(self, p: np.ndarray) -> tuple[float, float]:
        """Global (min, max) of the owned values ``p`` in one reduction."""
        lo = np.array([-(float(p.min()) if len(p) else np.inf), float(p.max()) if len(p) else -np.inf])
        out = np.empty(2)
        self.comm.Allreduce(lo, out, op=self._MPI.MAX)
        return -float(out[0]), float(out[1])


class DistutilsInfoFilter(logging.Filter):
    """Drops the INFO/DEBUG records of (setuptools') distutils; warnings and errors pass.

    A cold FFCx JIT (dolfinx 0.5.2) builds each form, element and coordinate map with cffi's verbose
    build: distutils then lowers the *root* logger to INFO and logs ``running build_ext`` on it (and
    the gcc command lines on ``compilers.C.base``, set to WARNING in :func:`dolfinx_modules`), which
    FFCx's ``logging.basicConfig()`` prints as ``INFO:root:...`` on the first solve. Only those records
    are dropped (by the distutils source path): a failing compilation still shows gcc's own messages
    (written by the compiler to stderr, not logged) and raises ``CompileError``, and the user's own
    INFO records on the root logger are untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        path = record.pathname.replace("\\", "/")
        return "/distutils/" not in path and "/_distutils/" not in path


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """Silence the JIT's INFO logging while compiling, and undo distutils' change of the root level."""
    previous = logging.root.manager.disable
    level = logging.root.level
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)
        logging.root.setLevel(level)


# --------------------------------------------------------------------------------------- spaces
def function_space(msh: Any, family: str = "Lagrange", degree: int = 1, shape: tuple[int, ...] | None = None):
    """A scalar (``shape=None``) or vector/tensor Lagrange-type function space on ``msh``.

    Args:
        msh: a dolfinx mesh.
        family: element family ("Lagrange", "DG", ...).
        degree: polynomial degree.
        shape: value shape, e.g. ``(gdim,)`` for a vector space.
    """
    m = dolfinx_modules()
    with quiet_jit():  # the element is JIT-compiled on first use
        if hasattr(m.fem, "functionspace"):  # 0.8+
            element = (family, degree) if shape is None else (family, degree, tuple(shape))
            return m.fem.functionspace(msh, element)
        if shape is None:
            return m.fem.FunctionSpace(msh, (family, degree))
        if len(shape) == 1:
            return m.fem.VectorFunctionSpace(msh, (family, degree), dim=shape[0])
        return m.fem.TensorFunctionSpace(msh, (family, degree), shape=tuple(shape))


def _form_keywords() -> tuple[str, str]:
    params = inspect.signature(dolfinx_modules().fem.form).parameters
    if "jit_options" in params:
        return "jit_options", "form_compiler_options"
    return "jit_params", "form_compiler_params"


def form(ufl_form: Any, jit_options: Mapping[str, Any] | None = None,
         form_compiler_options: Mapping[str, Any] | None = None):
    """Compile a UFL form (or a nested list of them) with the keyword spelling of this dolfinx."""
    m = dolfinx_modules()
    jit_kw, fc_kw = _form_keywords()
    kwargs: dict[str, Any] = {}
    if jit_options:
        kwargs[jit_kw] = dict(jit_options)
    if form_compiler_options:
        kwargs[fc_kw] = dict(form_compiler_options)
    with quiet_jit():
        return m.fem.form(ufl_form, **kwargs)


def petsc_vec(u: Any):
    """The PETSc Vec that shares memory with the dolfinx Function ``u``."""
    x = u.x
    if hasattr(x, "petsc_vec"):  # 0.8+
        return x.petsc_vec
    return u.vector


def _form_space(L: Any, index: int = 0):
    spaces = getattr(L, "function_spaces", None)
    if spaces is None:
        raise TypeError("not a compiled dolfinx form")
    return spaces[index]


def create_vector(L: Any):
    """A PETSc Vec laid out for the compiled linear form ``L`` (0.11 takes the space instead)."""
    fp = dolfinx_modules().fem_petsc
    first = next(iter(inspect.signature(fp.create_vector).parameters))
    if first in ("L", "form"):
        return fp.create_vector(L)
    return fp.create_vector(_form_space(L))


def create_matrix(a: Any):
    """A PETSc Mat with the sparsity of the compiled bilinear form ``a``."""
    return dolfinx_modules().fem_petsc.create_matrix(a)


def _keyword(fn: Any, *names: str) -> str:
    """The first of ``names`` that is a parameter of ``fn`` (a renamed keyword across versions)."""
    params = inspect.signature(fn).parameters
    for name in names:
        if name in params:
            return name
    raise TypeError(f"{getattr(fn, '__qualname__', fn)} takes none of the keywords {names}")


def assemble_matrix(a: Any, bcs: Sequence[Any] = (), A: Any = None, diagonal: float = 1.0):
    """Assemble a compiled bilinear form into ``A`` (created if None); rows of ``bcs`` get ``diagonal``.

    The keyword is ``diagonal=`` up to dolfinx 0.9 and ``diag=`` from 0.10 on (detected).

    Returns:
        The assembled PETSc Mat (``assemble()`` already called).
    """
    fp = dolfinx_modules().fem_petsc
    diag_kw = {_keyword(fp.assemble_matrix, "diagonal", "diag"): diagonal}
    if A is None:
        A = fp.assemble_matrix(a, bcs=list(bcs), **diag_kw)
    else:
        A.zeroEntries()
        fp.assemble_matrix(A, a, bcs=list(bcs), **diag_kw)
    A.assemble()
    return A


def assemble_vector(L: Any, b: Any = None):
    """Assemble a compiled linear form into ``b`` (created if None).

    Ghost contributions are summed into their owners and the ghost entries zeroed, so that
    :func:`apply_dirichlet` may follow. Only the owned entries are meaningful afterwards.
    """
    m = dolfinx_modules()
    if b is None:
        b = create_vector(L)
    with b.localForm() as loc:
        loc.set(0.0)
    m.fem_petsc.assemble_vector(b, L)
    _sum_ghosts_into_owners(b)
    return b


def _sum_ghosts_into_owners(b: Any) -> None:
    """Add ghost entries into their owners, then zero the ghosts (so a later sum does not double)."""
    m = dolfinx_modules()
    b.ghostUpdate(addv=m.PETSc.InsertMode.ADD, mode=m.PETSc.ScatterMode.REVERSE)
    with b.localForm() as loc:
        n = b.getLocalSize()
        if loc.getSize() > n:
            loc.array[n:] = 0.0


def apply_dirichlet(b: Any, a: Any, bcs: Sequence[Any], x0: Any = None) -> None:
    r"""Lift ``b`` by the Dirichlet conditions ``bcs`` of the bilinear form ``a`` and set their values.

    Without ``x0``: :math:`b \leftarrow b - A g` off the constrained rows and :math:`b = g` on them
    (the system for u). With ``x0`` (a PETSc Vec): the system for the correction :math:`u - x_0`,
    :math:`b \leftarrow b - A(g - x_0)` and :math:`b = g - x_0` on the rows. Positional arguments
    only, so that 0.10's renamed ``scale=`` → ``alpha=`` keywords do not matter.
    """
    m = dolfinx_modules()
    if not bcs:
        return
    fp = m.fem_petsc
    if x0 is None:
        fp.apply_lifting(b, [a], [list(bcs)])
    else:
        fp.apply_lifting(b, [a], [list(bcs)], [x0])
    _sum_ghosts_into_owners(b)
    if x0 is None:
        fp.set_bc(b, list(bcs))
    else:
        fp.set_bc(b, list(bcs), x0)


def assemble_scalar(M: Any, comm: Any = None) -> float:
    """Assemble a compiled functional and sum it over the ranks of ``comm`` (collective)."""
    m = dolfinx_modules()
    local = m.fem.assemble_scalar(M)
    if comm is None:
        comm = _form_space(M).mesh.comm if getattr(M, "function_spaces", None) else M.mesh.comm
    return float(comm.allreduce(local, op=m.MPI.SUM))


def scalar_integral(expr: Any, msh: Any, measure: Any = None) -> float:
    """∫ expr dx (or over ``measure``) on ``msh``, summed over ranks (collective)."""
    m = dolfinx_modules()
    dx = measure if measure is not None else m.ufl.dx(domain=msh)
    return assemble_scalar(form(expr * dx), msh.comm)


# ---------------------------------------------------------------------------------------- solvers
def make_ksp(A: Any, comm: Any, options: Mapping[str, Any] | None = None, prefix: str = "symfp_"):
    """A PETSc KSP on operator ``A`` configured from ``options`` under its own options prefix.

    Args:
        A: the assembled PETSc Mat.
        comm: the MPI communicator.
        options: PETSc options without the prefix, e.g. ``{"ksp_type": "gmres", "pc_type": "bjacobi"}``.
        prefix: the options prefix (unique per solver so that solvers do not share settings).
    """
    PETSc = dolfinx_modules().PETSc
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    set_from_options(ksp, options, prefix)
    return ksp


def set_from_options(obj: Any, options: Mapping[str, Any] | None, prefix: str) -> None:
    """Configure a PETSc/SLEPc object (KSP, EPS) from ``options`` under its own ``prefix``.

    The options are put in PETSc's global database only for ``setFromOptions`` and removed after,
    so that no later solver sees them.
    """
    PETSc = dolfinx_modules().PETSc
    obj.setOptionsPrefix(prefix)
    opts = PETSc.Options()
    for key, value in (options or {}).items():
        opts[prefix + key] = value
    obj.setFromOptions()
    for key in options or {}:
        opts.delValue(prefix + key)


@functools.cache
def _ksp_reasons() -> dict[int, str]:
    R = dolfinx_modules().PETSc.KSP.ConvergedReason
    return {getattr(R, k): k for k in dir(R) if k.isupper()}


def ksp_reason_name(reason: int) -> str:
    """PETSc's name of a KSPConvergedReason code (e.g. -3 → DIVERGED_ITS)."""
    return _ksp_reasons().get(int(reason), str(reason))


def solve_checked(ksp: Any, b: Any, x: Any, where: str) -> int:
    """Solve ``ksp`` for ``x`` and raise :class:`SolverError` with PETSc's reason when it diverges."""
    ksp.solve(b, x)
    reason = ksp.getConvergedReason()
    if reason < 0:
        raise SolverError(
            f"{where}: the linear solver did not converge (PETSc reason {ksp_reason_name(reason)}, "
            f"{ksp.getIterationNumber()} iterations). Try a direct solver "
            "(petsc_options={'ksp_type': 'preonly', 'pc_type': 'lu'}), a smaller dt, or a finer mesh."
        )
    return ksp.getIterationNumber()


def solve_once(A: Any, b: Any, u: Any, options: Mapping[str, Any], prefix: str, where: str) -> Any:
    """Solve ``A x = b`` into the Function ``u`` with a one-off KSP, then free the KSP, A and b.

    Used by the single-solve problems (stationary density, mean exit time); the ghost values of ``u``
    are updated. Raises :class:`SolverError` (PETSc's reason) as :func:`solve_checked` does.
    """
    ksp = make_ksp(A, u.function_space.mesh.comm, options, prefix=prefix)
    try:
        solve_checked(ksp, b, petsc_vec(u), where)
    finally:
        ksp.destroy()
        A.destroy()
        b.destroy()
    u.x.scatter_forward()
    return u


def lagrange_problem(msh: Any, degree: int) -> tuple[Any, Any, Any, Any]:
    """The Lagrange space of ``degree`` on ``msh`` with its trial and test functions and coordinates.

    Returns:
        (V, trial u, test v, SpatialCoordinate x).
    """
    ufl = dolfinx_modules().ufl
    V = function_space(msh, "Lagrange", degree)
    return V, ufl.TrialFunction(V), ufl.TestFunction(V), ufl.SpatialCoordinate(msh)

# -------------------------------------------------------------------------------- point evaluation
def bb_tree(msh: Any):
    """A bounding-box tree of the cells of ``msh`` (owned and ghost)."""
    g = dolfinx_modules().geometry
    tdim = msh.topology.dim
    if hasattr(g, "bb_tree"):
        return g.bb_tree(msh, tdim)
    return g.BoundingBoxTree(msh, tdim)


def compute_collisions(tree: Any, points: np.ndarray):
    """Candidate cells (AdjacencyList) whose boxes contain each of the (N, 3) ``points``."""
    g = dolfinx_modules().geometry
    if hasattr(g, "compute_collisions_points"):
        return g.compute_collisions_points(tree, points)
    return g.compute_collisions(tree, points)


def pad_points(points: Any, gdim: int | None = None) -> np.ndarray:
    """Points as a float64 array of shape (N, 3) (dolfinx wants 3 coordinates)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1:
        p = p.reshape(-1, 1) if gdim == 1 else p.reshape(1, -1)
    if p.ndim != 2 or p.shape[1] > 3:
        raise MeshError(f"points must have shape (n, d) with d ≤ 3; got {np.shape(points)}")
    out = np.zeros((p.shape[0], 3))
    out[:, : p.shape[1]] = p
    return out


def local_cells(msh: Any, points: np.ndarray, tree: Any = None) -> np.ndarray:
    """For each point, an owned local cell of this rank that contains it, or −1; not collective."""
    m = dolfinx_modules()
    p = pad_points(points)
    tree = bb_tree(msh) if tree is None else tree
    candidates = compute_collisions(tree, p)
    colliding = m.geometry.compute_colliding_cells(msh, candidates, p)
    n_owned = msh.topology.index_map(msh.topology.dim).size_local
    cells = np.full(len(p), -1, dtype=np.int32)
    for i in range(len(p)):
        links = colliding.links(i)
        owned = links[links < n_owned]
        if len(owned):
            cells[i] = owned[0]
    return cells


def locate_points(msh: Any, points: np.ndarray, tree: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """For each point, one owned local cell that contains it, decided consistently across ranks.

    A point lying in cells of several ranks is given to the lowest such rank.

    Returns:
        ``(mine, cells)``: a boolean mask of the points this rank evaluates and, for those, the local
        cell index (``cells[i] = -1`` where not mine). Points outside the mesh are nobody's.
    """
    m = dolfinx_modules()
    cells = local_cells(msh, points, tree)
    comm = msh.comm
    rank_or_big = np.where(cells >= 0, comm.rank, comm.size).astype(np.int32)
    winner = np.empty_like(rank_or_big)
    comm.Allreduce(rank_or_big, winner, op=m.MPI.MIN)
    mine = winner == comm.rank
    cells[~mine] = -1
    return mine, cells


def eval_points(u: Any, points: Any, tree: Any = None) -> np.ndarray:
    """Evaluate the Function ``u`` at ``points`` (N, d); collective, same (N, k) array on every rank.

    Each point is evaluated by exactly one rank (the lowest owning a cell containing it) and the
    values are summed over ranks. Points outside the mesh give NaN.
    """
    m = dolfinx_modules()
    msh = u.function_space.mesh
    p = pad_points(points, msh.geometry.dim)
    mine, cells = locate_points(msh, p, tree)
    k = int(np.prod(u.ufl_shape)) if u.ufl_shape else 1
    local = np.zeros((len(p), k))
    if mine.any():
        vals = u.eval(p[mine], cells[mine])
        local[mine] = np.asarray(vals, dtype=np.float64).reshape(int(mine.sum()), k)
    out = np.empty_like(local)
    msh.comm.Allreduce(local, out, op=m.MPI.SUM)
    found = np.empty_like(mine, dtype=np.int32)
    msh.comm.Allreduce(mine.astype(np.int32), found, op=m.MPI.SUM)
    out[found == 0] = np.nan
    return out


def gather_function(u: Any, root: int = 0, order: str = "global") -> tuple[np.ndarray, np.ndarray] | None:
    """Gather the owned dofs of a (nodal) Function to ``root``: coordinates (n, gdim) and values (n, bs).

    Args:
        u: a dolfinx Function on a nodal (Lagrange) space.
        root: the receiving rank.
        order: "global" sorts by global dof index (partition dependent); "coords" sorts
            lexicographically by coordinates (partition independent, for comparisons).

    Returns:
        ``(coords, values)`` on ``root``, None on the other ranks. Collective.
    """
    V = u.function_space
    msh = V.mesh
    imap = V.dofmap.index_map
    bs = V.dofmap.index_map_bs
    n = imap.size_local
    gdim = msh.geometry.dim
    coords = V.tabulate_dof_coordinates()[:n, :gdim]
    values = np.asarray(u.x.array[: n * bs]).reshape(n, bs).real.astype(np.float64)
    start = imap.local_range[0]
    glob = np.arange(start, start + n, dtype=np.int64)
    parts = msh.comm.gather((glob, coords, values), root=root)
    if msh.comm.rank != root:
        return None
    g = np.concatenate([q[0] for q in parts])
    c = np.concatenate([q[1] for q in parts])
    v = np.concatenate([q[2] for q in parts])
    perm = np.argsort(g, kind="stable") if order == "global" else np.lexsort(c.T[::-1])
    return c[perm], v[perm]


# -------------------------------------------------------------------------------------------- gmsh
def gmsh_model_to_mesh(model: Any, comm: Any, rank: int, gdim: int):
    """``(mesh, cell_tags, facet_tags)`` from a gmsh model living on ``rank`` (0.5.2 … 0.11)."""
    import importlib

    dolfinx_modules()
    try:  # 0.11
        gmsh_io = importlib.import_module("dolfinx.io.gmsh")
    except ImportError:
        gmsh_io = importlib.import_module("dolfinx.io.gmshio")
    out = gmsh_io.model_to_mesh(model, comm, rank, gdim=gdim)
    if hasattr(out, "mesh"):  # 0.11: MeshData
        return out.mesh, out.cell_tags, out.facet_tags
    return out[0], out[1], out[2]


#: process state of gmsh (gmsh 4.8 has no ``isInitialized``)
_GMSH: dict[str, bool] = {"started": False}


def _start_gmsh(gmsh: Any) -> None:
    """Initialise gmsh once per process (gmsh 4.8 has no ``isInitialized``)."""
    is_init = getattr(gmsh, "isInitialized", None)
    if not _GMSH["started"] and not (is_init and is_init()):
        gmsh.initialize()
    _GMSH["started"] = True


def read_gmsh(path: str, comm: Any, gdim: int | None = None, mesh_size: float | None = None,
              rank: int = 0):
    """Read a gmsh ``.msh`` (or mesh a ``.geo`` on the fly) into a distributed dolfinx mesh.

    Works around 0.5.2's broken ``read_from_msh``: rank 0 merges the file into gmsh and calls
    ``model_to_mesh``. Physical-group names are collected on rank 0 and broadcast.

    Args:
        path: a ``.msh`` or ``.geo`` file.
        comm: the MPI communicator.
        gdim: geometric dimension (default: the highest physical-group dimension).
        mesh_size: for ``.geo``: optional ``Mesh.MeshSizeMax``.
        rank: the rank that reads.

    Returns:
        ``(mesh, cell_tags, facet_tags, names)`` with ``names = {dim: {name: tag}}``.
    """
    import os

    gmsh = require("gmsh", "reading gmsh meshes", "Install python3-gmsh (Debian) or gmsh (pip/conda).")
    info: Any = None
    if comm.rank == rank:
        if not os.path.exists(path):
            info = ("error", f"mesh file {path!r} does not exist")
        else:
            _start_gmsh(gmsh)
            gmsh.option.setNumber("General.Terminal", 0)
            gmsh.model.add(os.path.basename(path))
            try:
                gmsh.merge(path)
                if path.endswith(".geo"):
                    if mesh_size is not None:
                        gmsh.option.setNumber("Mesh.MeshSizeMax", float(mesh_size))
                    dim_geo = max((d for d, _ in gmsh.model.getEntities()), default=0)
                    gmsh.model.mesh.generate(dim_geo)
                groups = gmsh.model.getPhysicalGroups()
                if not groups:
                    info = ("error", f"{path!r} has no physical groups; add Physical Curve/Surface/...")
                else:
                    names: dict[int, dict[str, int]] = {}
                    for d, tag in groups:
                        kind = ("point", "curve", "surface", "volume")[d]
                        name = gmsh.model.getPhysicalName(d, tag) or f"{kind}{tag}"
                        names.setdefault(d, {})[name] = tag
                    tdim = max(names)
                    info = ("ok", names, tdim)
            except Exception as exc:  # gmsh raises plain Exceptions
                info = ("error", f"gmsh could not read {path!r}: {exc}")
    info = comm.bcast(info, root=rank)
    if info[0] == "error":
        if comm.rank == rank and _GMSH["started"]:
            with contextlib.suppress(Exception):
                gmsh.model.remove()
        raise MeshError(f"{info[1]}. Give a .msh or .geo file with named physical groups.")
    names, tdim = info[1], info[2]
    try:
        msh, ct, ft = gmsh_model_to_mesh(gmsh.model if comm.rank == rank else None, comm, rank,
                                         gdim=gdim or tdim)
    finally:
        if comm.rank == rank:
            gmsh.model.remove()
    return msh, ct, ft, names


# --------------------------------------------------------------------------------------------- I/O
def xdmf_file(comm: Any, path: str, mode: str = "w"):
    """An ``XDMFFile`` (context manager) for ``path``."""
    io = dolfinx_modules().io
    return io.XDMFFile(comm, path, mode)


def owned_cells(msh: Any) -> int:
    """Number of cells this rank owns."""
    return msh.topology.index_map(msh.topology.dim).size_local


def num_global_dofs(V: Any) -> int:
    """Global number of dofs (times the block size) of a function space."""
    return V.dofmap.index_map.size_global * V.dofmap.index_map_bs


def cell_vertex_coordinates(msh: Any) -> np.ndarray:
    """Coordinates of the geometry nodes of the owned cells, shape (n_owned_cells, nodes, gdim)."""
    dm = msh.geometry.dofmap
    n = owned_cells(msh)
    arr = np.asarray(dm.array).reshape(-1, len(dm.links(0))) if hasattr(dm, "links") else np.asarray(dm)
    return msh.geometry.x[arr[:n], : msh.geometry.dim]


def set_bc_values(b: Any, bcs: Sequence[Any]) -> None:
    """Set the Dirichlet values of ``bcs`` in the owned entries of the PETSc Vec ``b``."""
    if bcs:
        dolfinx_modules().fem_petsc.set_bc(b, list(bcs))
