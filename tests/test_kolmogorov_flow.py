"""residual_flow_mean: weak orders of the modified equation, exact laws against quadrature and direct simulation."""
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


def test_uniform_flow_against_adaptive_quadrature_of_the_triangular_law():
    # K = 2: the sum of two U(-beta, beta) has the triangular density on [-2 beta, 2 beta]; large |f| too, where
    # the quadrature law needs many nodes per piece.
    x, f, beta = np.array([-2.0, 0.3, 1.0, -40.0]), np.array([5.0, -4.0, 60.0, 38.0]), 0.7
    flow = residual_flow_mean(x, f, 2, "uniform", beta=beta)
    assert flow.exact and np.all(flow.stderr == 0)
    tri = lambda s: (2 * beta - abs(s)) / (4 * beta * beta)
    for xi, fi, got in zip(x, f, flow.mean):
        kink = -(xi + fi) / (fi / 2)  # where the sigmoid turns, a hard point for the adaptive rule
        points = [0.0] + ([kink] if abs(kink) < 2 * beta else [])
        exact = integrate.quad(lambda s: expit(xi + fi + fi / 2 * s) * tri(s), -2 * beta, 2 * beta, points=points,
                               epsabs=1e-15, epsrel=1e-13, limit=200)[0]
        assert got == pytest.approx(exact, rel=0, abs=2e-14)


def test_uniform_flow_matches_direct_simulation():
    x, f, k, beta = -0.7, 4.0, 5, 0.9
    exact = residual_flow_mean(x, f, k, "uniform", beta=beta).mean
    mc, se = _simulate(x, f, k, lambda r, n: 1 + r.uniform(-beta, beta, n), 200_000, seed=3)
    assert abs(mc - exact) < 4 * se


def test_shake_against_the_closed_form_for_one_block():
    # K = 1: E sigma(x + f2 + (f1 - f2) alpha) = (softplus(x + f1) - softplus(x + f2)) / (f1 - f2).
    x, f1, f2 = np.array([-1.0, 0.0, 2.5, 3.0]), np.array([3.0, -2.0, 0.5, 90.0]), np.array([-1.0, 4.0, -6.0, -70.0])
    flow = residual_flow_mean(x, f1, 1, "shake", f2=f2)
    exact = (np.logaddexp(0, x + f1) - np.logaddexp(0, x + f2)) / (f1 - f2)
    np.testing.assert_allclose(flow.mean, exact, rtol=0, atol=1e-14)


@pytest.mark.parametrize("noise,beta", [("uniform", 0.9), ("shake", None)])
def test_symmetric_uniform_masks_are_weak_order_three(noise, beta):
    # Uniform masks are symmetric: the third cumulant of the mean of K masks vanishes, and the gap to the SDE
    # (eps = beta / sqrt(3K) for (3.14), 1 / sqrt(3K) for (3.15) with f = (f1 + f2)/2, g = (f1 - f2)/2) is the
    # fourth cumulant's, O(1/K^3), as for the fair-coin Bernoulli mask.
    x, f1, f2 = np.array([-1.0, 0.5, 2.0]), 2.5, -1.5
    ks = np.array([4, 8, 16, 32])
    gaps = []
    for k in ks:
        if noise == "uniform":
            flow = residual_flow_mean(x, f1, int(k), "uniform", beta=beta).mean
            sde = u_sigmoid(x, f1, epsilon("uniform", int(k), beta=beta))
        else:
            flow = residual_flow_mean(x, f1, int(k), "shake", f2=f2).mean
            f, g = (f1 + f2) / 2, (f1 - f2) / 2
            sde = u_sigmoid(x, f, epsilon("shake", int(k)) * abs(g) / abs(f))
        gaps.append(np.max(np.abs(flow - sde)))
    assert 2.85 < _rate(ks, gaps) < 3.15


def test_broadcast():
    """x (2, 1) and f (3,) broadcast to (2, 3): cell (i, j) is the flow from x[i] with velocity f[j]. For
    "uniform" it is the scalar call (whose quadrature law has fewer nodes, sized for its one f); for
    "bernoulli" the exact binomial law E[sigma(x + f N/(pK))], N ~ Binomial(K, p), summed here."""
    x, f = np.array([[-0.5], [0.4]]), np.array([1.0, 2.0, -3.0])
    a = residual_flow_mean(x, f, 4, "uniform", beta=0.3)
    assert isinstance(a, FlowMean) and a.mean.shape == (2, 3) and a.stderr.shape == (2, 3) and a.exact
    for i in range(2):
        for j in range(3):
            one = residual_flow_mean(x[i, 0], f[j], 4, "uniform", beta=0.3)
            assert a.mean[i, j] == pytest.approx(float(one.mean), rel=0, abs=1e-15), (i, j)
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
        ({"noise": "uniform", "beta": 0.5, "f": 1e6}, "Gauss-Legendre nodes per piece"),
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
