"""figures.stochastic_depth_sde: stochastic depth's eps(t) and the weak orders of its 1-D flow, computed."""
from __future__ import annotations

import math

import h5py
import numpy as np

from figures import registry, stochastic_depth_sde


def test_registered_among_the_cpu_figures():
    assert registry.load("stochastic_depth_sde") is stochastic_depth_sde


def test_figure_numbers(tmp_path):
    written = stochastic_depth_sde.make(tmp_path, fast=True, results=None)
    assert sorted(path.suffix for path in written) == [".h5", ".pdf", ".png"]
    with h5py.File(tmp_path / "stochastic_depth_sde.h5") as f:
        # panel (a): eps_l^2 = (1 - p_l)/(p_l K), p_l = 1 - (l/K)(1 - p_L), written out for the LM-ResNet 110 setting
        group = f["profile_K54_pL0.5"]
        survival = 1 - np.arange(1, 55) / 54 * 0.5
        expected = np.sqrt((1 - survival) / (survival * 54))
        assert np.allclose(group["eps"][()], expected, rtol=1e-13)
        assert math.isclose(group.attrs["eps_rms"], math.sqrt(np.mean(expected ** 2)), rel_tol=1e-13)
        assert np.allclose(group["t_start"][()], np.arange(54) / 54)
        assert math.isclose(f["dropout_K27"].attrs["eps"], math.sqrt(0.1 / (0.9 * 27)), rel_tol=1e-13)
        # panel (b): weak order 2 to the SDE at the rms eps, order 1 to transport (K = 1, 2, 4, 8, 16)
        flow = f["flow"]
        assert flow["blocks"][()].tolist() == [1, 2, 4, 8, 16]
        assert 1.7 < flow.attrs["sde_order"] < 2.6 and 0.9 < flow.attrs["transport_order"] < 1.3
        assert np.all(flow["gap_to_sde"][()] < flow["gap_to_transport"][()])
        assert np.all(np.diff(flow["gap_to_sde"][()]) < 0)
