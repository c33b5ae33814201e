"""Report pieces: figures hold the plotted data, slopes are fitted, JSON and HTML are well formed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symfp.report import figures
from symfp.report.html import table, write_html
from symfp.report.jsonable import dumps, to_jsonable


def _gauss(x, m, s):
    return np.exp(-((x - m) ** 2) / (2 * s * s)) / np.sqrt(2 * np.pi * s * s)


def test_density_figure_1d_overlays_fe_line_and_normalised_histogram():
    rng = np.random.default_rng(0)
    grid = np.linspace(-1.0, 1.0, 201)
    fe = _gauss(grid, 0.1, 0.2)
    samples = rng.normal(0.1, 0.2, size=(20_000, 1))
    fig = figures.density_figure(
        [
            {"t": 0.0, "grid": grid, "fe": fe, "samples": None},
            {"t": 2.0, "grid": grid, "fe": fe, "samples": samples},
        ]
    )
    assert len(fig.axes) == 2
    ax = fig.axes[1]
    line = ax.lines[0]
    np.testing.assert_array_equal(line.get_xdata(), grid)
    np.testing.assert_allclose(line.get_ydata(), fe)
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert np.sum(heights * widths) == pytest.approx(1.0, abs=1e-3)  # density=True over the grid range
    centres = np.array([p.get_x() + p.get_width() / 2 for p in ax.patches])
    # the histogram follows the same Gaussian (Monte Carlo noise of 2·10⁴ samples, ~80 bins)
    assert np.max(np.abs(heights - _gauss(centres, 0.1, 0.2))) < 0.25
    assert len(fig.axes[0].patches) == 0 and fig.axes[0].get_title() == "t = 0"


def test_density_figure_2d_has_fe_image_and_particle_histogram():
    rng = np.random.default_rng(1)
    xs = np.linspace(-1, 1, 21)
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    fe = _gauss(X, 0, 0.3) * _gauss(Y, 0, 0.3)
    fig = figures.density_figure(
        [{"t": 1.0, "grid": (X, Y), "fe": fe, "samples": rng.normal(0, 0.3, (5000, 2))}], labels=("w1", "w2")
    )
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (21, 21) and float(img.max()) == pytest.approx(float(fe.max()))
    quad = fig.axes[1].collections[0].get_array()  # hist2d counts, density=True
    assert quad.size == 60 * 60 and float(np.sum(quad)) * (2 / 60) ** 2 == pytest.approx(1.0, abs=0.05)


def test_observables_figure_plots_the_series_and_particle_points():
    t = np.linspace(0, 3, 31)
    mean = 0.5 * np.exp(-t)
    var = 0.05 * (1 - np.exp(-2 * t)) + 0.01 * np.exp(-2 * t)
    fe = {
        "t": t,
        "mass": np.ones_like(t),
        "mean": mean[:, None],
        "cov": var[:, None, None],
        "basins": {"right": 0.5 + 0.5 * np.exp(-t)},
        "entropy": -np.log(var),
    }
    part = {
        "t": [1.0, 3.0],
        "mean": [[0.18], [0.025]],
        "mean_stderr": [[0.002], [0.002]],
        "var": [[0.045], [0.05]],
        "var_stderr": [[0.001], [0.001]],
    }
    fig = figures.observables_figure(fe, part, ["theta"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["mass", "mean", "variance", "basin mass", "entropy"]
    axm = fig.axes[titles.index("mean")]
    np.testing.assert_allclose(axm.lines[0].get_ydata(), mean)
    # the particle means are drawn as error-bar points at their times
    pts = [ln for ln in axm.lines if ln.get_marker() == "o"][0]
    np.testing.assert_allclose(pts.get_xdata(), [1.0, 3.0])
    np.testing.assert_allclose(pts.get_ydata(), [0.18, 0.025])
    axv = fig.axes[titles.index("variance")]
    assert axv.lines[0].get_ydata()[-1] == pytest.approx(var[-1])
    assert fig.axes[0].lines[0].get_ydata().min() == 1.0


def test_exit_time_figure_marks_fe_and_particle_means():
    rng = np.random.default_rng(2)
    times = rng.exponential(5.0, 4000)
    fig = figures.exit_time_figure(np.append(times, np.nan), fe_mean=5.0, start=[-1.0], kramers=5.3)
    ax = fig.axes[0]
    vlines = {ln.get_label(): ln.get_xdata()[0] for ln in ax.lines}
    assert vlines["FE τ"] == 5.0 and vlines["Eyring–Kramers"] == 5.3
    assert vlines["particle mean"] == pytest.approx(times.mean())
    area = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert area == pytest.approx(1.0, abs=1e-6)


def test_weak_error_slopes_of_the_reference_table():
    # REFERENCE_CASES.md item 4: SDE1 errors are O(η), SDE2 errors O(η²)
    h = [0.1, 0.05, 0.025, 0.0125]
    errs = {"SDE1": [1.920e-2, 9.394e-3, 4.647e-3, 2.311e-3], "SDE2": [1.259e-3, 3.105e-4, 7.71e-5, 1.92e-5]}
    fig, slopes = figures.weak_error_figure(h, errs)
    assert slopes["SDE1"] == pytest.approx(1.0, abs=0.03)
    assert slopes["SDE2"] == pytest.approx(2.0, abs=0.03)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = [ln for ln in ax.lines if len(ln.get_xdata()) == 4]
    np.testing.assert_allclose(lines[1].get_ydata(), errs["SDE2"])
    assert math.isnan(figures.fit_slope([0.1], [0.01]))


def test_save_writes_a_png(tmp_path):
    fig, _ = figures.weak_error_figure([0.1, 0.05], {"e": [0.1, 0.05]})
    p = figures.save(fig, tmp_path / "w.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_jsonable_converts_numbers_exactly():
    data = {
        "a": np.array([[1.5, 2.0]]),
        "b": sp.Rational(1, 4),
        "c": sp.Integer(3),
        "d": float("nan"),
        "e": Path("x/y"),
        "f": np.float32(0.5),
        "g": sp.Symbol("eta") / 2,
        3: (1, 2),
    }
    out = json.loads(dumps(data))
    assert out == {
        "a": [[1.5, 2.0]],
        "b": 0.25,
        "c": 3,
        "d": None,
        "e": "x/y",
        "f": 0.5,
        "g": "eta/2",
        "3": [1, 2],
    }
    assert to_jsonable(sp.Matrix([[1, 2]])) == [[1, 2]]


def test_html_page_has_table_and_figures(tmp_path):
    rows = [{"quantity": "mean", "value": 0.123456789}, {"quantity": "<var>", "value": 0.05}]
    t = table(rows)
    assert "0.1235" in t and "&lt;var&gt;" in t and t.count("<tr>") == 3
    page = write_html(tmp_path / "r.html", "Title & more", [("Comparison", t)], [("density", "density.png")])
    text = page.read_text()
    assert "<title>Title &amp; more</title>" in text and "src='density.png'" in text and "0.1235" in text


def test_density_figure_draws_the_2d_peak_where_the_mass_is():
    """A Gaussian blob at (2.5, 0) on [-1, 4] × [-2, 2] (meshgrid indexing="ij", as symfp run builds it)
    must be drawn at (2.5, 0), not transposed to (0, 2.5)-ish; the particle panel's peak too."""
    import matplotlib

    matplotlib.use("Agg")
    from symfp.report.figures import density_figure, image_rows

    xs, ys = np.linspace(-1, 4, 101), np.linspace(-2, 2, 81)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    fe = np.exp(-((X - 2.5) ** 2 + Y**2) / (2 * 0.3**2))
    rng = np.random.default_rng(0)
    samples = rng.normal([2.5, 0.0], 0.3, size=(20_000, 2))
    fig = density_figure([{"t": 1.0, "grid": (X, Y), "fe": fe, "samples": samples}], ["x", "y"])
    ax_fe, ax_p = fig.axes[0], fig.axes[1]
    for ax in (ax_fe, ax_p):
        im = (ax.images or ax.collections)[0]
        arr = np.asarray(im.get_array()).reshape(-1)
        if ax.images:
            img = np.asarray(im.get_array())
            x0, x1, y0, y1 = im.get_extent()
            r, c = np.unravel_index(np.argmax(img), img.shape)  # origin="lower": row = y, column = x
            px = x0 + (c + 0.5) * (x1 - x0) / img.shape[1]
            py = y0 + (r + 0.5) * (y1 - y0) / img.shape[0]
        else:  # hist2d's QuadMesh: cell centres from its coordinates
            coords = im.get_coordinates()
            cx = 0.5 * (coords[:-1, :-1] + coords[1:, 1:])
            k = np.argmax(arr)
            px, py = cx.reshape(-1, 2)[k]
        # grid spacing 0.05 (FE) and bins of 5/60, 4/60 (particles): the peak within two cells
        assert px == pytest.approx(2.5, abs=0.2) and py == pytest.approx(0.0, abs=0.2), ax.get_title()
    # both meshgrid conventions give the same picture
    Xa, Ya = np.meshgrid(xs, ys)  # indexing="xy"
    fa = np.exp(-((Xa - 2.5) ** 2 + Ya**2) / (2 * 0.3**2))
    np.testing.assert_allclose(image_rows(Xa, fa), image_rows(X, fe))
