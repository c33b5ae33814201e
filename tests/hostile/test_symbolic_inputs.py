"""Hostile inputs to the symbolic layer: each is refused with a symfp error whose message names what was
wrong and where (the function and the offending value), never a traceback, a hang or a silent number.

Every case is (id, call, error class, regex the message must match). The regexes name both the place
(``SGD``, ``loss``, ``SDE``, ``solve``...) and the culprit (the token, the value, the symbol).
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
import sympy as sp

import symfp
from symfp.errors import DataError, ExpressionError, InputError
from symfp.symbolic.parsing import parse_string

th = sp.Symbol("theta", real=True)
x, y = sp.symbols("x y", real=True)
t = sp.Symbol("t")
NAMES = {"theta": th, "x": x}


def sgd(**kw):
    base = dict(loss=th**2 / 2, params=[th], data=None, lr=0.1)
    base.update(kw)
    return symfp.SGD(**base)


DS = symfp.Dataset({x: np.arange(10.0)})

PARSER_CASES = [
    ("sum-1200", "+".join(["theta**2"] * 1200), None, None),  # correct: 1200*theta**2
    ("minus-5000", "-" * 5000 + "theta**2", None, None),  # correct: theta**2 (even count)
    ("minus-5001", "-" * 5001 + "theta**2", None, None),  # correct: -theta**2
    ("tower-9-9-9", "theta**2 + 9**9**9", ExpressionError, r"loss: the constant power '9\*\*9\*\*9'.*digits"),
    (
        "huge-exp",
        "theta**(10**6)",
        ExpressionError,
        r"loss: the exponent of 'theta\*\*\(10\*\*6\)' is 1000000",
    ),
    ("power-tower", "theta" + "**theta" * 400, ExpressionError, r"loss: .*nested more than 150 levels"),
    ("parens", "(" * 300 + "theta" + ")" * 300, ExpressionError, r"loss: cannot parse .*nested parentheses"),
    ("too-long", "theta+" * 20000 + "1", ExpressionError, r"loss: the string is 120001 characters long"),
    ("calls-deep", "exp(" * 200 + "theta" + ")" * 200, ExpressionError, r"loss: .*(nested|parentheses)"),
    ("unknown-name", "theta**2 + z", ExpressionError, r"loss: unknown name 'z'"),
    ("attribute", "theta.real", ExpressionError, r"loss: attribute access 'theta.real' is not allowed"),
    ("dunder", "__import__('os')", ExpressionError, r"loss: call of '__import__' is not allowed"),
    (
        "lambda",
        "(lambda: 1)()",
        ExpressionError,
        r"loss: call of 'lambda: 1' is not allowed in '\(lambda: 1\)\(\)'",
    ),
    ("xor", "theta^2", ExpressionError, r"loss: operator '\^ \(use \*\* for powers\)' in 'theta\^2'"),
    ("floordiv", "theta//2", ExpressionError, r"loss: operator '//' in 'theta//2'"),
    ("string-literal", "'a' + theta", ExpressionError, r"loss: the literal \"'a'\" is not allowed"),
    ("bool-literal", "True * theta", ExpressionError, r"loss: the literal 'True' is not allowed"),
    ("compare", "theta < 1", ExpressionError, r"loss: comparison 'theta < 1' is not allowed"),
    ("syntax", "theta**", ExpressionError, r"loss: cannot parse 'theta\*\*'"),
    ("kwargs-call", "exp(x=theta)", ExpressionError, r"loss: the call 'exp\(x=theta\)' is not allowed"),
    ("subscript", "theta[0]", ExpressionError, r"loss: subscript 'theta\[0\]' is not allowed"),
    ("not-a-string", 3.5j, ExpressionError, r"loss: expected a string, got complex"),
]


@pytest.mark.parametrize("text,cls,pattern", [c[1:] for c in PARSER_CASES], ids=[c[0] for c in PARSER_CASES])
def test_string_losses(text, cls, pattern):
    def alarm(signum, frame):
        raise TimeoutError("the parser hung")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(20)
    try:
        t0 = time.perf_counter()
        if cls is None:
            expr = parse_string(text, NAMES)
            n = text.count("theta**2")
            signs = len(text) - len(text.lstrip("-"))
            expected = n * th**2 if n > 1 else (-1) ** signs * th**2
            assert sp.simplify(expr - expected) == 0
        else:
            with pytest.raises(cls, match=pattern):
                parse_string(text, NAMES)
        assert time.perf_counter() - t0 < 10
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


SGD_CASES = [
    ("lr-nan", lambda: sgd(lr=float("nan")), InputError, r"SGD: lr = nan is not a finite number"),
    ("lr-inf", lambda: sgd(lr=float("inf")), InputError, r"SGD: lr = inf is not a finite number"),
    ("lr-zero", lambda: sgd(lr=0), InputError, r"SGD: lr = 0 must be > 0"),
    ("lr-negative", lambda: sgd(lr=-0.1), InputError, r"SGD: lr = -0.1 must be > 0"),
    ("lr-complex", lambda: sgd(lr=1j), InputError, r"SGD: lr = 1j is not real|lr .* not"),
    ("lr-string", lambda: sgd(lr="fast"), InputError, r"SGD: lr = 'fast'"),
    ("lr-time-t", lambda: sgd(lr=0.2 / (1 + t)), InputError, r"SGD: lr = .*contains t.*lr_schedule="),
    (
        "lr-step-k",
        lambda: sgd(lr=0.2 / (1 + sp.Symbol("k"))),
        InputError,
        r"SGD: lr .*contains k.*lr_schedule",
    ),
    ("lr-uses-param", lambda: sgd(lr=th / 10), InputError, r"SGD: lr = theta/10 contains parameter/data"),
    (
        "batch-2.5",
        lambda: sgd(loss=(th - x) ** 2, data=DS, batch_size=2.5),
        InputError,
        r"SGD: batch_size = 2.5 must be a whole number",
    ),
    (
        "batch-too-big",
        lambda: sgd(loss=(th - x) ** 2, data=DS, batch_size=11),
        InputError,
        r"SGD: batch_size = 11 exceeds the number of samples N = 10",
    ),
    (
        "batch-zero",
        lambda: sgd(loss=(th - x) ** 2, data=DS, batch_size=0),
        InputError,
        r"SGD: batch_size = 0 must be > 0",
    ),
    (
        "batch-nan",
        lambda: sgd(loss=(th - x) ** 2, data=DS, batch_size=float("nan")),
        InputError,
        r"SGD: batch_size = nan is not a finite number",
    ),
    ("momentum-1", lambda: sgd(momentum=1), InputError, r"SGD: momentum = 1 must lie in \[0, 1\)"),
    ("noise-negative", lambda: sgd(noise=-1), InputError, r"SGD: noise = -1 must be >= 0"),
    ("noise-inf", lambda: sgd(noise=float("inf")), InputError, r"SGD: noise = inf is not a finite number"),
    (
        "weight-decay-nan",
        lambda: sgd(weight_decay=float("nan")),
        InputError,
        r"SGD: weight_decay = nan is not a finite number",
    ),
    ("no-params", lambda: sgd(params=[]), InputError, r"SGD: params is empty"),
    (
        "loss-without-param",
        lambda: sgd(loss=x**2, params=[th], data=DS),
        ExpressionError,
        r"SGD: the loss x\*\*2 does not contain any parameter \(theta\)",
    ),
    (
        "undeclared-symbol",
        lambda: sgd(loss=th**2 + sp.Symbol("c") * th),
        ExpressionError,
        r"SGD: the loss contains symbol\(s\) c that are neither",
    ),
    ("data-not-dataset", lambda: sgd(data={x: [1, 2]}), DataError, r"SGD: data must be a symfp.Dataset"),
    (
        "param-is-data",
        lambda: sgd(loss=(th - x) ** 2, params=[th, x], data=DS),
        InputError,
        r"SGD: \['x'\] are both parameters and data symbols",
    ),
    ("loss-matrix", lambda: sgd(loss=sp.Matrix([th, th])), ExpressionError, r"SGD loss: expected a scalar"),
    (
        "loss-callable-numpy",
        lambda: sgd(loss=lambda theta: np.cos(theta)),
        ExpressionError,
        r"SGD loss: tracing '<lambda>' with SymPy symbols failed",
    ),
    (
        "loss-string-power",
        lambda: sgd(loss="theta**2 + 9**9**9"),
        ExpressionError,
        r"SGD loss: the constant power '9\*\*9\*\*9'",
    ),
    ("sme-order-3", lambda: sgd().sme(order=3), InputError, r"sme: order = 3 is not supported"),
]


@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in SGD_CASES], ids=[c[0] for c in SGD_CASES])
def test_sgd_arguments(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


def test_batch_size_2_point_0_is_the_integer_2():
    m = sgd(loss=(th - x) ** 2, data=DS, batch_size=2.0)
    assert m.batch_size == 2 and m.batch_size.is_Integer


SDE_CASES = [
    (
        "D-negative-constant",
        lambda: symfp.SDE([th], -th, [[-sp.Rational(1, 10)]]),
        InputError,
        r"SDE: the diffusion matrix D = \[\[-1/10\]\] has a negative eigenvalue -0.1",
    ),
    (
        "D-indefinite-constant",
        lambda: symfp.SDE([x, y], [-x, -y], [[1, 2], [2, 1]]),
        InputError,
        r"SDE: the diffusion matrix D = \[\[1, 2\], \[2, 1\]\] has a negative eigenvalue -1",
    ),
    ("D-nan", lambda: symfp.SDE([th], -th, sp.nan), InputError, r"SDE: the diffusion matrix D = \[\[nan\]\]"),
    (
        "D-asymmetric",
        lambda: symfp.SDE([x, y], [-x, -y], [[1, 0], [1, 1]]),
        InputError,
        r"SDE: the diffusion matrix D = σσᵀ/2 must be symmetric",
    ),
    (
        "D-shape",
        lambda: symfp.SDE([x, y], [-x, -y], [[1, 0, 0]]),
        InputError,
        r"SDE: diffusion has shape \(1, 3\)",
    ),
    (
        "drift-shape",
        lambda: symfp.SDE([x, y], [-x], 1),
        InputError,
        r"SDE: drift has shape \(1, 1\), expected \(2, 1\)",
    ),
    ("state-empty", lambda: symfp.SDE([], [], 1), InputError, r"SDE: the state is empty"),
    ("state-repeated", lambda: symfp.SDE([x, x], [-x, -x], 1), InputError, r"SDE: repeated state symbols"),
    ("state-not-symbol", lambda: symfp.SDE([x + 1], [-x], 1), InputError, r"SDE: state entry x \+ 1 is not"),
    ("time-is-state", lambda: symfp.SDE([th], -th, 1, time=th), InputError, r"SDE: time=theta must be"),
    (
        "subs-state",
        lambda: symfp.SDE([th], -th, sp.Symbol("s")).subs({th: 1}),
        InputError,
        r"SDE.subs: cannot substitute for state variables",
    ),
    (
        "subs-to-negative-D",
        lambda: symfp.SDE([th], -th, sp.Symbol("s")).subs({"s": -1}),
        InputError,
        r"SDE: the diffusion matrix D = \[\[-1\]\] has a negative eigenvalue",
    ),
]


@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in SDE_CASES], ids=[c[0] for c in SDE_CASES])
def test_sde_construction(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


def _check(sde, lo=-2, hi=2):
    from symfp.symbolic.sde import check_diffusion

    check_diffusion(sde, np.linspace(lo, hi, 201)[:, None], "check", region="the sample points")


def _order2():
    m = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=1.5, noise=0.1)
    return m.sme(order=2)


PSD_CASES = [
    (
        "D-theta-over-10",
        lambda: _check(symfp.SDE([th], -th, th / 10)),
        InputError,
        r"check: the diffusion D = theta/10 < 0 for theta < 0 \(49.\d% of the sample points",
    ),
    (
        "order2-sme-D-negative-near-0",
        lambda: _check(_order2()),
        InputError,
        r"D = 0.45\*theta\*\*2 - 0.05 < 0 for -0.333 < theta < 0.333.*order-2 stochastic modified equation.*"
        r"outside its range \(η too large for this loss\): D ⪰ 0 at the same points for lr ≤ 1 "
        r"\(here lr = 1.5\)",
    ),
    (
        "D-cos",
        lambda: _check(symfp.SDE([th], -th, sp.cos(th)), -3, 3),
        InputError,
        r"check: the diffusion D = cos\(theta\) < 0 for theta in \[-3, -1.59\] ∪ \[1.59, 3\] "
        r"\(sample points\)",
    ),
    (
        "D-2d-indefinite",
        lambda: _check_2d(),
        InputError,
        r"check: the diffusion D = \[\[1, x\], \[x, 1\]\] is not positive semi-definite on \[.*\] × \[.*\]",
    ),
]


def _check_2d():
    from symfp.symbolic.sde import check_diffusion

    g = np.stack(np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-2, 2, 21)), -1).reshape(-1, 2)
    check_diffusion(symfp.SDE([x, y], [-x, -y], [[1, x], [x, 1]]), g, "check")


@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in PSD_CASES], ids=[c[0] for c in PSD_CASES])
def test_diffusion_not_psd_names_the_region(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


def test_psd_diffusion_and_round_off_pass():
    from symfp.symbolic.sde import check_diffusion

    pts = np.linspace(-2, 2, 101)[:, None]
    check_diffusion(symfp.SDE([th], -th, th**2 + sp.Rational(1, 100)), pts, "check")
    # round-off of a constant: D = c − 5.55e−18·θ is PSD to machine precision on [-2, 2]
    check_diffusion(symfp.SDE([th], -th, 0.1 - 5.55e-18 * th), pts, "check")
    # the order-2 SME at a valid lr (η = 0.5 < 1) is PSD: D = 0.05 + 0.15θ²
    m = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=0.5, noise=0.1)
    check_diffusion(m.sme(order=2), pts, "check")


DATA_CASES = [
    ("dataset-empty", lambda: symfp.Dataset({}), DataError, r"Dataset: give a non-empty mapping"),
    (
        "dataset-unequal",
        lambda: symfp.Dataset({x: [1.0, 2.0], y: [1.0]}),
        DataError,
        r"Dataset: columns have unequal lengths",
    ),
    (
        "dataset-2d-column",
        lambda: symfp.Dataset({x: np.ones((2, 2))}),
        DataError,
        r"Dataset: column x has shape \(2, 2\)",
    ),
    ("dataset-strings", lambda: symfp.Dataset({x: ["a", "b"]}), DataError, r"Dataset: column x"),
    ("dataset-nan", lambda: symfp.Dataset({x: [1.0, float("nan")]}), DataError, r"Dataset: column x"),
]


@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_data(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


def test_latex_document_write_to_a_directory_or_under_a_file(tmp_path):
    from symfp.errors import OutputError

    doc = symfp.latex_document(symfp.SDE([th], -th, sp.Rational(1, 2)))
    with pytest.raises(OutputError, match=rf"LatexDocument.write: cannot write {tmp_path}: Is a directory"):
        doc.write(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        OutputError, match=r"LatexDocument.write: cannot write .*file/d.tex: (Not a directory|File exists)"
    ):
        doc.write(blocker / "d.tex")
    assert doc.write(tmp_path / "d.tex").read_text() == doc.source
    assert not list(tmp_path.glob(".d.tex.tmp-*"))


def test_mesh_cells_validation():
    from symfp.errors import MeshError
    from symfp.fem.checks import check_cells

    for bad, shown in [
        ((2.5,), "2.5"),
        ((0,), "0"),
        ((True,), "True"),
        ((float("nan"),), "nan"),
        (("8",), "'8'"),
        ((4, -1), "-1"),
    ]:
        with pytest.raises(
            MeshError, match=rf"mesh.box: cells\[\d\] = {shown} is not a positive whole number"
        ):
            check_cells(bad)
    assert check_cells((4.0, 8)) == (4, 8) and check_cells(16) == 16


# ---------------------------------------------------------------------- time-dependent D (schedules)
def _warmup_sme():
    """Order-2 SME of noisy SGD on θ⁴/4 − θ²/2 (δ = 0.1) under the warm-up schedule η(t) = 1/2 + t.

    D(θ, t) = δ(1 + η(t) f''(θ)) = 0.1 (1 + (1/2 + t)(3θ² − 1)): PSD at t = 0 (0.05 + 0.15θ²), negative
    near θ = 0 once t > 1/2; at t = 1 (η = 1.5) it is 0.45θ² − 0.05 < 0 for |θ| < 1/3.
    """
    eta = sp.Symbol("eta", positive=True)
    sde = symfp.SGD(loss=th**4 / 4 - th**2 / 2, params=[th], data=None, lr=eta, noise=0.1).sme(order=2)
    lr = sp.Rational(1, 2) + t
    return symfp.SDE(sde.state, sde.drift.subs(eta, lr), sde.diffusion.subs(eta, lr), origin=sde.origin,
                     time=t)


def _check_t(sde, t_end, lo=-2, hi=2, d=1):
    from symfp.symbolic.sde import check_diffusion

    pts = np.linspace(lo, hi, 201)[:, None] if d == 1 else np.stack(
        np.meshgrid(np.linspace(lo, hi, 21), np.linspace(lo, hi, 21)), -1).reshape(-1, 2)
    check_diffusion(sde, pts, "solve", region="the mesh vertices", t_end=t_end)


TIME_CASES = [
    (
        "warmup-sme-negative-after-t-half",
        lambda: _check_t(_warmup_sme(), 1.0),
        InputError,
        r"solve: the diffusion D = .* < 0 for -0.333 < theta < 0.333 at t = 1 \(.*% of the mesh vertices at "
        r"17 times in \[0, 1\].*most negative eigenvalue -0.05 at theta = \S+, t = 1\).*order-2",
    ),
    (
        "polynomial-dip-between-samples",  # D = (t − 1)² + θ² − 10⁻⁶ < 0 only for |t − 1| < 10⁻³ near θ = 0
        lambda: _check_t(symfp.SDE([th], -th, (t - 1) ** 2 + th**2 - sp.Rational(1, 10**6), time=t), 2.3),
        InputError,
        r"solve: the diffusion D = .* < 0 for .*theta.* at t = 1 .*most negative eigenvalue -1e-06 at "
        r"theta = \S+, t = 1\)",
    ),
    (
        "state-free-D-negative-at-the-end",  # D = (1 − t)/10 depends on time only: negative for t > 1
        lambda: _check_t(symfp.SDE([th], -th, (1 - t) / 10, time=t), 2.0),
        InputError,
        r"solve: the diffusion D = 1/10 - t/10 < 0 for every theta at t = 2 .*eigenvalue -0.1 at .*t = 2\)",
    ),
    (
        "2d-schedule-loses-definiteness",  # D = diag(1 − t/2, 1): indefinite for t > 2
        lambda: _check_t(symfp.SDE([x, y], [-x, -y], [[1 - t / 2, 0], [0, 1]], time=t), 3.0, d=2),
        InputError,
        r"solve: the diffusion D = \[\[1 - t/2, 0\], \[0, 1\]\] is not positive semi-definite on "
        r"\[-2, 2\] × \[-2, 2\] at t = 3 \(100% of the mesh vertices",
    ),
    (
        "t-end-not-finite",
        lambda: _check_t(_warmup_sme(), float("nan")),
        InputError,
        r"solve: t_end = nan must be a finite time >= 0",
    ),
]


@pytest.mark.parametrize("call,cls,pattern", [c[1:] for c in TIME_CASES], ids=[c[0] for c in TIME_CASES])
def test_time_dependent_diffusion_is_checked_over_the_interval(call, cls, pattern):
    with pytest.raises(cls, match=pattern):
        call()


def test_time_dependent_diffusion_passes_where_it_is_psd_and_t0_only_without_t_end():
    _check_t(_warmup_sme(), 0.5)  # D(0, t) = 0.1 (1/2 − t) ≥ 0 up to t = 1/2 (the boundary, exactly 0)
    _check_t(symfp.SDE([th], -th, (t - 1) ** 2 + th**2 - sp.Rational(1, 10**6), time=t), 0.9)
    _check_t(_warmup_sme(), None)  # no interval given: t = 0 only (backward compatible), PSD there
    with pytest.raises(InputError, match=r"at t = 0 only: D depends on time, pass t_end"):
        _check_t(symfp.SDE([th], -th, th / 10 - t, time=t), None)


def test_fe_check_takes_the_solves_t_end():
    from symfp.fem.checks import check_diffusion_on_mesh, check_fe_problem

    pts = np.linspace(-2, 2, 101)[:, None]  # an (n, d) array is accepted as the mesh's vertices
    sde = _warmup_sme()
    check_fe_problem(sde, pts, "solve")  # the old call (t = 0) still works
    with pytest.raises(InputError, match=r"solve: the diffusion .* at t = 1 \(.*of the mesh vertices at 17 "):
        check_fe_problem(sde, pts, "solve", t_end=1.0)
    with pytest.raises(InputError, match=r"at t = 0.8"):
        check_diffusion_on_mesh(sde, pts, "solve", t_end=0.8)


def test_forward_solve_checks_a_time_dependent_diffusion_up_to_t_end(backend):
    # through fp.solve on each backend: the warm-up SME is PSD up to t = 1/2, so a solve to 0.4 runs
    # and a solve to 1 is refused before assembling, naming the time
    mesh = symfp.mesh.box([(-2, 2)], cells=40, backend=backend)
    fp = _warmup_sme().fokker_planck()
    p0 = sp.exp(-4 * th**2)
    sol = fp.solve(mesh, p0, t_end=0.4, dt=0.1, progress=False, backend=backend)
    assert abs(float(sol.observables["mass"][-1]) - 1.0) < 1e-6
    with pytest.raises(InputError, match=r"solve: the diffusion D = .* < 0 for .*theta.* at t = 1"):
        fp.solve(mesh, p0, t_end=1.0, dt=0.1, progress=False, backend=backend)
