"""The result of a particle simulation: final particles, moment trajectories, exit times.

Under MPI, ``.theta`` holds this rank's particles only; every statistic (``mean``, ``cov``,
``moments``, ``exit_times().mean``, histograms) is collective and returns the same numbers on every
rank.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .statistics import mean_stderr, moments


@dataclass
class ExitTimes:
    r"""First-passage times into an absorbing set, censored at ``t_max``.

    Attributes:
        times: (n_local,) first-passage times; censored particles carry ``t_max``.
        exited: (n_local,) bool, True where the particle was absorbed before ``t_max``.
        t_max: the censoring time (end of the simulation).
        antithetic: particles come in antithetic pairs.
        comm: MPI communicator or None.
    """

    times: np.ndarray
    exited: np.ndarray
    t_max: float
    antithetic: bool = False
    comm: Any = field(default=None, repr=False)

    @property
    def censored_fraction(self) -> float:
        """Fraction of all particles not absorbed by ``t_max`` (collective)."""
        return float(mean_stderr((~self.exited).astype(float)[:, None], self.antithetic, self.comm)[0][0])

    def mean(self, stderr: bool = False):
        r"""Mean of :math:`\min(\tau, t_{max})`: the mean exit time when nothing is censored, else a
        lower bound (check :attr:`censored_fraction`). With ``stderr=True`` returns (mean, stderr)."""
        m, s = mean_stderr(self.times[:, None], self.antithetic, self.comm)
        return (float(m[0]), float(s[0])) if stderr else float(m[0])

    def survival(self, t: np.ndarray) -> np.ndarray:
        """Empirical P(τ > t) at the given times (collective)."""
        t = np.atleast_1d(np.asarray(t, dtype=float))
        ind = (self.times[:, None] > t[None, :]) | (~self.exited[:, None])
        return mean_stderr(ind.astype(float), self.antithetic, self.comm)[0]


class ParticleCloud:
    """Particles at the final time, with moment trajectories and optional exit times.

    Attributes:
        theta: (n_local, d) numpy array of this rank's particles at the final time.
        state: names of the state variables.
        times: (T,) output times of the moment trajectories.
        n: total number of particles (all ranks).
        info: how it was made (scheme, dt, seed, device, dtype, antithetic, source, ...).
    """

    def __init__(
        self,
        theta: np.ndarray,
        state: list[str],
        times: np.ndarray,
        trajectory: dict[str, np.ndarray],
        n: int,
        info: dict[str, Any] | None = None,
        exit: ExitTimes | None = None,
        comm: Any = None,
    ) -> None:
        self.theta = np.asarray(theta)
        self.state = list(state)
        self.times = np.asarray(times, dtype=float)
        self.trajectory = trajectory
        self.n = int(n)
        self.info = dict(info or {})
        self._exit = exit
        self.comm = comm

    @property
    def dim(self) -> int:
        """Dimension d of the state."""
        return self.theta.shape[1]

    @property
    def antithetic(self) -> bool:
        """True when particles are antithetic pairs (standard errors use pair means)."""
        return bool(self.info.get("antithetic", False))

    def _moments(self) -> dict[str, np.ndarray]:
        if not hasattr(self, "_mom"):
            self._mom = moments(self.theta.astype(np.float64), self.antithetic, self.comm)
        return self._mom

    def mean(self, stderr: bool = False):
        """Mean of the final particles (d,), and its standard error when ``stderr`` (collective)."""
        m = self._moments()
        return (m["mean"], m["mean_stderr"]) if stderr else m["mean"]

    def cov(self, stderr: bool = False):
        """Covariance (d, d) of the final particles, and its standard error when ``stderr``."""
        m = self._moments()
        return (m["cov"], m["cov_stderr"]) if stderr else m["cov"]

    def moments(self) -> dict[str, np.ndarray]:
        """Moment trajectories: "t" (T,), "mean" (T, d), "cov" (T, d, d) and their "*_stderr"."""
        return {"t": self.times, **self.trajectory}

    def exit_times(self) -> ExitTimes:
        """First-passage times into the absorbing set given to the simulation."""
        if self._exit is None:
            raise InputError(
                "ParticleCloud.exit_times: this simulation had no absorbing set; pass "
                "absorbing=symfp.particles.Ball(...) (or Box, HalfSpace, SubLevel, MeshComplement)"
            )
        return self._exit

    def histogram(self, mesh: Any, **kwargs: Any):
        """Density on an FE mesh (see :func:`symfp.bridge.histogram.histogram_on_mesh`)."""
        from ..bridge.histogram import histogram_on_mesh

        return histogram_on_mesh(self, mesh, **kwargs)

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` file (particles of all ranks gathered; written by rank 0)."""
        from .mpi import allgather_rows

        theta = allgather_rows(self.theta, self.comm)
        arrays: dict[str, np.ndarray] = {"theta": theta, "times": self.times}
        arrays.update({f"traj_{k}": v for k, v in self.trajectory.items()})
        if self._exit is not None:
            arrays["exit_times"] = allgather_rows(self._exit.times, self.comm)
            arrays["exit_exited"] = allgather_rows(self._exit.exited, self.comm)
            arrays["exit_t_max"] = np.array(self._exit.t_max)
        meta = {
            "state": self.state,
            "n": self.n,
            "info": {k: str(v) if not isinstance(v, (int, float, bool)) else v for k, v in self.info.items()},
        }
        arrays["meta"] = np.array(json.dumps(meta))
        if self.comm is None or self.comm.rank == 0:
            np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ParticleCloud:
        """Read a cloud written by :meth:`save` (serial: all particles on this process)."""
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            traj = {k[5:]: f[k] for k in f.files if k.startswith("traj_")}
            exit = None
            if "exit_times" in f.files:
                exit = ExitTimes(
                    f["exit_times"],
                    f["exit_exited"],
                    float(f["exit_t_max"]),
                    bool(meta["info"].get("antithetic", False)),
                )
            return cls(f["theta"], meta["state"], f["times"], traj, meta["n"], meta["info"], exit)

    def __repr__(self) -> str:
        return (
            f"ParticleCloud(n={self.n}, state={self.state}, t={self.times[-1] if len(self.times) else 0:g}, "
            f"{self.info.get('method', '')})"
        )
