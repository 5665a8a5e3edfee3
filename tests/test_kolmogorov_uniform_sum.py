"""kolmogorov.uniform_sum: the Irwin-Hall density and the quadrature law of the mean of K uniforms."""
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

from kolmogorov.uniform_sum import MAX_NODES, irwin_hall_density, nodes_for, uniform_mean_law


def _irwin_hall_exact(k: int, s: Fraction) -> Fraction:
    """The alternating closed form sum_i (-1)^i C(K, i) (s - i)^(K-1) / (K-1)!, in exact rational arithmetic."""
    if s < 0 or s >= k:
        return Fraction(0)
    total = sum((-1) ** i * math.comb(k, i) * (s - i) ** (k - 1) for i in range(math.floor(s) + 1))
    return total / math.factorial(k - 1)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 12, 25])
def test_density_against_the_exact_closed_form(k):
    points = [Fraction(n, 13) for n in range(-5, 13 * k + 6)]
    got = irwin_hall_density(k, np.array([float(s) for s in points]))
    want = np.array([float(_irwin_hall_exact(k, s)) for s in points])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)
    assert irwin_hall_density(k, np.zeros((2, 3))).shape == (2, 3)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 10, 40, 120])
def test_the_law_has_the_exact_first_four_moments(k):
    # Ubar = mean of K U(0, 1): mean 1/2, variance 1/(12K), fourth central moment 3 var^2 + kappa_4(U) / K^3
    # with kappa_4(U(0, 1)) = -1/120; third central moment 0. Exact for the fewest nodes (reach 0) too.
    for reach in (0.0, 30.0):
        law = uniform_mean_law(k, reach)
        u, w = law.multipliers, law.probabilities
        assert np.all(w > 0) and np.all((u > 0) & (u < 1))
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        assert w @ u == pytest.approx(0.5, abs=1e-14)
        assert w @ (u - 0.5) ** 2 == pytest.approx(1 / (12 * k), rel=1e-12)
        assert w @ (u - 0.5) ** 3 == pytest.approx(0.0, abs=1e-16)
        assert w @ (u - 0.5) ** 4 == pytest.approx(3 / (144 * k * k) - 1 / (120 * k**3), rel=1e-11)


@pytest.mark.parametrize("k,c,r", [(1, 0.3, 40.0), (2, -20.0, 45.0), (3, -250.0, 400.0), (6, 1.0, -90.0),
                                   (4, -60.0, 30.0)])
def test_sigmoid_expectations_against_adaptive_quadrature(k, c, r):
    # E[sigma(c + r Ubar)] at the reach the law was built for, where its error bound is tightest; (3, -250, 400)
    # puts the turn of the sigmoid in a tail piece, (4, -60, 30) asks for 1e-16 of a mean near 1e-12.
    law = uniform_mean_law(k, abs(r))
    got = expit(c + r * law.multipliers) @ law.probabilities
    turn = -c / r
    breaks = [j / k for j in range(1, k)] + ([turn] if 0 < turn < 1 else [])
    want = integrate.quad(lambda u: expit(c + r * u) * k * float(irwin_hall_density(k, k * u)), 0.0, 1.0,
                          points=breaks, epsabs=1e-17, epsrel=1e-13, limit=500)[0]
    assert got == pytest.approx(want, rel=1e-11, abs=1e-16)


def test_nodes_grow_with_the_reach_and_stop_at_the_cap():
    counts = [nodes_for(3, r) for r in (0.0, 1.0, 10.0, 100.0, 600.0)]
    assert counts == sorted(counts) and counts[0] == math.ceil((3 + 4) / 2) and counts[-1] > 200
    with pytest.raises(ValueError, match=f"more than {MAX_NODES}"):
        nodes_for(1, 1e5)


@pytest.mark.parametrize("reach", [-1.0, math.nan, math.inf, "3"])
def test_bad_reach_names_the_argument(reach):
    with pytest.raises(ValueError, match="reach must be a finite number >= 0"):
        nodes_for(2, reach)


def test_bad_block_count_names_the_argument():
    with pytest.raises(ValueError, match="n_blocks must be an integer"):
        uniform_mean_law(0, 1.0)
