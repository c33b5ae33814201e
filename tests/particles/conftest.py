"""Particle tests: one torch thread (the test machines have 2 shared cores; two threads contend)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
