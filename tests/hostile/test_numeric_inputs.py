"""Hostile inputs and silent-wrong-number traps of the numeric layers (particles, FE, compare).

Each case asserts the error class and that the message names the call and the culprit. The
silent-number cases of issue 12 (a negative diffusion solved, a divergent SGD reported as a variance)
are here with the model that produced them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import DivergenceError, InputError, MeshError

th = sp.Symbol("theta", real=True)
x, y = sp.symbols("x y", real=True)
OU = symfp.SDE([th], -th, sp.Rational(1, 2))


def quad(lr, noise=0.1):
    return symfp.SGD(loss=th**2 / 2, params=[th], data=None, lr=lr, noise=noise)


def order2(lr=1.5):
    return symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=lr, noise=0.1).sme(order=2)


PARTICLE_CASES = [
    (
        "n-zero",
        lambda: OU.simulate(0, 1.0, 0.1, init=0.0),
        InputError,
        r"n_particles must be a positive integer",
    ),
    (
        "n-float",
        lambda: OU.simulate(10.5, 1.0, 0.1, init=0.0),
        InputError,
        r"n_particles must be a positive int",
    ),
    (
        "n-10-to-12",
        lambda: OU.simulate(10**12, 1.0, 0.1, init=0.0),
        InputError,
        r"simulate_sde: 1000000000000 particles in 1 dimension\(s\) need about .* GiB of memory, "
        r"but .* GiB are "
        r"available; reduce n_particles",
    ),
    (
        "n-10-to-12-recursion",
        lambda: quad(0.1).simulate(10**12, 10, init=0.0),
        InputError,
        r"simulate_recursion: 1000000000000 particles .* need about .* GiB",
    ),
    (
        "t_end-inf",
        lambda: OU.simulate(10, float("inf"), 0.1, init=0.0),
        InputError,
        r"simulate_sde: t_end and dt must be positive and finite, got t_end=inf",
    ),
    (
        "dt-nan",
        lambda: OU.simulate(10, 1.0, float("nan"), init=0.0),
        InputError,
        r"simulate_sde: t_end and dt must be positive and finite, got t_end=1.0, dt=nan",
    ),
    (
        "method",
        lambda: OU.simulate(10, 1.0, 0.1, init=0.0, method="rk4"),
        InputError,
        r"unknown method 'rk4'",
    ),
    (
        "init-dim",
        lambda: OU.simulate(10, 1.0, 0.1, init=[0.0, 1.0]),
        InputError,
        r"init point has 2 entries, the state .* has 1",
    ),
    (
        "free-symbol",
        lambda: symfp.SDE([th], -th, sp.Symbol("s")).simulate(10, 1.0, 0.1, init=0.0),
        InputError,
        r"simulate_sde: the SDE still has free symbols s",
    ),
    ("steps-float", lambda: quad(0.1).simulate(10, 2.5, init=0.0), InputError, r"number of steps must be"),
    (
        "D-theta-over-10-particles",
        lambda: symfp.SDE([th], -th, th / 10).simulate(2000, 2.0, 0.1, init=0.3),
        InputError,
        r"SDE \(Euler–Maruyama\): the diffusion D = theta/10 is not positive semi-definite at .*% of "
        r"the particles at step \d+ .*refuses rather than clamp the noise to 0",
    ),
    (
        "order2-sme-particles",
        lambda: order2().simulate(1000, 0.1, 0.01, init=0.0),
        InputError,
        r"D = 0.45\*theta\*\*2 - 0.05 is not positive semi-definite at 100% of the particles at step 0.*"
        r"order-2 stochastic modified equation.*lr ≤ 1 \(here lr = 1.5\)",
    ),
    (
        "order2-sme-weak2",
        lambda: order2().simulate(1000, 0.1, 0.01, init=0.0, method="weak2"),
        InputError,
        r"SDE \(weak order 2\): the diffusion D = .* is not positive semi-definite",
    ),
    (
        "sgd-lr-2.05-diverges",
        lambda: quad(2.05).simulate(1000, 500, init=1.0),
        DivergenceError,
        r"recursion diverged by step \d+ .*max\|θ\| grew geometrically.*≈ 1.05\d* per step",
    ),
    (
        "sgd-lr-3-diverges",
        lambda: quad(3.0).simulate(1000, 500, init=1.0),
        DivergenceError,
        r"recursion diverged .*(grew geometrically|blew up)",
    ),
    (
        "sde-unstable-drift",
        lambda: symfp.SDE([th], th, sp.Rational(1, 10)).simulate(500, 60.0, 0.1, init=1.0),
        DivergenceError,
        r"SDE \(Euler–Maruyama\) diverged .*(grew geometrically|blew up)",
    ),
]


@pytest.mark.torch
@pytest.mark.parametrize(
    "call,cls,pattern", [c[1:] for c in PARTICLE_CASES], ids=[c[0] for c in PARTICLE_CASES]
)
def test_particles(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


@pytest.mark.torch
def test_stable_runs_are_not_flagged_as_divergent():
    # just below the stability limit: |1 - η| = 0.95, stationary variance η²δ·2/(1 - 0.95²) closed form
    c = quad(1.95).simulate(4000, 3000, init=1.0, seed=3)
    var = 1.95 * 2 * 0.1 / (1 - 0.95**2) * 1.95 / 1.95  # θ' = -0.95θ + sqrt(2ηδ)ζ: var = 2ηδ / (1 - 0.95²)
    assert c.cov()[0, 0] == pytest.approx(var, rel=5 * np.sqrt(2 / 4000) + 0.02)
    # a pure random walk grows like k (its maximum like sqrt(k)): not geometric
    walk = symfp.SDE([th], 0, sp.Rational(1, 2)).simulate(2000, 100.0, 0.01, init=0.0)
    assert walk.cov()[0, 0] == pytest.approx(100.0, rel=0.1)


@pytest.mark.torch
def test_long_run_is_announced_not_silent():
    from symfp.errors import LongRunWarning
    from symfp.particles import runner

    old = runner.LONG_RUN_S
    runner.LONG_RUN_S = 0.0  # any run counts as long: the warning path, with its estimate
    try:
        with pytest.warns(
            LongRunWarning,
            match=r"simulate_recursion: 10 particles × 400 steps .* will take "
            r"about .* pass progress=True",
        ):
            quad(0.1).simulate(10, 400, init=0.0)
    finally:
        runner.LONG_RUN_S = old


MESH = None


def stationary_density(sde, mesh):
    from symfp.fem.dolfinx.stationary import stationary_density as fe_stationary

    return fe_stationary(sde, mesh)


def mesh1(lo=-2.0, hi=2.0, n=64):
    return symfp.mesh.box([(lo, hi)], cells=(n,))


FE_CASES = [
    (
        "fe-D-theta-over-10",
        lambda: (
            symfp.SDE([th], -th, th / 10).fokker_planck().solve(mesh1(), sp.exp(-(th**2)), t_end=0.1, dt=0.01)
        ),
        InputError,
        r"solve: the diffusion D = theta/10 < 0 for theta < 0 \(.*% of the mesh vertices",
    ),
    (
        "exit-D-theta-over-10",
        lambda: symfp.mean_exit_time(symfp.SDE([th], -th, th / 10), mesh1()),
        InputError,
        r"mean_exit_time: the diffusion D = theta/10 < 0 for theta < 0",
    ),
    (
        "stationary-D-negative-near-0",
        lambda: stationary_density(order2(), mesh1()),
        InputError,
        r"stationary_density: the diffusion D = 0.45\*theta\*\*2 - 0.05 < 0 for -0.333 < theta < 0.333"
        r".*lr ≤ 1",
    ),
    (
        "fe-order2-sme",
        lambda: order2().fokker_planck().solve(mesh1(), sp.exp(-(th**2)), t_end=0.1, dt=0.01),
        InputError,
        r"solve: the diffusion D = .* order-2 stochastic modified equation.*η too large",
    ),
    (
        "fe-sme-of-divergent-sgd",
        lambda: quad(5).sme().fokker_planck().solve(mesh1(-3, 3), sp.exp(-(th**2)), t_end=1.0, dt=0.01),
        DivergenceError,
        r"solve: the SGD that this SME models is linearly unstable: lr·λ_max\(∇²f\) ≥ 2 at 100% of the mesh "
        r"vertices \(lr = 5.*use lr < 2",
    ),
    (
        "exit-sme-of-divergent-sgd",
        lambda: symfp.mean_exit_time(quad(5).sme(), mesh1(-3, 3)),
        DivergenceError,
        r"mean_exit_time: the SGD that this SME models is linearly unstable",
    ),
    (
        "t_end-inf",
        lambda: OU.fokker_planck().solve(mesh1(), sp.exp(-(th**2)), t_end=float("inf"), dt=0.1),
        InputError,
        r"solve: t_end = inf must be a finite time",
    ),
    (
        "p0-all-negative",
        lambda: OU.fokker_planck().solve(mesh1(), -sp.exp(-(th**2)), t_end=0.2, dt=0.1),
        InputError,
        r"solve: p0 is negative everywhere on the mesh",
    ),
    (
        "mesh-cells-2.5",
        lambda: symfp.mesh.box([(-3, 3)], cells=(2.5,)),
        MeshError,
        r"symfp.mesh.box: cells\[0\] = 2.5 is not a positive whole number of cells; give e.g. cells=\(64,\)",
    ),
    (
        "mesh-cells-zero",
        lambda: symfp.mesh.box([(-3, 3), (0, 1)], cells=(4, 0)),
        MeshError,
        r"symfp.mesh.box: cells\[1\] = 0 is not a positive whole number",
    ),
    (
        "mesh-dim",
        lambda: OU.fokker_planck().solve(
            symfp.mesh.box([(-1, 1), (-1, 1)], cells=(4, 4)), sp.exp(-(th**2)), t_end=0.2, dt=0.1
        ),
        MeshError,
        r"solve: the mesh is 2-D but the SDE has 1 state variables",
    ),
]


@pytest.mark.fem
@pytest.mark.mpi
@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in FE_CASES], ids=[c[0] for c in FE_CASES])
def test_finite_elements(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


@pytest.mark.fem
@pytest.mark.mpi
def test_partly_unstable_sme_warns_with_the_valid_lr():
    from symfp.fem.checks import StabilityWarning

    # double well, f'' = 3θ² − 1 up to 11 at the walls: lr = 0.5 is unstable near them only
    sde = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=0.5, noise=0.1).sme()
    with pytest.warns(
        StabilityWarning,
        match=r"unstable: lr·λ_max\(∇²f\) ≥ 2 at .*% of the mesh vertices.*"
        r"Stable on the whole mesh for lr < 0.1818",
    ):
        symfp.mean_exit_time(sde, mesh1())
    with warnings.catch_warnings():  # a stable lr: no warning
        warnings.simplefilter("error", StabilityWarning)
        symfp.mean_exit_time(quad(0.5).sme(), mesh1())


@pytest.fixture(scope="module")
def ou_solution():
    return OU.fokker_planck().solve(
        mesh1(-4, 4, 80), sp.exp(-(th**2) * 2), t_end=0.2, dt=0.02, progress=False
    )


COMPARE_CASES = [
    (
        "cloud-none",
        lambda sol: symfp.compare(sol, None),
        InputError,
        r"compare: the second argument must be a particle cloud .*got NoneType",
    ),
    (
        "solution-none",
        lambda sol: symfp.compare(None, None),
        InputError,
        r"compare: the first argument must be an FE solution .*got NoneType",
    ),
    (
        "two-clouds",
        lambda sol: symfp.compare(
            OU.simulate(100, 0.2, 0.02, init=0.0), OU.simulate(100, 0.2, 0.02, init=0.0)
        ),
        InputError,
        r"compare: the first argument must be an FE solution .*got ParticleCloud \(it is a particle cloud",
    ),
    (
        "other-model-same-names",
        lambda sol: symfp.compare(
            sol, symfp.SDE([th], -2 * th, sp.Rational(1, 2)).simulate(500, 0.2, 0.02, init=0.0)
        ),
        InputError,
        r"compare: the particles simulate a different SDE \(model id [0-9a-f]{16}\) than the one the FE "
        r"solution "
        r"solves .*the state names agree but the models do not",
    ),
    (
        "other-names",
        lambda sol: symfp.compare(
            sol, symfp.SDE([x], -x, sp.Rational(1, 2)).simulate(500, 0.2, 0.02, init=0.0)
        ),
        InputError,
        r"compare: the FE solution is in \(theta\), the particles in \(x\)",
    ),
    (
        "other-time",
        lambda sol: symfp.compare(sol, OU.simulate(500, 0.4, 0.02, init=0.0)),
        InputError,
        r"compare: the FE solution ends at t = 0.2 and the particles at t = 0.4",
    ),
]


def _sme_vs_other_lr(sol):
    sme_sol = quad(0.1).sme().fokker_planck().solve(
        mesh1(-3, 3, 60), sp.exp(-(th**2) * 2), t_end=0.2, dt=0.02, progress=False
    )
    return symfp.compare(sme_sol, quad(0.05).simulate(500, 4, init=0.0))


COMPARE_CASES.append(
    (
        "recursion-other-lr",
        _sme_vs_other_lr,
        InputError,
        r"compare: the particles ran the recursion with step lr = 0.05, but the FE solution solves the "
        r"order-1 stochastic modified equation of SGD with lr = 0.1",
    )
)


@pytest.mark.fem
@pytest.mark.torch
@pytest.mark.parametrize(
    "call,cls,pattern", [c[1:] for c in COMPARE_CASES], ids=[c[0] for c in COMPARE_CASES]
)
def test_compare(ou_solution, call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call(ou_solution)


BACKEND_FE_CASES = [
    (
        "solve-D-theta-over-10",
        lambda b: symfp.SDE([th], -th, th / 10).fokker_planck().solve(
            mesh1(), sp.exp(-(th**2)), t_end=0.1, dt=0.01, backend=b
        ),
        InputError,
        r"solve: the diffusion D = theta/10 < 0 for theta < 0",
    ),
    (
        "exit-D-theta-over-10",
        lambda b: symfp.mean_exit_time(symfp.SDE([th], -th, th / 10), mesh1(), backend=b),
        InputError,
        r"mean_exit_time: the diffusion D = theta/10 < 0 for theta < 0",
    ),
    (
        "stationary-D-negative-near-0",
        lambda b: __import__("symfp.fem.registry", fromlist=["x"]).stationary_density(
            order2(), mesh1(), backend=b
        ),
        InputError,
        r"stationary_density: the diffusion D = 0.45\*theta\*\*2 - 0.05 < 0 for -0.333 < theta < 0.333",
    ),
    (
        "solve-sme-of-divergent-sgd",
        lambda b: quad(5).sme().fokker_planck().solve(
            mesh1(-3, 3), sp.exp(-(th**2)), t_end=1.0, dt=0.01, backend=b
        ),
        DivergenceError,
        r"solve: the SGD that this SME models is linearly unstable",
    ),
]


@pytest.mark.parametrize("case", BACKEND_FE_CASES, ids=[c[0] for c in BACKEND_FE_CASES])
def test_every_fe_backend_refuses_what_dolfinx_refuses(case, backend):
    """The pre-solve checks (D ⪰ 0, SME stability) run on every backend, with the same message."""
    _, call, error, pattern = case
    with pytest.raises(error, match=pattern):
        call(backend)
