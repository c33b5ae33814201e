r"""FE ↔ particles: the one place where the Fokker–Planck solution meets the simulated algorithm.

Metrics, each with its Monte Carlo noise level, so that "agree" has a meaning:

* **Density.** Both are reduced to the masses of a grid of bins over the mesh's bounding box: the FE
  mass :math:`P_b = \int_b p` (midpoint rule on ``sub``:sup:`d` points per bin, via the collective
  ``solution.eval``) and the particle fraction :math:`\hat P_b = n_b/N`. The distance is
  :math:`L^1 = \sum_b |\hat P_b - P_b|`. For a perfect sampler, :math:`n_b \sim \mathrm{Bin}(N, P_b)`
  and de Moivre's mean absolute deviation :math:`E|n_b - NP_b| = 2(m+1)(1-P_b)\,\mathrm{pmf}(m+1)`,
  :math:`m = \lfloor NP_b\rfloor`, gives the noise floor :math:`F = \sum_b E|n_b-NP_b|/N` and its
  spread :math:`s^2 = \sum_b (NP_b(1-P_b) - E|\cdot|^2)/N^2` (bins treated as independent). The check
  passes when :math:`L^1 \le F + z_{max}\, s + \text{fe\_tol}` (``fe_tol`` allows for the FE and
  quadrature error). Particles outside the mesh are reported as escaped mass.
* **Moments.** :math:`z = (\hat\mu - \mu_{FE})/\mathrm{se}` for every mean and covariance entry at the
  final time; passes when :math:`\max|z| \le z_{max}`.
* **Exit time** (optional): the FE mean exit time at ``x0`` against the particle mean exit time ± its
  standard error (with the censored fraction reported).
* **FE discretisation error.** With ``coarse=`` (the same problem solved on a mesh with twice the
  cell size) each FE moment gets the Richardson estimate :math:`|m_h - m_{2h}|/3` (P1 elements,
  error O(h²)), added in quadrature to the standard error:
  :math:`z = (\hat m - m_h)/\sqrt{se^2 + e_{FE}^2}`. Without it the report *states* that the FE
  error is not in the tolerance.
* **What is expected to differ.** When the FE side solves an order-p stochastic modified equation
  and the particles run the exact recursion, the two differ by the SME's weak error O(η^p) even
  with no numerical error at all; the report says so (``info["expected"]``), so that a failed
  verdict at large η reads as "the SME is off at this η", not as a solver bug.
* **The SME's own particles** (``sme_particles=``): when the FE side solves an order-p SME and the
  cloud runs the exact recursion, the SME itself is simulated (weak order-2 scheme, step η/4 by
  default, the cloud's particle count, antithetic flag and device, seed + 1 so that the two samples
  are independent) from the same start to the same time, and every moment row gets three columns:
  FE, SME particles, SGD particles. Two verdicts separate the two errors:

  - *discretisation* — FE vs the SME particles, :math:`z = (\hat m_{SME} - m_h)/\sqrt{se^2 +
    e_{FE}^2}`: the same process on both sides, so it passes within the noise floor and the FE error
    (plus the SME particles' own O(dt²) bias);
  - *expansion* — SME particles vs SGD particles, :math:`z = (\hat m_{SGD} - \hat m_{SME})/
    \sqrt{se_{SGD}^2 + se_{SME}^2}`: the SME's weak error O(η^p). A large |z| is the expected gap
    resolved by this N (not a solver bug); a small one says the gap is below the noise.

The inputs are checked first: an FE solution and a particle cloud (not None, not two clouds), of
the same model: clouds of an SDE carry its :func:`~symfp.symbolic.sde.model_id`, compared with the
solution's SDE; clouds of a recursion carry the :func:`~symfp.symbolic.model_hash.model_hash` of
the SGD model (loss, parameters, data, lr, batch size, momentum, noise), compared with the model the
solution's SME was derived from (two different models of the same dimension, or two SGDs with the
same lr on different data, are refused, whatever the names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

NAN = float("nan")


@dataclass
class Metric:
    """One row of a comparison: FE value, particle value, noise scale, z-score, verdict.

    With the SME's own particles (``compare(..., sme_particles=...)``) also: ``sme`` (their value),
    ``z_fe_sme`` (FE vs SME particles: the discretisation test) and ``z_gap`` (SME vs SGD particles:
    the expansion's O(η^p) gap); NaN when not run.
    """

    name: str
    fe: float
    particles: float
    noise: float
    z: float
    passed: bool
    note: str = ""
    sme: float = NAN
    z_fe_sme: float = NAN
    z_gap: float = NAN


@dataclass
class ComparisonReport:
    """The result of :func:`compare`: metrics, a verdict and a printable table.

    ``passed`` is the FE-vs-cloud verdict. With the SME's own particles, ``info["discretisation"]``
    and ``info["expansion"]`` hold the two verdicts that explain it (see the module docstring).
    """

    metrics: list[Metric] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every metric is within its noise level."""
        return all(m.passed for m in self.metrics)

    @property
    def discretisation_passed(self) -> bool | None:
        """FE vs the SME's own particles within z_max on every row (None when they were not run)."""
        d = self.info.get("discretisation")
        return None if not isinstance(d, dict) else bool(d["passed"])

    @property
    def expansion_gap_resolved(self) -> bool | None:
        """SME vs SGD particles beyond z_max on some row: the O(η^p) gap is resolved (None: not run)."""
        e = self.info.get("expansion")
        return None if not isinstance(e, dict) else bool(e["gap_resolved"])

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready)."""
        return {
            "passed": self.passed,
            "info": {k: _plain_tree(v) for k, v in self.info.items()},
            "metrics": [
                {k: _plain(v) for k, v in m.__dict__.items()}
                for m in self.metrics
            ],
        }

    def __str__(self) -> str:
        three = isinstance(self.info.get("discretisation"), dict)

        def num(v: float, fill: str = "(ref.)") -> str:
            return f"{fill:>13}" if not np.isfinite(v) else f"{v:13.5g}"

        def zed(v: float) -> str:
            return f"{'':>9}" if not np.isfinite(v) else f"{v:9.2f}"

        lines = [
            f"FE vs particles at t = {self.info.get('t', float('nan')):g} "
            f"(N = {self.info.get('n', '?')}): {'PASSED' if self.passed else 'FAILED'}",
        ]
        if three:
            lines.append(f"{'metric':<22}{'FE':>13}{'SME part.':>13}{'SGD part.':>13}{'noise':>11}"
                         f"{'z FE-SGD':>9}{'z FE-SME':>9}{'z SME-SGD':>10}  ok")
            for m in self.metrics:
                lines.append(
                    f"{m.name:<22}{num(m.fe)}{num(m.sme, '-')}{m.particles:13.5g}{m.noise:11.3g}"
                    f"{m.z:9.2f}{zed(m.z_fe_sme)}{zed(m.z_gap)} {'yes' if m.passed else 'NO'}"
                    f"{'  ' + m.note if m.note else ''}")
        else:
            lines.append(f"{'metric':<22}{'FE':>13}{'particles':>13}{'noise':>11}{'z':>8}  ok")
            for m in self.metrics:
                lines.append(
                    f"{m.name:<22}{num(m.fe)}{m.particles:13.5g}{m.noise:11.3g}{m.z:8.2f}  "
                    f"{'yes' if m.passed else 'NO'}{'  ' + m.note if m.note else ''}"
                )
        for key in ("expected", "fe_error"):
            if self.info.get(key):
                lines.append(f"{key.replace('_', ' ')}: {self.info[key]}")
        if three:
            lines.append(f"discretisation: {self.info['discretisation']['verdict']}")
            lines.append(f"expansion: {self.info['expansion']['verdict']}")
        elif self.info.get("sme_particles"):
            lines.append(f"SME particles: {self.info['sme_particles']}")
        return "\n".join(lines)


def _plain_tree(v: Any) -> Any:
    """JSON-ready nested values (dicts of floats, bools, strings)."""
    if isinstance(v, dict):
        return {k: _plain_tree(x) for k, x in v.items()}
    return _plain(v)

def _plain(v: Any) -> Any:
    """JSON-ready: floats as floats, NaN (no FE value: the row is a distance) as None."""
    if isinstance(v, (np.floating, float)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def binomial_mad(n: int, p: np.ndarray) -> np.ndarray:
    """E|X − np| for X ~ Binomial(n, p) (de Moivre), elementwise in p."""
    from scipy.stats import binom

    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    m = np.floor(n * p)
    return 2 * (m + 1) * (1 - p) * binom.pmf(m + 1, n, p)


def _bounds(solution: Any, d: int) -> np.ndarray:
    """(d, 2) bounding box of the solution's mesh over all ranks (the mesh protocol, any backend)."""
    from ..mesh import protocol

    return np.asarray(protocol(solution.mesh).bounds())[:d]


def density_metric(
    solution: Any, cloud: Any, bins: int | None = None, sub: int = 4, z_max: float = 4.0, fe_tol: float = 0.01
) -> tuple[Metric, dict[str, Any]]:
    """The binned L¹ density distance, its noise floor and the escaped mass (collective)."""
    from ..particles.mpi import allsum

    d = cloud.dim
    box = _bounds(solution, d)
    n = cloud.n
    if bins is None:  # about 10 expected particles per bin in the mean, at most 64 per direction
        bins = int(np.clip((n / 10) ** (1.0 / d), 4, 64))
    edges = [np.linspace(lo, hi, bins + 1) for lo, hi in box]
    # FE bin masses by the midpoint rule on sub^d points per bin
    fine = [np.linspace(lo, hi, bins * sub + 1) for lo, hi in box]
    mids = [0.5 * (f[1:] + f[:-1]) for f in fine]
    grid = np.stack(np.meshgrid(*mids, indexing="ij"), axis=-1).reshape(-1, d)
    vals = np.nan_to_num(solution.eval(grid), nan=0.0)
    cell = np.prod([(hi - lo) / (bins * sub) for lo, hi in box])
    P = vals.reshape([bins * sub] * d) * cell
    for ax in range(d):
        P = P.reshape(P.shape[:ax] + (bins, sub) + P.shape[ax + 1 :]).sum(axis=ax + 1)
    counts, _ = np.histogramdd(cloud.theta.astype(float), bins=edges)
    counts = allsum(counts, cloud.comm)
    inside = float(counts.sum())
    Phat = counts / n
    l1 = float(np.abs(Phat - P).sum())
    mad = binomial_mad(n, P.ravel())
    floor = float(mad.sum() / n)
    var = np.clip(n * P.ravel() * (1 - P.ravel()) - mad**2, 0, None).sum() / n**2
    spread = float(np.sqrt(var))
    escaped = 1.0 - inside / n
    z = (l1 - floor - fe_tol) / spread if spread > 0 else np.inf
    ok = l1 <= floor + z_max * spread + fe_tol
    note = f"floor {floor:.3g}, {bins}^{d} bins, escaped mass {escaped:.2g}, FE mass {P.sum():.4f}"
    note = ("FE column: none (the row is the L1 distance of the particle histogram to the FE bin "
            "masses); " + note)
    return Metric("density L1", float("nan"), l1, floor, float(z), bool(ok), note), {
        "bins": bins,
        "escaped_mass": escaped,
        "fe_mass_in_bins": float(P.sum()),
    }


def compare(
    solution: Any,
    cloud: Any,
    bins: int | None = None,
    z_max: float = 4.0,
    fe_tol: float = 0.01,
    exit_time: Any = None,
    x0: Any = None,
    coarse: Any = None,
    check_model: bool = True,
    *,
    sme_particles: bool | int | Any = False,
    init: Any = None,
    sme_dt: float | None = None,
    sme_method: str = "weak2",
) -> ComparisonReport:
    r"""Compare an FE Fokker–Planck solution with a particle cloud of the same process (collective).

    Args:
        solution: FE solution (``.times``, ``.observables``, ``.eval(points)``, ``.mesh``).
        cloud: a :class:`symfp.particles.ParticleCloud` at the solution's final time.
        bins: bins per direction for the density distance (default from N).
        z_max: how many noise levels a metric may deviate.
        fe_tol: allowance for the FE discretisation error in the L¹ distance.
        exit_time: optional FE mean exit time (``.eval``) to compare with ``cloud.exit_times()``.
        x0: the start point of the particles for the exit-time comparison.
        coarse: optional FE solution of the same problem on a mesh with twice the cell size: its
            moments give the FE discretisation error estimate added to the tolerance.
        check_model: refuse a cloud of a model other than the solution's (by model id for SDE clouds,
            by model hash for recursion clouds); False lets the metrics judge it (to test their
            sensitivity).
        sme_particles: when the solution solves an SME and the cloud runs the exact recursion, also
            simulate the SME's own particles and report FE / SME particles / SGD particles with the
            discretisation and expansion verdicts (module docstring): True (the cloud's particle
            count), a particle count, or a ready cloud of ``solution.sde``. Ignored (with a note in
            ``info["sme_particles"]``) when the cloud already simulates the SDE.
        init: the particles' initial law for the SME particles (as ``sde.simulate``'s ``init``); None:
            the cloud's start point (refused when the cloud did not start from one point).
        sme_dt: time step of the SME particles (default η/4, η the recursion's step).
        sme_method: their scheme, ``"weak2"`` (default; bias O(dt²)) or ``"euler"``.

    Returns:
        A :class:`ComparisonReport` (``.passed``, ``str()``, ``.to_dict()``).

    Raises:
        InputError: not an FE solution and a cloud, different final times or dimensions, or a cloud
            of a different model; SME particles asked for without a start (``init``).
    """
    _check_pair(solution, cloud, check_model)
    t_fe = float(np.asarray(solution.times)[-1])
    t_p = float(cloud.times[-1])
    if abs(t_fe - t_p) > 1e-6 * max(1.0, abs(t_fe)):
        raise InputError(
            f"compare: the FE solution ends at t = {t_fe:g} and the particles at t = {t_p:g}; "
            "simulate the particles to the same final time"
        )
    d = cloud.dim
    obs = solution.observables
    if np.asarray(obs["mean"]).shape[-1] != d:
        raise InputError(
            f"compare: the FE solution has dimension {np.asarray(obs['mean']).shape[-1]}, the particles {d}"
        )
    report = ComparisonReport(info={"t": t_fe, "n": cloud.n, "z_max": z_max})
    report.info["expected"] = expected_gap(solution, cloud)
    sme_cloud = None
    if sme_particles is not False and sme_particles is not None:
        sme_cloud, why = _sme_cloud(solution, cloud, sme_particles, init=init, dt=sme_dt,
                                    method=sme_method, t_end=t_fe)
        report.info["sme_particles"] = why
    m, mse = cloud.mean(stderr=True)
    c, cse = cloud.cov(stderr=True)
    fe_mean = np.asarray(obs["mean"])[-1]
    fe_cov = np.asarray(obs["cov"])[-1]
    if coarse is not None:
        _check_pair(coarse, cloud, check_model)
        cobs = coarse.observables
        e_mean = np.abs(fe_mean - np.asarray(cobs["mean"])[-1]) / 3.0
        e_cov = np.abs(fe_cov - np.asarray(cobs["cov"])[-1]) / 3.0
        report.info["fe_error"] = (
            "estimated from the coarser solve (Richardson, P1: |m_h - m_2h|/3) and added in quadrature to "
            "the standard errors in the 'noise' column"
        )
    else:
        e_mean, e_cov = np.zeros_like(fe_mean), np.zeros_like(fe_cov)
        report.info["fe_error"] = (
            "not estimated: the tolerance holds the Monte Carlo noise only (and fe_tol for the density); "
            "pass coarse= (a solve on a mesh with twice the cell size) to include the FE error"
        )
    if sme_cloud is not None:
        sm, smse = sme_cloud.mean(stderr=True)
        sc, scse = sme_cloud.cov(stderr=True)
    names = cloud.state
    rows: list[tuple[Any, ...]] = []  # name, FE, SGD, its se, FE error, SME particles, their se
    for i in range(d):
        rows.append((f"mean[{names[i]}]", fe_mean[i], m[i], mse[i], e_mean[i],
                     *((sm[i], smse[i]) if sme_cloud is not None else (NAN, NAN))))
    for i in range(d):
        for j in range(i, d):
            rows.append((f"cov[{names[i]},{names[j]}]", fe_cov[i, j], c[i, j], cse[i, j], e_cov[i, j],
                         *((sc[i, j], scse[i, j]) if sme_cloud is not None else (NAN, NAN))))
    for name, fe, val, se, efe, sval, sse in rows:
        noise = float(np.hypot(se, efe))
        z = _z(val - fe, noise)
        metric = Metric(name, float(fe), float(val), noise, z, abs(z) <= z_max)
        if sme_cloud is not None:
            metric.sme = float(sval)
            metric.z_fe_sme = _z(sval - fe, float(np.hypot(sse, efe)))
            metric.z_gap = _z(val - sval, float(np.hypot(se, sse)))
        report.metrics.append(metric)
    metric, extra = density_metric(solution, cloud, bins, z_max=z_max, fe_tol=fe_tol)
    if sme_cloud is not None:
        sme_density, _ = density_metric(solution, sme_cloud, extra["bins"], z_max=z_max, fe_tol=fe_tol)
        metric.sme, metric.z_fe_sme = sme_density.particles, sme_density.z
    report.metrics.append(metric)
    report.info.update(extra)
    if exit_time is not None:
        if x0 is None:
            raise InputError("compare: give x0 (the particles' start point) to compare exit times")
        tau_fe = float(np.asarray(exit_time.eval(np.atleast_2d(np.asarray(x0, dtype=float))))[0])
        ex = cloud.exit_times()
        tm, tse = ex.mean(stderr=True)
        cf = ex.censored_fraction
        z = (tm - tau_fe) / tse if tse > 0 else np.inf
        report.metrics.append(
            Metric(
                "mean exit time",
                tau_fe,
                tm,
                tse,
                float(z),
                abs(z) <= z_max and cf < 0.01,
                f"censored fraction {cf:.3g}",
            )
        )
    if sme_cloud is not None:
        _verdicts(report, solution, cloud, z_max)
    return report


def _z(diff: float, noise: float) -> float:
    """diff / noise, ±inf when the noise is 0 and the difference is not, 0 when both are."""
    if noise > 0:
        return float(diff / noise)
    return 0.0 if diff == 0 else float(np.copysign(np.inf, diff))


def _sme_order(solution: Any) -> int | None:
    """p when the solution's SDE is an order-p stochastic modified equation, else None."""
    origin = str(getattr(getattr(solution, "sde", None), "origin", ""))
    for p in (1, 2):
        if f"order-{p} stochastic modified equation" in origin:
            return p
    return None


def _sme_cloud(solution: Any, cloud: Any, request: Any, *, init: Any, dt: float | None, method: str,
               t_end: float) -> tuple[Any, str]:
    """The SME's own particles for the three-column comparison (or None) and what was done."""
    info = cloud.info if isinstance(getattr(cloud, "info", None), dict) else {}
    p = _sme_order(solution)
    if info.get("source") != "recursion" or p is None:
        return None, ("not run: the particles already simulate the solved SDE" if info.get("source") == "sde"
                      else "not run: the FE side does not solve an SME of the particles' recursion")
    sde = solution.sde
    if all(hasattr(request, a) for a in ("theta", "mean", "cov", "times")):  # a ready cloud
        cinfo = request.info if isinstance(getattr(request, "info", None), dict) else {}
        from ..symbolic.sde import model_id

        if cinfo.get("source") != "sde" or cinfo.get("model_id") != model_id(sde):
            raise InputError("compare: sme_particles= is a cloud of another process; give a cloud of the "
                             "solved SME (solution.sde.simulate(...)), True, or a particle count")
        if abs(float(request.times[-1]) - t_end) > 1e-6 * max(1.0, abs(t_end)):
            raise InputError(f"compare: the SME particles end at t = {float(request.times[-1]):g}, the FE "
                             f"solution at t = {t_end:g}")
        return request, f"given: {request.n} particles of the order-{p} SME"
    if isinstance(request, bool):
        n = int(cloud.n)
    else:
        try:
            n = int(request)
        except (TypeError, ValueError):
            n = -1
        if n != request or n < 2:
            raise InputError(f"compare: sme_particles={request!r}: give True (as many particles as the "
                             "cloud), a particle count >= 2, or a cloud of the solved SME")
    if init is None:
        traj = cloud.moments()
        cov0 = np.asarray(traj.get("cov"))[0] if traj.get("cov") is not None else None
        m0 = np.asarray(traj["mean"])[0]
        if cov0 is None or np.abs(cov0).max() > 1e-12 * max(1.0, float(np.abs(m0).max()) ** 2):
            raise InputError("compare: the SME particles need the start of the SGD particles, which did not "
                             "start from one point: pass init= (the initial law given to model.simulate)")
        init = [float(v) for v in np.asarray(traj["mean"])[0]]
    eta = float(info.get("dt") or 0.0)
    if dt is None:
        if not eta > 0:
            raise InputError("compare: the cloud does not record its step η; pass sme_dt=")
        dt = eta / 4
    seed = info.get("seed")
    seed = None if seed is None or seed == "None" else int(seed) + 1
    sme = sde.simulate(n_particles=n, t_end=t_end, dt=float(dt), init=init, method=method, seed=seed,
                       device=str(info.get("device", "auto")), antithetic=bool(info.get("antithetic", False)),
                       comm=getattr(cloud, "comm", None), outputs=2)
    bias = "O(dt²)" if method == "weak2" else "O(dt)"
    return sme, (f"{n} particles of the order-{p} SME ({method}, dt = {float(dt):g}: time-stepping bias "
                 f"{bias}), seed {seed} (independent of the SGD particles' seed)")


def _verdicts(report: ComparisonReport, solution: Any, cloud: Any, z_max: float) -> None:
    """The discretisation and expansion verdicts of a three-column comparison (into ``report.info``)."""
    p = _sme_order(solution)
    src = getattr(solution.sde, "source", None)
    lr = getattr(src, "lr", None)
    eta = float(lr) if lr is not None and getattr(lr, "is_number", False) else cloud.info.get("dt")
    disc = [m for m in report.metrics if np.isfinite(m.z_fe_sme)]
    gap = [m for m in report.metrics if np.isfinite(m.z_gap)]
    zd = max((_excess(m, m.z_fe_sme) for m in disc), default=0.0)
    zg = max((abs(m.z_gap) for m in gap), default=0.0)
    worst_d = max(disc, key=lambda m: _excess(m, m.z_fe_sme)).name if disc else "-"
    worst_g = max(gap, key=lambda m: abs(m.z_gap)).name if gap else "-"
    ok = zd <= z_max
    resolved = zg > z_max
    report.info["discretisation"] = {
        "passed": ok, "max_abs_z": zd, "worst": worst_d,
        "verdict": (f"{'PASSED' if ok else 'FAILED'}: FE vs the SME's own particles, max |z| = {zd:.2f} "
                    f"({worst_d}) {'<=' if ok else '>'} {z_max:g}; "
                    + ("the FE solve reproduces the SME within the noise floor (and the FE error when "
                       "coarse= is given)" if ok else
                       "the FE solution (or the SME particles' time stepping) is off: refine the mesh / dt, "
                       "or pass coarse= to include the FE error")),
    }
    report.info["expansion"] = {
        "gap_resolved": resolved, "max_abs_z": zg, "worst": worst_g, "order": p, "eta": eta,
        "verdict": (f"SME particles vs exact-SGD particles, max |z| = {zg:.2f} ({worst_g}): "
                    + (f"the SME's weak error O(η^{p}) at η = {eta:g} is resolved by N = {cloud.n} — "
                       "the expected gap of the expansion, not a solver error"
                       if resolved else
                       f"the SME's O(η^{p}) gap at η = {eta:g} is below the noise at N = {cloud.n}")),
    }


def _excess(metric: Metric, z: float) -> float:
    """How far a row is from agreement: |z| for a moment, z itself for the (one-sided) density distance."""
    return float(z) if metric.name == "density L1" else abs(float(z))


def _check_pair(solution: Any, cloud: Any, check_model: bool = True) -> None:
    """An FE solution and a particle cloud of the same model, or an InputError saying what is wrong."""
    fe_like = all(hasattr(solution, a) for a in ("times", "observables", "eval"))
    cloud_like = all(hasattr(cloud, a) for a in ("theta", "mean", "cov", "times"))
    if not fe_like:
        extra = (" (it is a particle cloud: compare(solution, cloud) takes the FE solution first; two "
                 "clouds are compared through their .mean(stderr=True) and .cov(stderr=True))"
                 if hasattr(solution, "theta") else "")
        raise InputError(
            f"compare: the first argument must be an FE solution (from fp.solve), got "
            f"{type(solution).__name__}{extra}"
        )
    if not cloud_like:
        raise InputError(
            f"compare: the second argument must be a particle cloud (model.simulate or sde.simulate), got "
            f"{type(cloud).__name__}"
        )
    sde = getattr(solution, "sde", None)
    if sde is None:
        return
    fe_names = [str(s) for s in sde.state]
    if list(map(str, cloud.state)) != fe_names:
        raise InputError(
            f"compare: the FE solution is in ({', '.join(fe_names)}), the particles in "
            f"({', '.join(map(str, cloud.state))}); compare the same model"
        )
    info = cloud.info if isinstance(getattr(cloud, "info", None), dict) else {}
    if check_model and info.get("source") == "recursion" and not info.get("lr_schedule"):
        _check_recursion_model(sde, info)
    cid = info.get("model_id")
    if check_model and cid is not None and cloud.info.get("source") == "sde":
        from ..symbolic.sde import model_id

        fid = model_id(sde)
        if fid != cid:
            raise InputError(
                f"compare: the particles simulate a different SDE (model id {cid}) than the one the FE "
                f"solution solves (model id {fid}: drift {list(sde.drift)}, D {sde.diffusion.tolist()}); "
                "the state names agree but the models do not. Simulate the solved SDE (sde.simulate)"
            )


def _check_recursion_model(sde: Any, info: dict[str, Any]) -> None:
    """A recursion cloud must come from the model the SME was derived from: its lr first (the most
    common mix-up, named in the message), then the whole model by hash."""
    from ..symbolic.sde import numeric_source

    src = numeric_source(sde)
    if src is None:
        return
    lr = getattr(src, "lr", None)
    dt = info.get("dt")
    if lr is not None and getattr(lr, "is_number", False) and dt is not None:
        if abs(float(lr) - float(dt)) > 1e-9 * max(1.0, abs(float(lr))):
            raise InputError(
                f"compare: the particles ran the recursion with step lr = {float(dt):g}, but the FE "
                f"solution solves the {getattr(sde, 'origin', 'SDE')} with lr = {float(lr):g}; "
                "compare the same model"
            )
    numeric = not (getattr(src, "parameters", set()) or getattr(getattr(src, "recursion", src), "parameters",
                                                                    set()))
    cid = info.get("model_hash")
    if cid is not None and numeric and hasattr(getattr(src, "recursion", src), "update"):
        from ..symbolic.model_hash import model_hash

        fid = model_hash(src)
        if fid != str(cid):
            raise InputError(
                f"compare: the particles ran another recursion (model hash {cid}) than the one the FE "
                f"solution's {getattr(sde, 'origin', 'SDE')} was derived from (model hash {fid}); the "
                "learning rates agree, so the loss, data, batch size, momentum, weight decay or noise "
                "differ. Simulate the same model (model.simulate of the SGD whose .sme() was solved)"
            )


def expected_gap(solution: Any, cloud: Any) -> str:
    """What is expected to differ between the two sides, and at which order in η (one sentence)."""
    from ..symbolic.sde import numeric_source

    sde = getattr(solution, "sde", None)
    source = cloud.info.get("source") if isinstance(getattr(cloud, "info", None), dict) else None
    src = numeric_source(sde) if sde is not None else None
    lr = getattr(src, "lr", None)
    eta = f" (η = {float(lr):g})" if lr is not None and getattr(lr, "is_number", False) else ""
    p = _sme_order(solution)
    if p is not None:
        if source == "recursion":
            return (
                f"the FE side solves the order-{p} SME and the particles run the exact recursion: they "
                f"differ by the SME's weak error O(η^{p}){eta} besides the noise, so a small z needs η^{p} "
                "below the noise level; the SME's own particles (sme_particles=True) separate the SME's "
                "weak error (SME vs SGD particles) from the FE error (FE vs SME particles)"
            )
        return (
            "both sides are the same SDE (the SME): only the FE discretisation error, the time-stepping "
            "error of the particles (O(dt) for Euler-Maruyama) and the Monte Carlo noise differ"
        )
    return (
        "both sides are the same SDE: only the FE discretisation error, the particles' time-stepping error "
        "and the Monte Carlo noise differ"
    )
