"""kolmogorov.two_point: the two-point mask law, the exact 1-D flow, and its cumulant expansion about the SDE."""
import itertools
import math

import numpy as np
import pytest
import sympy
from scipy import integrate
from scipy.special import expit

from kolmogorov import residual_flow_mean, u_sigmoid
from kolmogorov.closed_form import sigmoid_normal_moments
from kolmogorov.two_point import (MAX_SMOOTHING, TwoPointMask, check_level, cumulant_corrections,
                                  sigmoid_derivative_mean, small_noise_curvature, two_point_flow_mean)


def _rate(ks, errs):
    return -np.polyfit(np.log(ks), np.log(errs), 1)[0]


@pytest.mark.parametrize("variance,jump", [(0.04, 0.2), (0.04, 0.5), (0.2, 0.7), (0.2, 1.0), (1.0, 1.0)])
def test_mask_law_has_mean_one_variance_v_and_the_cumulants_of_its_two_atoms(variance, jump):
    mask = TwoPointMask(variance, jump)
    values = np.array([mask.low, mask.high]) - 1.0
    probs = np.array([mask.down_probability, 1.0 - mask.down_probability])
    mu = {n: float(values ** n @ probs) for n in range(1, 6)}  # central moments: the mean of m - 1 is 0
    assert mu[1] == pytest.approx(0.0, abs=1e-15)
    assert mu[2] == pytest.approx(variance, rel=1e-13)
    assert mask.cumulant(2) == pytest.approx(variance, rel=1e-13)
    assert mask.cumulant(3) == pytest.approx(mu[3], rel=1e-12, abs=1e-15)
    assert mask.cumulant(3) == pytest.approx(variance * (variance - jump ** 2) / jump, rel=1e-12, abs=1e-15)
    assert mask.cumulant(4) == pytest.approx(mu[4] - 3 * mu[2] ** 2, rel=1e-12, abs=1e-15)
    assert mask.cumulant(5) == pytest.approx(mu[5] - 10 * mu[3] * mu[2], rel=1e-11, abs=1e-15)
    assert mask.low >= 0.0


def test_fair_coin_and_bernoulli_ends_of_the_family():
    coin = TwoPointMask(0.09, 0.3)
    assert (coin.low, coin.high, coin.down_probability) == pytest.approx((0.7, 1.3, 0.5))
    assert coin.cumulant(3) == pytest.approx(0.0, abs=1e-15)
    p = 0.8
    bern = TwoPointMask((1 - p) / p, 1.0)  # the dropout mask gamma / p of (3.1)
    assert (bern.low, bern.high, bern.down_probability) == pytest.approx((0.0, 1 / p, 1 - p))
    assert bern.cumulant(3) == pytest.approx((1 - p) * (1 - 2 * p) / p ** 2)  # central 3rd moment of gamma / p


def test_at_level_makes_the_variance_k_eps_squared():
    mask = TwoPointMask.at_level(3, 0.06, 0.5)
    assert mask.variance == pytest.approx(3 * 0.06 ** 2) and mask.jump == 0.5


@pytest.mark.parametrize("k,eps", [(3, 0.2), (5, 0.1), (16, 0.05)])
def test_jump_one_is_the_bernoulli_flow(k, eps):
    x = np.linspace(-4.0, 4.0, 9)
    flow = two_point_flow_mean(x, 2.5, k, eps, 1.0)
    bern = residual_flow_mean(x, 2.5, k, "bernoulli", p=1.0 / (1.0 + k * eps ** 2))
    assert flow.exact and np.all(flow.stderr == 0)
    np.testing.assert_allclose(flow.mean, bern.mean, rtol=0, atol=2e-15)


@pytest.mark.parametrize("jump", [0.45, 0.7, 1.0])
def test_exact_mean_is_the_average_over_every_mask_pattern(jump):
    # an independent count: all 2^K patterns of K = 6 masks, each with its probability
    k, eps, f = 6, 0.15, -1.7
    mask = TwoPointMask.at_level(k, eps, jump)
    x = np.array([-2.0, 0.3, 1.9])
    total = np.zeros_like(x)
    for pattern in itertools.product((0, 1), repeat=k):  # 1 = step down
        prob, state = 1.0, x.copy()
        for down in pattern:
            prob *= mask.down_probability if down else 1.0 - mask.down_probability
            state = state + f / k * (mask.low if down else mask.high)
        total += prob * expit(state)
    np.testing.assert_allclose(two_point_flow_mean(x, f, k, eps, jump).mean, total, rtol=0, atol=1e-14)


def test_same_mean_and_variance_as_the_sde():
    # a linear terminal function sees only mean and variance: E[X_K] = x + f, Var = f^2 eps^2
    k, eps, jump, f = 7, 0.2, 0.8, 1.3
    mask = TwoPointMask.at_level(k, eps, jump)
    down = np.arange(k + 1)
    from scipy.stats import binom

    pmf = binom.pmf(down, k, mask.down_probability)
    steps = f / k * ((k - down) * (mask.high - 1) - down * mask.jump)
    assert steps @ pmf == pytest.approx(0.0, abs=1e-15)
    assert steps ** 2 @ pmf == pytest.approx(f ** 2 * eps ** 2, rel=1e-12)


@pytest.mark.parametrize("variance,jump,f", [(0.25, 0.8, 2.0), (0.25, 1.0, -2.0), (0.1, 0.5, 2.5)])
def test_cumulant_expansion_orders_at_fixed_mask(variance, jump, f):
    # eps^2 = v / K (many blocks at a fixed mask): the gap to the SDE is O(1/K^2) (kappa_3), after the kappa_3 term
    # O(1/K^3), after kappa_4 O(1/K^4), after kappa_5 and kappa_3^2 O(1/K^5). The order of the last doubling of K,
    # over K where each remainder still lies far above double rounding (the last one falls to 1e-14 by K = 128).
    x = np.array([-2.0, -0.5, 1.0, 2.5]) - f
    ks = (32, 64, 128)
    gaps = {n: [] for n in range(4)}
    for k in ks:
        eps = math.sqrt(variance / k)
        gap = two_point_flow_mean(x, f, k, eps, jump).mean - u_sigmoid(x, f, eps)
        terms = cumulant_corrections(x, f, k, eps, jump)
        for n, rest in enumerate((gap, gap - terms.third, gap - terms.third - terms.fourth,
                                  gap - terms.third - terms.fourth - terms.fifth)):
            gaps[n].append(np.max(np.abs(rest)))
    for n, last in ((0, 2), (1, 2), (2, 2), (3, 1)):
        order = math.log2(gaps[n][last - 1] / gaps[n][last])
        assert abs(order - (n + 2)) < 0.2, (n, gaps[n])
        assert gaps[n][last] > 1e-13


def test_fair_coin_gains_an_order():
    # kappa_3 = 0 at jump sqrt(v): the gap is the kappa_4 term, O(1/K^3)
    variance, f = 0.16, 2.0
    x = np.array([-1.0, 0.5]) - f
    ks = np.array([16, 32, 64, 128])
    gaps = []
    for k in ks:
        eps = math.sqrt(variance / k)
        assert np.all(cumulant_corrections(x, f, int(k), eps, 0.4).third == pytest.approx(0.0, abs=1e-18))
        gaps.append(np.max(np.abs(two_point_flow_mean(x, f, int(k), eps, 0.4).mean - u_sigmoid(x, f, eps))))
    assert abs(_rate(ks, gaps) - 3.0) < 0.15


@pytest.mark.parametrize("jump", [0.3, 0.6, 1.0])
def test_small_noise_limit_at_few_blocks_is_the_divided_difference_over_one_jump(jump):
    # fixed K and jump, eps -> 0: a block steps down by delta = jump f / K with probability ~ K eps^2 / jump^2, so
    # (E sigma(X_K) - sigma(c)) / eps^2 -> (K / jump)^2 [sigma(c - delta) - sigma(c) + delta sigma'(c)], c = x + f,
    # with an O(eps^2) remainder
    k, f = 3, 3.0
    centre = np.array([-2.0, 1.0, 2.0])
    delta = jump * f / k
    limit = (k / jump) ** 2 * (expit(centre - delta) - expit(centre) + delta * expit(centre) * expit(-centre))
    np.testing.assert_allclose(small_noise_curvature(centre - f, f, k, jump), limit, rtol=1e-14)
    errors = []
    for eps in (0.02, 0.01, 0.005):
        ratio = (two_point_flow_mean(centre - f, f, k, eps, jump).mean - expit(centre)) / eps ** 2
        errors.append(np.max(np.abs(ratio - limit)))
    assert errors[-1] < 1e-3 * np.max(np.abs(limit))
    assert abs(math.log2(errors[0] / errors[1]) - 2.0) < 0.1 and abs(math.log2(errors[1] / errors[2]) - 2.0) < 0.1


def test_small_noise_curvature_tends_to_the_sde_as_the_jump_shrinks_with_the_third_derivative_as_slope():
    # c(a) = (1/2) f^2 sigma''(c) - a f^3 sigma'''(c) / (6 K) + O(a^2)
    k, f = 3, 3.0
    centre = np.array([-2.0, 1.0, 2.0])
    s2, s3 = _sigmoid_derivative(2), _sigmoid_derivative(3)
    sde = np.array([0.5 * f * f * s2(c) for c in centre])
    np.testing.assert_allclose(small_noise_curvature(centre - f, f, k, 0.0), sde, rtol=1e-13)
    slope = np.array([-f ** 3 * s3(c) / (6 * k) for c in centre])
    remainders = [np.max(np.abs(small_noise_curvature(centre - f, f, k, a) - sde - a * slope)) for a in (0.02, 0.01)]
    assert abs(math.log2(remainders[0] / remainders[1]) - 2.0) < 0.05


def _sigmoid_derivative(order):
    z = sympy.symbols("z")
    return sympy.lambdify(z, sympy.diff(1 / (1 + sympy.exp(-z)), z, order), "math")


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("m,s", [(0.3, 0.05), (-1.5, 0.6), (2.0, 1.4), (0.0, MAX_SMOOTHING)])
def test_sigmoid_derivative_mean_against_adaptive_quadrature_of_the_symbolic_derivative(order, m, s):
    g = _sigmoid_derivative(order)
    exact, _ = integrate.quad(lambda z: g(m + s * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                              -40, 40, epsabs=1e-14, epsrel=1e-13, limit=400)
    assert float(sigmoid_derivative_mean(m, s, order)) == pytest.approx(exact, abs=1e-12)


def test_sigmoid_derivative_mean_orders_zero_to_two_are_the_closed_form_and_its_m_derivatives():
    m, s = np.array([-2.0, 0.1, 1.7]), np.array([0.2, 0.9, 1.6])
    closed = sigmoid_normal_moments(m, s, derivatives=True)
    for order in range(3):
        np.testing.assert_allclose(sigmoid_derivative_mean(m, s, order), closed[order], rtol=0, atol=1e-10)


def test_no_spread_is_the_derivative_itself():
    np.testing.assert_allclose(sigmoid_derivative_mean([0.4], [0.0], 3), [_sigmoid_derivative(3)(0.4)], atol=1e-15)


@pytest.mark.parametrize("call,message", [
    (lambda: TwoPointMask(0.0, 0.5), "variance must be a number in (0, 1]"),
    (lambda: TwoPointMask(0.25, 0.4), "jump must be a number in [sqrt(K eps^2), 1] = [0.5, 1]"),
    (lambda: TwoPointMask(0.25, 1.5), "jump must be a number in"),
    (lambda: TwoPointMask(0.25, True), "jump must be a number in"),
    (lambda: TwoPointMask(0.25, 0.5).cumulant(1), "order must be an int >= 2"),
    (lambda: check_level(0, 0.1), "n_blocks must be an integer >= 1"),
    (lambda: check_level(4, 0.0), "eps must be a finite number > 0"),
    (lambda: check_level(4, float("nan")), "eps must be a finite number > 0"),
    (lambda: check_level(4, 0.6), "eps must be at most 1/sqrt(K) = 0.5 for K = 4 blocks"),
    (lambda: check_level(3, 1e-300), "eps must be at least 8.61e-155 for K = 3 blocks"),  # K eps^2 underflows
    (lambda: two_point_flow_mean([0.0], 1.0, 4, 0.1, 0.1), "jump must be a number in [sqrt(K eps^2), 1] = [0.2, 1]"),
    (lambda: two_point_flow_mean([np.nan], 1.0, 4, 0.1, 0.5), "x and f must be finite"),
    (lambda: sigmoid_derivative_mean(0.0, 2.5, 3), "s must lie in [0, 2]"),
    (lambda: sigmoid_derivative_mean(0.0, 0.5, -1), "order must be an int >= 0"),
    (lambda: cumulant_corrections([0.0], 30.0, 4, 0.1, 0.5), "s must lie in [0, 2]"),
    (lambda: small_noise_curvature([0.0], 1.0, 3, 1.2), "jump must be a number in [0, 1]"),
    (lambda: small_noise_curvature([0.0], np.inf, 3, 0.5), "x and f must be finite"),
])
def test_bad_arguments_are_refused_with_one_line(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_fair_coin_computed_as_sqrt_k_times_eps_is_accepted():
    # sqrt(K) * eps and sqrt(K eps^2) differ in the last bit for many (K, eps): the first is the fair coin too
    from kolmogorov.two_point import check_jump, smallest_jump

    below = 0
    for k in range(1, 40):
        for eps in (0.01, 0.03, 0.06, 0.1, 0.15, 0.2):
            if k * eps * eps > 1.0:
                continue
            jump = math.sqrt(k) * eps
            below += jump < smallest_jump(k * eps * eps)
            assert check_jump(jump, k * eps * eps) == max(jump, smallest_jump(k * eps * eps))
            flow = two_point_flow_mean(0.3, 2.0, k, eps, jump).mean
            coin = two_point_flow_mean(0.3, 2.0, k, eps, smallest_jump(k * eps * eps)).mean
            assert flow == pytest.approx(coin, rel=1e-13)  # equal where sqrt(K) eps is the lower one
    assert below > 0  # the case arises (K = 3, eps = 0.06 among others)
    assert TwoPointMask(0.0108, math.sqrt(0.0108) * (1 - 1e-14)).jump == math.sqrt(0.0108)  # stored as the coin
    with pytest.raises(ValueError, match="jump must be a number in"):
        check_jump(0.1039, 3 * 0.06 ** 2)  # 1e-4 below the fair coin's 0.103923: refused
    with pytest.raises(ValueError, match="jump must be a number in"):
        check_jump(math.nan, 0.01)
