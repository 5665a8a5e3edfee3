"""residual_flow_mean: weak orders of the modified equation, exact laws, Monte Carlo against exact values."""
import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

from kolmogorov import FlowMean, epsilon, residual_flow_mean, u_sigmoid


def _rate(ks, errs):
    return -np.polyfit(np.log(ks), np.log(errs), 1)[0]


@pytest.mark.parametrize("p,f", [(0.8, 3.0), (0.3, -2.0)])
def test_bernoulli_flow_is_weak_order_two_to_the_sde_and_order_one_to_transport(p, f):
    # Same mean and variance as the SDE (3.4) with eps_K^2 = (1-p)/(pK): the gap is the third
    # cumulant, O(1/K^2). The gap to the noise-free transport sigma(x + f) of (3.9) is O(1/K).
    x = np.array([-1.0, 0.5, 2.0])
    ks = np.array([16, 32, 64, 128, 256])
    to_sde, to_transport = [], []
    for k in ks:
        flow = residual_flow_mean(x, f, int(k), "bernoulli", p=p)
        assert flow.exact and np.all(flow.stderr == 0)
        to_sde.append(np.max(np.abs(flow.mean - u_sigmoid(x, f, epsilon("bernoulli", int(k), p=p)))))
        to_transport.append(np.max(np.abs(flow.mean - expit(x + f))))
    assert 1.85 < _rate(ks, to_sde) < 2.15
    assert 0.95 < _rate(ks, to_transport) < 1.05
    assert to_sde[-1] < 0.01 * to_transport[-1]


def test_symmetric_bernoulli_mask_gains_an_order():
    # p = 1/2: the mask's third cumulant K p (1-p)(1-2p) vanishes, the gap to the SDE is O(1/K^3).
    x, f, p = np.array([-1.0, 0.5]), 2.5, 0.5
    ks = np.array([16, 32, 64, 128])
    gaps = []
    for k in ks:
        flow = residual_flow_mean(x, f, int(k), "bernoulli", p=p).mean
        gaps.append(np.max(np.abs(flow - u_sigmoid(x, f, epsilon("bernoulli", int(k), p=p)))))
    assert 2.8 < _rate(ks, gaps) < 3.2


def _simulate(x, f, k, masks, n, seed):
    """Direct simulation of X_{k+1} = X_k + (f/K) m_k (independent of the library's reductions)."""
    rng = np.random.default_rng(seed)
    state = np.full(n, x, dtype=float)
    for _ in range(k):
        state += (f / k) * masks(rng, n)
    values = expit(state)
    return values.mean(), values.std(ddof=1) / math.sqrt(n)


def test_bernoulli_exact_law_matches_direct_simulation():
    x, f, k, p = -0.7, 4.0, 6, 0.6
    exact = residual_flow_mean(x, f, k, "bernoulli", p=p).mean
    mc, se = _simulate(x, f, k, lambda r, n: (r.random(n) < p) / p, 200_000, seed=1)
    assert abs(mc - exact) < 4 * se


def test_gaussian_flow_equals_the_sde_for_constant_f():
    # Euler-Maruyama of (3.4) with eps = nu/sqrt(K) is exact for constant f: direct simulation of
    # the masks must agree with the SDE value u_sigmoid(x, f, nu/sqrt(K)).
    x, f, k, nu = 0.4, -3.0, 5, 0.9
    flow = residual_flow_mean(x, f, k, "gaussian", nu=nu)
    assert flow.exact
    # flow.py evaluates this mean as u_sigmoid(x, f, nu / sqrt(K)), so comparing with u_sigmoid would only
    # restate the code; instead the law X_K = x + f + f (nu / sqrt K) Z is integrated by quadrature.
    # The Monte Carlo run of the masks below is the check that this law is the flow's.
    sd = abs(f) * nu / math.sqrt(k)
    by_quadrature = integrate.quad(lambda z: expit(x + f + sd * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                                   -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13)[0]
    assert flow.mean == pytest.approx(by_quadrature, rel=0, abs=1e-12)
    mc, se = _simulate(x, f, k, lambda r, n: 1 + nu * r.standard_normal(n), 200_000, seed=2)
    assert abs(mc - flow.mean) < 4 * se


def test_uniform_monte_carlo_against_the_exact_triangular_law():
    # K = 2: the sum of two U(-beta, beta) has the triangular density on [-2 beta, 2 beta].
    x, f, beta = np.array([-2.0, 0.3]), np.array([5.0, -4.0]), 0.7
    flow = residual_flow_mean(x, f, 2, "uniform", beta=beta, n_samples=50_000, seed=3)
    assert not flow.exact and np.all(flow.stderr > 0)
    tri = lambda s: (2 * beta - abs(s)) / (4 * beta * beta)
    exact = [
        integrate.quad(lambda s: expit(xi + fi + fi / 2 * s) * tri(s), -2 * beta, 2 * beta, points=[0.0], epsabs=1e-13)[0]
        for xi, fi in zip(x, f)
    ]
    assert np.all(np.abs(flow.mean - exact) < 4 * flow.stderr)


def test_shake_monte_carlo_against_the_closed_form_for_one_block():
    # K = 1: E sigma(x + f2 + (f1 - f2) alpha) = (softplus(x + f1) - softplus(x + f2)) / (f1 - f2).
    x, f1, f2 = np.array([-1.0, 0.0, 2.5]), np.array([3.0, -2.0, 0.5]), np.array([-1.0, 4.0, -6.0])
    flow = residual_flow_mean(x, f1, 1, "shake", f2=f2, n_samples=50_000, seed=4)
    exact = (np.logaddexp(0, x + f1) - np.logaddexp(0, x + f2)) / (f1 - f2)
    assert np.all(np.abs(flow.mean - exact) < 4 * flow.stderr)


def test_shake_approaches_the_sde_with_eps_one_over_sqrt_3k():
    # (3.15): f = (f1 + f2)/2, g = (f1 - f2)/2, eps = 1/sqrt(3K); the SDE value is
    # E sigma(x + f + eps |g| Z) = u_sigmoid with velocity f and noise ratio eps |g| / |f|.
    x, f1, f2, k = 0.2, 3.0, 1.0, 12
    flow = residual_flow_mean(x, f1, k, "shake", f2=f2, n_samples=200_000, seed=5)
    f, g = (f1 + f2) / 2, (f1 - f2) / 2
    sde = u_sigmoid(x, f, epsilon("shake", k) * abs(g) / abs(f))
    assert abs(flow.mean - sde) < 4 * flow.stderr + 2e-4  # O(1/K^2) weak gap, well under 2e-4 here


def test_seeded_and_broadcast():
    """x (2, 1) and f (3,) broadcast to (2, 3): cell (i, j) is the flow from x[i] with velocity f[j]. For
    "uniform" (Monte Carlo, one sample set per call) it is the scalar call with the same seed; for
    "bernoulli" the exact binomial law E[sigma(x + f N/(pK))], N ~ Binomial(K, p), summed here."""
    x, f = np.array([[-0.5], [0.4]]), np.array([1.0, 2.0, -3.0])
    a = residual_flow_mean(x, f, 4, "uniform", beta=0.3, n_samples=1000, seed=7)
    b = residual_flow_mean(x, f, 4, "uniform", beta=0.3, n_samples=1000, seed=7)
    assert isinstance(a, FlowMean) and a.mean.shape == (2, 3) and a.stderr.shape == (2, 3)
    np.testing.assert_array_equal(a.mean, b.mean)
    for i in range(2):
        for j in range(3):
            one = residual_flow_mean(x[i, 0], f[j], 4, "uniform", beta=0.3, n_samples=1000, seed=7)
            assert a.mean[i, j] == pytest.approx(float(one.mean), rel=1e-12, abs=1e-15), (i, j)
            assert a.stderr[i, j] == pytest.approx(float(one.stderr), rel=1e-9), (i, j)
    assert len(np.unique(a.mean)) == 6  # every cell differs, so a permuted or dropped input shows
    k, p = 4, 0.7
    exact = residual_flow_mean(x, f, k, "bernoulli", p=p)
    assert exact.mean.shape == (2, 3) and exact.exact
    for i in range(2):
        for j in range(3):
            law = sum(math.comb(k, n) * p**n * (1 - p) ** (k - n) * expit(x[i, 0] + f[j] * n / (p * k))
                      for n in range(k + 1))
            assert exact.mean[i, j] == pytest.approx(law, rel=1e-13), (i, j)
    assert residual_flow_mean(np.zeros(4), 1.0, 3, "bernoulli", p=1.0).mean == pytest.approx(expit(1.0), abs=1e-15)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"noise": "bernoulli", "p": 0.0}, "p must be in"),
        ({"noise": "bernoulli", "p": 1.5}, "p must be in"),
        ({"noise": "bernoulli", "p": math.nan}, "p must be finite"),
        ({"noise": "gaussian", "nu": -0.1}, "nu must be >= 0"),
        ({"noise": "uniform", "beta": 1.0}, "beta must be in"),
        ({"noise": "shake"}, "needs the parameter f2"),
        ({"noise": "shake", "f2": math.inf}, "f2 must be finite"),
        ({"noise": "gaussian", "nu": 0.1, "p": 0.5}, "unexpected parameter"),
        ({"noise": "dropconnect", "p": 0.5}, "noise must be one of"),
        ({"noise": "bernoulli", "p": 0.5, "n_blocks": 0}, "n_blocks must be an integer"),
        ({"noise": "uniform", "beta": 0.5, "n_samples": 1}, "n_samples must be an integer"),
        ({"noise": "bernoulli", "p": 0.5, "x": math.nan}, "x and f must be finite"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"x": 0.0, "f": 1.0, "n_blocks": 4} | kwargs
    with pytest.raises(ValueError, match=match):
        residual_flow_mean(**args)


def test_bernoulli_flow_mean_stays_in_the_unit_interval_where_sigma_saturates():
    # the binomial pmf sums to 1 only to rounding: 1 + 2.2e-16 came out at x + f = 50 for many (K, p)
    for k in (7, 20, 59):
        for p in np.linspace(0.01, 1.0, 40):
            mean = residual_flow_mean(np.array([30.0, -30.0]), np.array([20.0, -20.0]), k, "bernoulli", p=p).mean
            assert 0.0 <= mean.min() and mean.max() <= 1.0
