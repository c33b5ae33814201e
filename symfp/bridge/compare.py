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

The inputs are checked first: an FE solution and a particle cloud (not None, not two clouds), of
the same model: clouds of an SDE carry its :func:`~symfp.symbolic.sde.model_id`, compared with the
solution's SDE (two different models of the same dimension are refused, whatever the names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass
class Metric:
    """One row of a comparison: FE value, particle value, noise scale, z-score, verdict."""

    name: str
    fe: float
    particles: float
    noise: float
    z: float
    passed: bool
    note: str = ""


@dataclass
class ComparisonReport:
    """The result of :func:`compare`: metrics, a verdict and a printable table."""

    metrics: list[Metric] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every metric is within its noise level."""
        return all(m.passed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON-ready)."""
        return {
            "passed": self.passed,
            "info": dict(self.info),
            "metrics": [
                {k: _plain(v) for k, v in m.__dict__.items()}
                for m in self.metrics
            ],
        }

    def __str__(self) -> str:
        head = f"{'metric':<22}{'FE':>13}{'particles':>13}{'noise':>11}{'z':>8}  ok"

        def num(v: float) -> str:
            return f"{'(ref.)':>13}" if not np.isfinite(v) else f"{v:13.5g}"

        lines = [
            f"FE vs particles at t = {self.info.get('t', float('nan')):g} "
            f"(N = {self.info.get('n', '?')}): {'PASSED' if self.passed else 'FAILED'}",
            head,
        ]
        for m in self.metrics:
            lines.append(
                f"{m.name:<22}{num(m.fe)}{m.particles:13.5g}{m.noise:11.3g}{m.z:8.2f}  "
                f"{'yes' if m.passed else 'NO'}{'  ' + m.note if m.note else ''}"
            )
        for key in ("expected", "fe_error"):
            if self.info.get(key):
                lines.append(f"{key.replace('_', ' ')}: {self.info[key]}")
        return "\n".join(lines)


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
) -> ComparisonReport:
    """Compare an FE Fokker–Planck solution with a particle cloud of the same process (collective).

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
        check_model: refuse a cloud of an SDE other than the solution's (by model id); False lets the
            metrics judge it (to test their sensitivity).

    Returns:
        A :class:`ComparisonReport` (``.passed``, ``str()``, ``.to_dict()``).

    Raises:
        InputError: not an FE solution and a cloud, different final times or dimensions, or a cloud
            of a different model.
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
    names = cloud.state
    for i in range(d):
        noise = float(np.hypot(mse[i], e_mean[i]))
        z = (m[i] - fe_mean[i]) / noise if noise > 0 else np.inf * (m[i] != fe_mean[i])
        report.metrics.append(
            Metric(f"mean[{names[i]}]", fe_mean[i], m[i], noise, float(z), abs(z) <= z_max)
        )
    for i in range(d):
        for j in range(i, d):
            noise = float(np.hypot(cse[i, j], e_cov[i, j]))
            z = (c[i, j] - fe_cov[i, j]) / noise if noise > 0 else np.inf
            report.metrics.append(
                Metric(
                    f"cov[{names[i]},{names[j]}]", fe_cov[i, j], c[i, j], noise, float(z), abs(z) <= z_max
                )
            )
    metric, extra = density_metric(solution, cloud, bins, z_max=z_max, fe_tol=fe_tol)
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
    return report



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
        from ..symbolic.sde import numeric_source

        src = numeric_source(sde)
        lr = getattr(src, "lr", None)
        dt = info.get("dt")
        if lr is not None and getattr(lr, "is_number", False) and dt is not None:
            if abs(float(lr) - float(dt)) > 1e-9 * max(1.0, abs(float(lr))):
                raise InputError(
                    f"compare: the particles ran the recursion with step lr = {float(dt):g}, but the FE "
                    f"solution solves the {getattr(sde, 'origin', 'SDE')} with lr = {float(lr):g}; "
                    "compare the same model"
                )
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


def expected_gap(solution: Any, cloud: Any) -> str:
    """What is expected to differ between the two sides, and at which order in η (one sentence)."""
    sde = getattr(solution, "sde", None)
    origin = str(getattr(sde, "origin", ""))
    source = cloud.info.get("source") if isinstance(getattr(cloud, "info", None), dict) else None
    src = getattr(sde, "source", None)
    lr = getattr(src, "lr", None)
    eta = f" (η = {float(lr):g})" if lr is not None and getattr(lr, "is_number", False) else ""
    for p in (1, 2):
        if f"order-{p} stochastic modified equation" in origin:
            if source == "recursion":
                return (
                    f"the FE side solves the order-{p} SME and the particles run the exact recursion: they "
                    f"differ by the SME's weak error O(η^{p}){eta} besides the noise, so a small z needs "
                    f"η^{p} "
                    "below the noise level; simulate sde.simulate(...) to separate the SME's own error from "
                    "the FE error"
                )
            return (
                "both sides are the same SDE (the SME): only the FE discretisation error, the time-stepping "
                "error of the particles (O(dt) for Euler-Maruyama) and the Monte Carlo noise differ"
            )
    return (
        "both sides are the same SDE: only the FE discretisation error, the particles' time-stepping error "
        "and the Monte Carlo noise differ"
    )
