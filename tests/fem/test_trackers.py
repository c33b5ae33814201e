"""The shared time loop (symfp.fem.trackers.run) and its trackers on a stepper with a closed form.

The stepper is backward Euler for :math:`\\dot u = -\\lambda u` on every node: :math:`u^n = u^0
(1+\\lambda\\Delta t)^{-n}` exactly (up to one rounding per step), so the step at which the mass tracker
must fire, the recorded mass and the stored snapshots are known in closed form. No FE backend needed.
"""

from __future__ import annotations

import numpy as np
import pytest

from symfp.errors import SolverError
from symfp.fem.observables import SERIAL, NodalObservables
from symfp.fem.trackers import (
    MassTracker,
    ObservableTracker,
    PositivityTracker,
    SnapshotTracker,
    WallTracker,
    run,
)


class Decay:
    """Backward Euler for u' = -lam u (nodewise); records the u_prev it was given."""

    def __init__(self, lam: float, dt: float):
        self.factor = 1.0 / (1.0 + lam * dt)
        self.prev_seen: list[bool] = []

    def step(self, u, u_prev, n):
        self.prev_seen.append(u_prev is not None)
        return u * self.factor


U0 = np.array([0.1, 0.4, 0.3, 0.2])
W = np.array([1.0, 1.0, 1.0, 1.0])  # unit vertex weights: mass = sum u


def test_run_records_closed_form_mass_and_snapshots():
    lam, dt, n = 0.5, 0.1, 7
    rec = NodalObservables({"mass": W, "x0": np.arange(4.0), "x0x0": np.arange(4.0) ** 2}, 1, W)
    obs = ObservableTracker(rec, every=3)
    snaps = SnapshotTracker(keep="all", every=3)
    stepper = Decay(lam, dt)
    u = run(stepper, U0, n_steps=n, dt=dt, trackers=[MassTracker(W, tol=1.0), obs, snaps])
    q = 1.0 / (1.0 + lam * dt)
    np.testing.assert_allclose(u, U0 * q**n, rtol=1e-14)
    # outputs at n = 0, 3, 6 and the last step 7; mass = q^n exactly, mean unchanged (a uniform factor)
    assert obs.times == pytest.approx([0.0, 0.3, 0.6, 0.7])
    arr = rec.arrays()
    np.testing.assert_allclose(arr["mass"], q ** np.array([0, 3, 6, 7]), rtol=1e-14)
    np.testing.assert_allclose(arr["mean"][:, 0], (U0 @ np.arange(4.0)) / U0.sum(), rtol=1e-14)
    assert sorted(snaps.snapshots) == pytest.approx([0.0, 0.3, 0.6, 0.7])
    np.testing.assert_allclose(snaps.snapshots[max(snaps.snapshots)], U0 * q**n, rtol=1e-14)
    assert stepper.prev_seen == [False] + [True] * (n - 1)  # BDF2's u^{n-1}: None on the first step only


def test_mass_tracker_fires_at_the_first_step_beyond_tolerance():
    # relative mass change after n steps: 1 - q^n; with tol 0.2 and q = 1/1.05 the first n with
    # 1 - q^n > 0.2 is n = ceil(log(0.8) / log(q)) = 5 (1 - q^4 = 0.177, 1 - q^5 = 0.216)
    lam, dt = 0.5, 0.1
    q = 1.0 / (1.0 + lam * dt)
    first = int(np.ceil(np.log(0.8) / np.log(q)))
    assert first == 5
    with pytest.raises(SolverError, match=rf"mass drifted .* at time step {first} \(t = 0\.5\)"):
        run(Decay(lam, dt), U0, n_steps=20, dt=dt, trackers=[MassTracker(W, tol=0.2)])


def test_positivity_and_wall_trackers():
    class Flip:
        def step(self, u, u_prev, n):
            return u - 0.25 * n * np.array([0.0, 0.0, 0.0, 1.0])  # node 3 goes negative at n = 1

    with pytest.raises(SolverError, match=r"negative density -5\.000e-02 .* at time step 1 .*'none'.*fct"):
        run(Flip(), U0, n_steps=3, dt=0.1, trackers=[PositivityTracker(tol=0.1, method="none")])
    wall = WallTracker(np.array([0]), tol=0.2, every=1)
    with pytest.warns(UserWarning, match=r"density on the reflecting boundary is 2\.50e-01 of its maximum"):
        run(Decay(0.5, 0.1), U0, n_steps=2, dt=0.1, trackers=[wall])
    np.testing.assert_allclose(wall.ratios, [0.25, 0.25, 0.25], rtol=1e-14)  # u[0] / max u, every output


def test_serial_reductions_and_empty_ranks():
    assert SERIAL.minmax(np.array([])) == (np.inf, -np.inf)  # a rank without owned dofs
    assert SERIAL.minmax(np.array([2.0, -1.0])) == (-1.0, 2.0)
    assert SERIAL.scalar_sum(3.5) == 3.5
