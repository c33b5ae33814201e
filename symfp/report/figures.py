"""Figures of the report, drawn from plain numpy arrays.

Every function returns the :class:`matplotlib.figure.Figure` (Agg backend) without saving it; the
plotted arrays stay reachable through ``fig.axes[i].lines`` / ``.patches`` / ``.collections``, which the
tests check. :func:`save` writes a PNG and closes the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def save(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it; returns the path."""
    from .atomic import write_with

    path = Path(path)
    try:
        write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"),
                   what="figure")
    finally:
        plt.close(fig)
    return path


def image_rows(X: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` on a meshgrid as an image: rows along y, columns along x (what ``imshow`` draws).

    A grid from ``np.meshgrid(xs, ys, indexing="ij")`` has x varying along axis 0, so its values must
    be transposed; one with ``indexing="xy"`` (x along axis 1) is already in image order.
    """
    X, values = np.asarray(X), np.asarray(values).reshape(np.shape(X))
    ij = X.shape[0] > 1 and X[1, 0] != X[0, 0]
    return values.T if ij else values


def density_figure(snapshots: Sequence[Mapping[str, Any]], labels: Sequence[str] = ("θ",)) -> Figure:
    """FE density against the particle histogram at a few times.

    Args:
        snapshots: one dict per time with ``t``; ``grid`` (1-D: the points, shape (m,); 2-D: a pair
            ``(X, Y)`` of meshgrid arrays); ``fe`` (the FE density on the grid, same shape as the grid
            points); ``samples`` (particle positions, shape (n, d)) or None.
        labels: names of the state variables for the axes.

    Returns:
        1-D: one panel per time, the FE density as a line over the particle histogram (density=True).
        2-D: two rows (FE image, particle 2-D histogram) and one column per time.
    """
    if not snapshots:
        raise ValueError("density_figure: no snapshots")
    first = snapshots[0]["grid"]
    two_d = isinstance(first, (tuple, list)) and len(first) == 2
    k = len(snapshots)
    if not two_d:
        fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 3.4), squeeze=False)
        for ax, snap in zip(axes[0], snapshots, strict=True):
            grid, fe = np.asarray(snap["grid"], float).ravel(), np.asarray(snap["fe"], float).ravel()
            samples = snap.get("samples")
            if samples is not None:
                s = np.asarray(samples, float).reshape(len(samples), -1)[:, 0]
                ax.hist(
                    s,
                    bins=min(80, max(10, int(np.sqrt(len(s))))),
                    range=(grid.min(), grid.max()),
                    density=True,
                    alpha=0.45,
                    color="tab:orange",
                    label="particles",
                )
            ax.plot(grid, fe, color="tab:blue", lw=1.8, label="finite elements")
            ax.set_title(f"t = {snap['t']:.3g}")
            ax.set_xlabel(labels[0])
            ax.set_ylabel("density")
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        return fig
    fig, axes = plt.subplots(2, k, figsize=(3.8 * k, 6.6), squeeze=False)
    for j, snap in enumerate(snapshots):
        X, Y = (np.asarray(a, float) for a in snap["grid"])
        fe = np.asarray(snap["fe"], float).reshape(X.shape)
        ext = (X.min(), X.max(), Y.min(), Y.max())
        axes[0][j].imshow(image_rows(X, fe), origin="lower", extent=ext, aspect="auto", cmap="viridis")
        axes[0][j].set_title(f"FE, t = {snap['t']:.3g}")
        samples = snap.get("samples")
        if samples is not None:
            s = np.asarray(samples, float)
            axes[1][j].hist2d(
                s[:, 0], s[:, 1], bins=60, range=[ext[:2], ext[2:]], density=True, cmap="viridis"
            )
        axes[1][j].set_title(f"particles, t = {snap['t']:.3g}")
        for i in range(2):
            axes[i][j].set_xlabel(labels[0])
            axes[i][j].set_ylabel(labels[1] if len(labels) > 1 else "")
    fig.tight_layout()
    return fig


def _points(ax, pts: Mapping[str, Any] | None, key: str, comp: Any = None, label: str = "particles") -> None:
    """Particle values (with 2-stderr bars when given) at their times."""
    if not pts or key not in pts:
        return
    t = np.atleast_1d(np.asarray(pts["t"], float))
    v = np.asarray(pts[key], float)
    e = pts.get(key + "_stderr")
    e = None if e is None else np.asarray(e, float)
    if comp is not None:
        v = v.reshape(len(t), -1)[:, comp]
        e = None if e is None else e.reshape(len(t), -1)[:, comp]
    ax.errorbar(
        t,
        v.reshape(len(t)),
        yerr=None if e is None else 2 * e.reshape(len(t)),
        fmt="o",
        ms=4,
        capsize=3,
        color="tab:orange",
        label=label,
    )


def observables_figure(
    fe: Mapping[str, Any], particles: Mapping[str, Any] | None = None, labels: Sequence[str] = ()
) -> Figure:
    """Observables of the FE solution against time, with particle estimates as points.

    Args:
        fe: FE observables: ``t`` (T,), ``mass`` (T,), ``mean`` (T×d), ``cov`` (T×d×d); optional
            ``basins`` ({name: (T,)}), ``entropy`` (T,) and any other (T,) series in ``extra``.
        particles: optional particle estimates at a few times: ``t`` (P,), ``mean`` (P×d),
            ``mean_stderr``, ``var`` (P×d), ``var_stderr``, ``basins`` ({name: (P,)}).
        labels: state names.

    Returns:
        A figure with panels mass, mean, variance, and basin masses / entropy when present. Panel
        titles are "mass", "mean", "variance", "basin mass", "entropy".
    """
    t = np.asarray(fe["t"], float)
    mean = np.asarray(fe["mean"], float).reshape(len(t), -1)
    d = mean.shape[1]
    var = np.diagonal(np.asarray(fe["cov"], float).reshape(len(t), d, d), axis1=1, axis2=2)
    labels = list(labels) or [f"θ{i + 1}" for i in range(d)]
    panels = ["mass", "mean", "variance"]
    if fe.get("basins"):
        panels.append("basin mass")
    if fe.get("entropy") is not None:
        panels.append("entropy")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels), 3.3), squeeze=False)
    axes = dict(zip(panels, axes[0], strict=True))
    axes["mass"].plot(t, np.asarray(fe["mass"], float), color="tab:blue", label="FE")
    m = np.asarray(fe["mass"], float)
    axes["mass"].set_ylim(min(0.9, float(m.min()) - 0.01), max(1.1, float(m.max()) + 0.01))
    for i in range(d):
        axes["mean"].plot(t, mean[:, i], label=f"FE E[{labels[i]}]")
        axes["variance"].plot(t, var[:, i], label=f"FE Var[{labels[i]}]")
        _points(axes["mean"], particles, "mean", i)
        _points(axes["variance"], particles, "var", i)
    if "basin mass" in axes:
        for name, series in fe["basins"].items():
            axes["basin mass"].plot(t, np.asarray(series, float), label=f"FE {name}")
            if particles and name in (particles.get("basins") or {}):
                _points(
                    axes["basin mass"],
                    {
                        "t": particles.get("basins_t", particles["t"]),
                        "b": particles["basins"][name],
                        "b_stderr": (particles.get("basins_stderr") or {}).get(name),
                    },
                    "b",
                    label=f"particles {name}",
                )
    if "entropy" in axes:
        axes["entropy"].plot(t, np.asarray(fe["entropy"], float), label="FE")
    for name, ax in axes.items():
        ax.set_title(name)
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def exit_time_figure(
    exit_times: np.ndarray, fe_mean: float, start: Any = None, kramers: float | None = None
) -> Figure:
    """Histogram of particle exit times against the FE mean exit time τ(start).

    Args:
        exit_times: particle exit times (those that exited; NaN/inf are dropped).
        fe_mean: the FE mean exit time at the start point.
        start: the start point (for the title).
        kramers: optional Eyring–Kramers estimate drawn as a third line.

    Returns:
        The figure; its axis has the histogram patches and vertical lines at the FE mean (label
        "FE τ") and the particle mean (label "particle mean").
    """
    s = np.asarray(exit_times, float).ravel()
    s = s[np.isfinite(s)]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    if s.size:
        ax.hist(
            s,
            bins=min(60, max(10, int(np.sqrt(s.size)))),
            density=True,
            alpha=0.5,
            color="tab:orange",
            label=f"particles (n = {s.size})",
        )
        ax.axvline(float(s.mean()), color="tab:orange", ls="--", label="particle mean")
    ax.axvline(float(fe_mean), color="tab:blue", lw=2, label="FE τ")
    if kramers is not None:
        ax.axvline(float(kramers), color="k", ls=":", label="Eyring–Kramers")
    where = "" if start is None else f" from {np.round(np.atleast_1d(start), 3).tolist()}"
    ax.set_title("exit time" + where)
    ax.set_xlabel("t")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fit_slope(h: Sequence[float], err: Sequence[float]) -> float:
    """Least-squares slope of log(err) against log(h) (the observed order)."""
    h, err = np.asarray(h, float), np.abs(np.asarray(err, float))
    keep = (h > 0) & (err > 0) & np.isfinite(err)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(h[keep]), np.log(err[keep]), 1)[0])


def weak_error_figure(
    h: Sequence[float],
    errors: Mapping[str, Sequence[float]],
    stderr: Mapping[str, Sequence[float]] | None = None,
) -> tuple[Figure, dict[str, float]]:
    """Weak errors against the step size on log–log axes, with fitted slopes.

    Args:
        h: the step sizes (learning rates).
        errors: {curve name: |error| per step size}.
        stderr: optional Monte Carlo standard errors per curve (error bars of 2 stderr).

    Returns:
        The figure (one line per curve, labelled with its slope) and {name: fitted slope}.
    """
    h = np.asarray(h, float)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    slopes = {}
    for name, err in errors.items():
        err = np.abs(np.asarray(err, float))
        slopes[name] = fit_slope(h, err)
        e = None if not stderr or name not in stderr else 2 * np.asarray(stderr[name], float)
        ax.errorbar(h, err, yerr=e, fmt="o-", capsize=3, label=f"{name} (slope {slopes[name]:.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step size η")
    ax.set_ylabel("weak error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, slopes
