"""figures.network_landscape: the K-block dropout network's exact landscape against its SDE."""
from __future__ import annotations

import math

import h5py
import numpy as np
from scipy import integrate
from scipy.special import expit
from scipy.stats import poisson

from figures import network_landscape, registry
from landscape import compute, get_dataset


def test_registered_among_the_cpu_figures():
    assert registry.load("network_landscape") is network_landscape


def test_figure_numbers(tmp_path):
    written = network_landscape.make(tmp_path, fast=True, results=None)
    assert sorted(path.suffix for path in written) == [".h5", ".pdf", ".png"]
    data = get_dataset("rugged")
    with h5py.File(tmp_path / "network_landscape.h5") as h5:
        curves = h5["curves"]
        f = curves["f"][()]
        np.testing.assert_allclose(curves["sde"][()], compute(f, data.y, data.label, 0.5, "l2"), rtol=1e-14)
        # one block by hand: kept (scaled 1/p) with probability p = 1/(1 + eps^2), else dropped
        p = 1 / (1 + 0.25)
        u = p * expit(data.y[None, :] + f[:, None] / p) + (1 - p) * expit(data.y[None, :])
        np.testing.assert_allclose(curves["network_K1"][()], ((u - data.label) ** 2).mean(axis=1), rtol=1e-13)
        gaps = h5["gaps"]
        assert abs(gaps.attrs["fixed_p_order"] - 2.0) < 0.1
        # fixed eps = 0.5: the kept count tends to Poisson(1/eps^2), X = y + f eps^2 M; the gap to the SDE tends to
        # the Poisson landscape's (computed here from scipy's Poisson law), not to zero
        m = np.arange(60)
        x = data.y[None, :, None] + f[:, None, None] * 0.25 * m[None, None, :]
        limit = ((expit(x) @ poisson.pmf(m, 4.0) - data.label) ** 2).mean(axis=1)
        limit_gap = np.max(np.abs(limit - curves["sde"][()]))
        assert limit_gap > 1e-3 and math.isclose(gaps["fixed_eps_0.5"][-1], limit_gap, rel_tol=0.05)
        # stochastic depth at fixed eps: K = 1 is one dropout block (the same curve); K = 2 by hand over its four
        # keep patterns (p_l = 1 - (l/2)(1 - p_L), scaled 1/p_l); from K = 4 on its gap grows with K at eps = 0.5
        from kolmogorov import stochastic_depth_survival_for

        assert gaps["stochastic_depth_blocks"][()].tolist() == [1, 2, 3, 4, 6, 9, 16]
        for eps in network_landscape.FIXED_EPS:
            assert math.isclose(gaps[f"stochastic_depth_eps_{eps:g}"][0], gaps[f"fixed_eps_{eps:g}"][0], rel_tol=1e-9)
            p_last = stochastic_depth_survival_for(eps, 2)
            p1, p2 = 1 - (1 - p_last) / 2, p_last
            u = sum(w * expit(data.y[None, :] + f[:, None] * m / 2) for m, w in (
                (0.0, (1 - p1) * (1 - p2)), (1 / p1, p1 * (1 - p2)), (1 / p2, (1 - p1) * p2), (1 / p1 + 1 / p2, p1 * p2)))
            sde = compute(f, data.y, data.label, eps, "l2")
            assert math.isclose(gaps[f"stochastic_depth_eps_{eps:g}"][1],
                                np.max(np.abs(((u - data.label) ** 2).mean(axis=1) - sde)), rel_tol=1e-10)
        assert np.all(np.diff(gaps["stochastic_depth_eps_0.5"][3:]) > 0)
        assert gaps["stochastic_depth_eps_0.5"][-1] > 5 * gaps["fixed_eps_0.5"][6]  # K = 16: far from dropout's
        minima = h5["minima"]
        assert minima["blocks"][()].tolist() == list(network_landscape.BLOCKS)
        assert minima.attrs["sde_eps_0.5"] == 1  # the paper's Fig. 3: J_eps keeps one minimum at eps = 0.5
        assert all(minima[f"network_eps_{eps:g}"][()].size == len(network_landscape.BLOCKS)
                   for eps in network_landscape.MINIMA_EPS)
        jumps = h5["jumps"]
        sde = compute(f, data.y, data.label, 0.25, "l2")
        for k in network_landscape.JUMP_BLOCKS:
            a = jumps[f"jump_K{k}"][()]
            assert math.isclose(a[0], math.sqrt(k * 0.25 ** 2)) and a[-1] == 1.0
        # K = 2, the fair coin 1 +- sqrt(v), v = 2 eps^2: four equally likely end points by hand
        v = 2 * 0.25 ** 2
        u = sum(expit(data.y[None, :] + f[:, None] * (m1 + m2) / 2) for m1 in (1 - v ** 0.5, 1 + v ** 0.5)
                for m2 in (1 - v ** 0.5, 1 + v ** 0.5)) / 4
        fair_gap = np.max(np.abs(((u - data.label) ** 2).mean(axis=1) - sde))
        assert math.isclose(jumps["gap_K2"][0], fair_gap, rel_tol=1e-10)
        # a = 1: dropout at p = 1/(1 + K eps^2), K = 2 by hand (kept count 0, 1, 2 of Binomial(2, p))
        p = 1 / (1 + v)
        u = sum(w * expit(data.y[None, :] + f[:, None] * n / (2 * p))
                for n, w in ((0, (1 - p) ** 2), (1, 2 * p * (1 - p)), (2, p ** 2)))
        dropout_gap = np.max(np.abs(((u - data.label) ** 2).mean(axis=1) - sde))
        assert math.isclose(jumps["gap_K2"][-1], dropout_gap, rel_tol=1e-10)
        assert all(jumps[f"gap_K{k}"][-1] > jumps[f"gap_K{k}"][0] for k in network_landscape.JUMP_BLOCKS)
        # the uniform masks where beta = 0.25 sqrt(3K) < 1 (K = 2, 3, 4 of 2, 3, 4, 8, 12); K = 2 by hand: the mean of
        # two masks is 1 + beta T, T triangular on [-1, 1], integrated by adaptive quadrature
        assert [k for k in network_landscape.JUMP_BLOCKS if f"uniform_gap_K{k}" in jumps.attrs] == [2, 3, 4]
        beta = 0.25 * math.sqrt(6)
        y, h = data.y, data.label
        u = np.array([[integrate.quad(lambda t: expit(yi + fi * (1 + beta * t)) * (1 - abs(t)), -1, 1, points=[0.0],
                                      epsabs=1e-14)[0] for yi in y] for fi in f])
        uniform_gap = np.max(np.abs(((u - h) ** 2).mean(axis=1) - sde))
        assert math.isclose(jumps.attrs["uniform_gap_K2"], uniform_gap, rel_tol=1e-9)
        assert jumps.attrs["uniform_gap_K2"] < jumps["gap_K2"][0]  # closer to the SDE than the fair coin
