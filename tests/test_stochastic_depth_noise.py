"""Stochastic depth as an SDE (LM-ResNet paper section 3.2): the per-block noise levels, their rms level and its
inverse (kolmogorov.noise_level), and the exact law of the 1-D flow (kolmogorov.flow), checked against closed
forms and the known orders of the weak approximation."""
from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kolmogorov import u_sigmoid
from kolmogorov import flow
from kolmogorov.flow import stochastic_depth_flow_mean
from kolmogorov.noise_level import (epsilon, stochastic_depth_epsilon, stochastic_depth_epsilons,
                                    stochastic_depth_survival, stochastic_depth_survival_for)


def test_linear_decay_survival_is_huang_et_al_rule():
    assert stochastic_depth_survival(0.5, 3) == pytest.approx([5 / 6, 2 / 3, 1 / 2], abs=1e-15)
    assert stochastic_depth_survival(0.3, 1) == pytest.approx([0.3], abs=1e-15)
    assert stochastic_depth_survival(1.0, 7).tolist() == [1.0] * 7


@pytest.mark.parametrize("p_L", [0.0, -0.1, 1.5, float("nan"), float("inf"), True, "0.5x"])
def test_bad_p_last_is_refused_naming_it(p_L):
    for function in (stochastic_depth_survival, stochastic_depth_epsilons, stochastic_depth_epsilon):
        with pytest.raises(ValueError, match=r"^p_L must be .*\(0, 1\]"):
            function(p_L, 3)


@pytest.mark.parametrize("n_blocks", [0, -3, 2.5, 3.0, True])
def test_bad_block_count_is_refused(n_blocks):
    with pytest.raises(ValueError, match="n_blocks must be an integer >= 1"):
        stochastic_depth_epsilon(0.5, n_blocks)


def test_per_block_levels_are_the_bernoulli_level_at_each_survival():
    # p_L = 1/2, L = 3: p_l = 5/6, 2/3, 1/2, (1 - p_l)/p_l = 1/5, 1/2, 1, eps_l^2 = that / 3
    expected = [math.sqrt(float(Fraction(1, 5) / 3)), math.sqrt(float(Fraction(1, 2) / 3)), math.sqrt(1 / 3)]
    assert stochastic_depth_epsilons(0.5, 3) == pytest.approx(expected, rel=1e-14)
    # the rms level: eps^2 = (1/3)(1/5 + 1/2 + 1)/3 = 17/90
    assert stochastic_depth_epsilon(0.5, 3) == pytest.approx(math.sqrt(17 / 90), rel=1e-14)


def test_one_block_is_dropout_and_no_drop_is_no_noise():
    for p in (0.1, 0.5, 0.9):
        assert stochastic_depth_epsilon(p, 1) == pytest.approx(epsilon("bernoulli", 1, p=p), rel=1e-14)
    assert stochastic_depth_epsilon(1.0, 54) == 0.0


def test_rms_level_falls_with_p_last_and_grows_without_bound():
    p = np.linspace(0.01, 1.0, 100)
    levels = np.array([stochastic_depth_epsilon(q, 9) for q in p])
    assert np.all(np.diff(levels) < 0)
    assert stochastic_depth_epsilon(1e-12, 9) > 100


@pytest.mark.parametrize("n_blocks", [1, 3, 9, 27, 54])
@pytest.mark.parametrize("p_L", [0.05, 0.5, 0.78124, 0.999])
def test_inverse_gives_back_p_last(n_blocks, p_L):
    found = stochastic_depth_survival_for(stochastic_depth_epsilon(p_L, n_blocks), n_blocks)
    assert found == pytest.approx(p_L, abs=1e-12)


def test_inverse_matches_dropout_level_of_the_cpu_runs():
    # the p_L of the CPU CIFAR-10 runs (docs/experiments.md section 7): PreResNet-8's 3 blocks at Bernoulli
    # p = 0.85's eps, typed to 5 digits
    eps = epsilon("bernoulli", 3, p=0.85)
    assert round(stochastic_depth_survival_for(eps, 3), 5) == 0.78124
    assert stochastic_depth_epsilon(0.78124, 3) == pytest.approx(eps, rel=1e-5)
    assert stochastic_depth_survival_for(0.0, 3) == 1.0
    assert stochastic_depth_survival_for(50.0, 3) < 1e-3


@pytest.mark.parametrize("p_L", [1e-11, 1e-9, 1e-4])
def test_inverse_is_relatively_accurate_for_small_p_last(p_L):
    # brentq's tolerance was an absolute 1e-15: at p_L = 1e-11 that is 1e-4 of it
    found = stochastic_depth_survival_for(stochastic_depth_epsilon(p_L, 3), 3)
    assert found == pytest.approx(p_L, rel=1e-6)


@pytest.mark.parametrize("eps, said", [(1e-300, "eps must be 0 or at least 4.97e-09"),  # eps * eps underflowed
                                       (1e-9, "eps must be 0 or at least 4.97e-09"),  # p_L between 1 - 2^-53 and 1
                                       (1e8, "eps must be at most 2.47e+05")])  # p_l of the last block rounded to 0
def test_inverse_refuses_levels_that_float64_p_last_cannot_reach(eps, said):
    with pytest.raises(ValueError, match="^" + re.escape(said)):
        stochastic_depth_survival_for(eps, 3)


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf"), True, None])
def test_inverse_refuses_bad_eps(eps):
    with pytest.raises(ValueError, match="^eps must be"):
        stochastic_depth_survival_for(eps, 3)


# ---- the flow X_{l+1} = X_l + (f/L)(eta_l/p_l) -------------------------------------------------------


def test_exact_law_has_the_sde_mean_and_variance():
    # E[X_L] and Var[X_L] through E[sigma] are not direct: use an affine "terminal" instead by reading the atoms
    values, probs = flow._drop_sum_law(stochastic_depth_survival(0.4, 6))
    assert probs.sum() == pytest.approx(1.0, abs=1e-15)
    mean = values @ probs
    variance = (values - mean) ** 2 @ probs
    assert mean == pytest.approx(6.0, rel=1e-14)  # sum_l p_l / p_l
    # Var of (f/L) S = f^2 eps_rms^2  <=>  Var S = L^2 eps_rms^2
    assert variance == pytest.approx(36 * stochastic_depth_epsilon(0.4, 6) ** 2, rel=1e-12)


@pytest.mark.parametrize("n_blocks, p_L", [(1, 0.3), (4, 0.5), (7, 0.05)])
def test_public_law_is_the_enumeration_of_every_keep_pattern_in_exact_arithmetic(n_blocks, p_L):
    import itertools

    law = flow.stochastic_depth_law(n_blocks, p_L)
    q = Fraction(p_L)
    survival = [1 - Fraction(l, n_blocks) * (1 - q) for l in range(1, n_blocks + 1)]
    expected: dict[Fraction, Fraction] = {}
    for kept in itertools.product((0, 1), repeat=n_blocks):
        value = sum(Fraction(e) / p for e, p in zip(kept, survival)) / n_blocks
        prob = math.prod(p if e else 1 - p for e, p in zip(kept, survival))
        expected[value] = expected.get(value, 0) + prob
    assert law.multipliers.size == len(expected) == 2 ** n_blocks
    order = np.argsort(law.multipliers)
    values = sorted(expected)
    np.testing.assert_allclose(law.multipliers[order], [float(v) for v in values], rtol=1e-14)
    np.testing.assert_allclose(law.probabilities[order], [float(expected[v]) for v in values], rtol=1e-12)
    # mean 1, variance eps_rms^2 = (1/L^2) sum (1 - p_l)/p_l
    exact_variance = float(sum((1 - p) / p for p in survival) / n_blocks ** 2)
    mean = law.multipliers @ law.probabilities
    assert mean == pytest.approx(1.0, abs=1e-14)
    assert (law.multipliers - mean) ** 2 @ law.probabilities == pytest.approx(exact_variance, rel=1e-12)
    assert exact_variance == pytest.approx(stochastic_depth_epsilon(p_L, n_blocks) ** 2, rel=1e-13)
    # third cumulant (1/L^3) sum (1 - p_l)(1 - 2 p_l) / p_l^2: what sets the network's gap to the SDE (docs/landscape.md)
    exact_third = float(sum((1 - p) * (1 - 2 * p) / p ** 2 for p in survival) / n_blocks ** 3)
    assert (law.multipliers - mean) ** 3 @ law.probabilities == pytest.approx(exact_third, rel=1e-11, abs=1e-16)


def test_public_law_refuses_more_blocks_than_it_enumerates():
    with pytest.raises(ValueError, match=r"^n_blocks must be <= 16 for the exact stochastic-depth law"):
        flow.stochastic_depth_law(17, 0.5)
    with pytest.raises(ValueError, match="^p_L must be"):
        flow.stochastic_depth_law(3, 0.0)


def test_flow_converges_to_the_sde_at_order_two_and_to_transport_at_order_one():
    x = np.linspace(-3.0, 3.0, 13)
    f, p_L = 2.0, 0.3
    to_sde, to_transport = [], []
    for n_blocks in (8, 16):
        result = stochastic_depth_flow_mean(x, f, n_blocks, p_L)
        assert result.exact and np.all(result.stderr == 0)
        to_sde.append(np.max(np.abs(result.mean - u_sigmoid(x, f, stochastic_depth_epsilon(p_L, n_blocks)))))
        to_transport.append(np.max(np.abs(result.mean - 1.0 / (1.0 + np.exp(-(x + f))))))
    sde_order, transport_order = math.log2(to_sde[0] / to_sde[1]), math.log2(to_transport[0] / to_transport[1])
    assert 1.8 < sde_order < 2.8, to_sde       # third cumulant: O(1/L^2)
    assert 0.9 < transport_order < 1.2, to_transport  # the noise itself: eps_rms^2 = O(1/L)
    assert to_sde[1] < to_transport[1] / 20


def test_the_gap_to_the_sde_is_the_third_cumulant_term_up_to_order_three():
    """X_L = x + f S with S = (1/L) sum eta_l / p_l: against the SDE's Gaussian, the Edgeworth expansion's first
    term is kappa_3 f^3 / 6 E[sigma_3(x + f + f eps_rms Z)] (sigma_3 the third derivative of sigma; kappa_3 =
    O(1/L^2)); what is left is O(1/L^3) (fourth cumulant, and kappa_3^2). The order of the whole gap above
    (2.36 from K = 8 to 16) is pre-asymptotic."""
    x = np.linspace(-3.0, 3.0, 13)
    f, p_L = 2.0, 0.3
    z, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()

    def sigma_3(t):
        s = 1.0 / (1.0 + np.exp(-t))
        return s * (1 - s) * (1 - 6 * s * (1 - s))

    remainders = []
    for n_blocks in (8, 16):
        survival = stochastic_depth_survival(p_L, n_blocks)
        kappa3 = float(sum((1 - p) * (1 - 2 * p) / p ** 2 for p in survival)) / n_blocks ** 3
        eps = stochastic_depth_epsilon(p_L, n_blocks)
        gap = stochastic_depth_flow_mean(x, f, n_blocks, p_L).mean - u_sigmoid(x, f, eps)
        leading = kappa3 * f ** 3 / 6 * np.array([weights @ sigma_3(xi + f + f * eps * z) for xi in x])
        remainders.append(np.max(np.abs(gap - leading)))
        assert remainders[-1] < 0.3 * np.max(np.abs(gap))  # the leading term is most of the gap (measured 75-82 %)
    assert 2.6 < math.log2(remainders[0] / remainders[1]) < 3.3, remainders  # measured 2.87


def test_flow_mean_is_clamped_where_sigma_saturates():
    # sum of 2^10 products of p_l and 1 - p_l is 1 only to rounding: 1 + 2.2e-16 came out before the clamp
    assert stochastic_depth_flow_mean(np.array([30.0]), 20.0, 10, 0.39387755102040817).mean[0] <= 1.0


def test_flow_without_drops_is_the_transport_solution():
    x = np.array([-1.0, 0.0, 2.0])
    result = stochastic_depth_flow_mean(x, -0.7, 5, 1.0)
    assert result.mean == pytest.approx(1.0 / (1.0 + np.exp(-(x - 0.7))), abs=1e-15)


def test_monte_carlo_beyond_the_exact_limit_agrees_with_the_exact_sum(monkeypatch):
    x, f = np.linspace(-2.0, 2.0, 5), 1.5
    sampled = stochastic_depth_flow_mean(x, f, 17, 0.4, n_samples=200_000, seed=3)
    assert not sampled.exact and np.all(sampled.stderr > 0)
    monkeypatch.setattr(flow, "EXACT_STOCHASTIC_DEPTH_BLOCKS", 17)
    exact = stochastic_depth_flow_mean(x, f, 17, 0.4)
    assert exact.exact
    assert np.all(np.abs(sampled.mean - exact.mean) < 5 * sampled.stderr)


def test_flow_broadcasts_and_refuses_bad_input():
    result = stochastic_depth_flow_mean(np.zeros((2, 1)), np.array([0.5, 1.0, 2.0]), 4, 0.5)
    assert result.mean.shape == (2, 3)
    with pytest.raises(ValueError, match="finite"):
        stochastic_depth_flow_mean([np.nan], 1.0, 4, 0.5)
    with pytest.raises(ValueError, match="p_L"):
        stochastic_depth_flow_mean([0.0], 1.0, 4, 0.0)
    with pytest.raises(ValueError, match="n_blocks"):
        stochastic_depth_flow_mean([0.0], 1.0, 0, 0.5)


# ---- invariants (hypothesis) ---------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(p_L=st.floats(1e-3, 1.0), n_blocks=st.integers(1, 120))
def test_inverse_round_trip_and_bounds(p_L, n_blocks):
    levels = stochastic_depth_epsilons(p_L, n_blocks)
    rms = stochastic_depth_epsilon(p_L, n_blocks)
    # eps_rms lies between the first and the last block's level (p_l falls with l), and eps_l rises with l
    assert np.all(np.diff(levels) >= 0)
    assert levels[0] * (1 - 1e-12) <= rms <= levels[-1] * (1 + 1e-12)
    if rms > 1e-6:  # below, p_L is within rounding of 1 and the inverse is fixed only to 1e-15 in p_L
        assert stochastic_depth_survival_for(rms, n_blocks) == pytest.approx(p_L, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(x=st.floats(-30, 30), f=st.floats(-20, 20), p_L=st.floats(0.01, 1.0), n_blocks=st.integers(1, 10))
def test_flow_mean_is_a_probability_between_its_atoms(x, f, p_L, n_blocks):
    result = stochastic_depth_flow_mean(np.array([x]), f, n_blocks, p_L)
    values, _ = flow._drop_sum_law(stochastic_depth_survival(p_L, n_blocks))
    from scipy.special import expit

    atoms = expit(x + f * values / n_blocks)
    assert 0.0 <= result.mean[0] <= 1.0
    assert atoms.min() - 1e-15 <= result.mean[0] <= atoms.max() + 1e-15
