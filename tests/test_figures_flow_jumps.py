"""figures.flow_jumps: the jump's effect at fixed eps in the exact 1-D flow, and its weak orders at fixed mask."""
from __future__ import annotations

import math

import h5py
import numpy as np
from scipy.special import expit

from figures import flow_jumps, registry


def _sigma2(c):
    s = expit(c)
    return s * (1 - s) * (1 - 2 * s)


def test_registered_among_the_cpu_figures():
    assert registry.load("flow_jumps") is flow_jumps


def test_figure_numbers(tmp_path):
    written = flow_jumps.make(tmp_path, fast=True, results=None)
    assert sorted(path.suffix for path in written) == [".h5", ".pdf", ".png"]
    f, c = flow_jumps.FLOW_F, flow_jumps.CENTRE
    with h5py.File(tmp_path / "flow_jumps.h5") as h5:
        for k in flow_jumps.BLOCKS:
            group = h5[f"jumps_K{k}"]
            jumps, exact, limit = (group[name][()] for name in ("jump", "exact_ratio", "limit_ratio"))
            assert math.isclose(jumps[0], math.sqrt(k * flow_jumps.EPS ** 2)) and jumps[-1] == 1.0
            # the fair coin is the SDE to leading order; the Bernoulli end is the divided difference over f / K
            assert abs(exact[0] - 1.0) < 0.01 and abs(limit[0] - 1.0) < 0.03
            delta = f / k
            bernoulli = (k ** 2 * (expit(c - delta) - expit(c) + delta * expit(c) * expit(-c))
                         / (0.5 * f * f * _sigma2(c)))
            assert math.isclose(limit[-1], bernoulli, rel_tol=1e-12)
            assert abs(exact[-1] - limit[-1]) < 0.02
            assert np.all(np.diff(limit) < 0)  # at x + f = 1 the jump lowers c, monotonically
        bernoulli_ends = [h5[f"jumps_K{k}"]["limit_ratio"][-1] for k in flow_jumps.BLOCKS]
        assert bernoulli_ends[0] < 0.8 and bernoulli_ends[-1] > 0.98 and np.all(np.diff(bernoulli_ends) > 0)
        # panel (a), uniform masks of the same eps: beta = sqrt(3 K eps^2), and c departs from the SDE's by 3/5 of
        # the fair coin's departure (the kappa_4 term leads for both, kappa_3 being zero)
        for k in flow_jumps.BLOCKS:
            group = h5[f"jumps_K{k}"]
            assert math.isclose(group.attrs["uniform_beta"], math.sqrt(3 * k) * flow_jumps.EPS)
            departure = (group.attrs["uniform_ratio"] - 1) / (group["exact_ratio"][()][0] - 1)
            assert abs(departure - 0.6) < 0.005, (k, departure)
        # panel (b): the Bernoulli c approaches the SDE's as K grows
        across = h5["across_centres"]
        sde = across["sde"][()]
        assert np.allclose(sde, 0.5 * f * f * _sigma2(across["centre"][()]), rtol=1e-12, atol=1e-15)
        gaps = [np.max(np.abs(across[f"bernoulli_K{k}"][()] - sde)) for k in flow_jumps.BLOCKS]
        assert gaps[0] > 0.05 and gaps[-1] < 0.02 and np.all(np.diff(gaps) < 0)
        # panel (c): order 3 for the fair coin, 2 for larger jumps, 3 once the third-cumulant term is removed
        fixed = h5["fixed_mask"]
        assert abs(fixed.attrs["order_0"] - 3.0) < 0.1
        assert abs(fixed.attrs["order_1"] - 2.0) < 0.1 and abs(fixed.attrs["order_2"] - 2.0) < 0.1
        assert abs(fixed.attrs["order_after_third"] - 3.0) < 0.15
        # the uniform mask of the same variance: symmetric, order 3, and 3/5 of the fair coin's gap (the ratio of
        # their fourth cumulants, -(6/5) v^2 and -2 v^2, the leading term of both gaps)
        assert math.isclose(fixed.attrs["uniform_beta"], math.sqrt(0.75))
        assert abs(fixed.attrs["order_uniform"] - 3.0) < 0.1
        assert abs(fixed.attrs["uniform_to_fair_coin"] - 0.6) < 1e-3
        assert math.isclose(fixed["jumps"][()][0], 0.5)
