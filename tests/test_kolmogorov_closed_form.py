"""u_sigmoid and du_sigmoid_df against scipy adaptive quadrature, exact limits and symmetries."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import expit, zeta

from kolmogorov import du_sigmoid_df, u_sigmoid
from kolmogorov.closed_form import _BANDS
from kolmogorov.quadrature import gauss_fermi, gauss_hermite


def _gauss_expectation(h, m, s):
    """E[h(m + s Z)] by adaptive quadrature, split where the integrand turns over (z0 = -m/s)."""
    if s == 0.0:
        return h(m)
    z0 = -m / s
    density = lambda z: h(m + s * z) * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    lo, hi = -14.0, 14.0
    cuts = {lo, hi} | {min(max(z0 + d / s, lo), hi) for d in (-40.0, -10.0, -2.0, 0.0, 2.0, 10.0, 40.0)}
    cuts = sorted(cuts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return sum(
            integrate.quad(density, a, b, epsabs=1e-15, epsrel=1e-14, limit=200)[0]
            for a, b in zip(cuts[:-1], cuts[1:])
            if b > a
        )


def _sigmoid_prime(y):
    e = expit(y)
    return e * (1.0 - e)


def _random_cases(n, seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-8, 8, n // 2), rng.uniform(-120, 120, n - n // 2)])
    f = rng.uniform(-50, 50, n)
    f[: n // 4] = rng.uniform(-3, 3, n // 4)  # small s = eps |f| sqrt(1-t): the Gauss-Hermite side
    eps = rng.uniform(0, 2, n)
    t = rng.choice([0.0, 0.0, 0.3, 0.9], n)
    return x, f, eps, t


def test_u_matches_adaptive_quadrature_over_the_whole_range():
    x, f, eps, t = _random_cases(160, seed=11)
    tau = 1.0 - t
    ref = [
        _gauss_expectation(expit, xi + ti * fi, ei * abs(fi) * math.sqrt(ti))
        for xi, fi, ei, ti in zip(x, f, eps, tau)
    ]
    assert np.max(np.abs(u_sigmoid(x, f, eps, t) - ref)) < 1e-10


BAND_EDGES = [upper for upper, _, _ in _BANDS if math.isfinite(upper)]  # where the rule changes


@pytest.mark.parametrize("s", [0.05, 0.5, 100.0] + [e + d for e in BAND_EDGES for d in (-0.01, 0.01)])
def test_u_at_band_edges_matches_quadrature(s):
    # f = 50 and eps = s/50 put the point exactly where the rule changes; x sweeps the transition.
    f = 50.0
    x = np.array([-f - 25.0, -f - 3.0, -f - 0.7, -f, -f + 0.4, -f + 6.0, -f + 30.0])
    eps = s / f
    ref = [_gauss_expectation(expit, xi + f, s) for xi in x]
    assert np.max(np.abs(u_sigmoid(x, f, eps) - ref)) < 1e-10
    # du/df where its eps^2 f U_mm term weighs most: eps = 2, f = s/2
    f, eps = s / 2.0, 2.0
    x = x + 50.0 - f
    ref = [
        _gauss_expectation(_sigmoid_prime, xi + f, s)
        + eps * _gauss_expectation(lambda y, m=xi + f: _sigmoid_prime(y) * (y - m) / s, xi + f, s)
        for xi in x
    ]
    assert np.max(np.abs(du_sigmoid_df(x, f, eps) - ref)) < 1e-10


def test_du_df_matches_quadrature_of_the_differentiated_integrand():
    # d/df E[sigma(m + s Z)] = E[sigma'(Y) ((1-t) + eps sign(f) sqrt(1-t) Z)]: a formula independent
    # of the (U_m, U_mm) route the library takes.
    x, f, eps, t = _random_cases(120, seed=12)
    tau = 1.0 - t
    ref = []
    for xi, fi, ei, ti in zip(x, f, eps, tau):
        m, s = xi + ti * fi, ei * abs(fi) * math.sqrt(ti)
        drift = ti * _gauss_expectation(_sigmoid_prime, m, s)
        if s > 0:
            # E[sigma'(m + sZ) Z] by quadrature of sigma'(m + s z) z phi(z)
            slope = _gauss_expectation(lambda y: _sigmoid_prime(y) * (y - m) / s, m, s)
            drift += ei * math.copysign(1.0, fi) * math.sqrt(ti) * slope
        ref.append(drift)
    assert np.max(np.abs(du_sigmoid_df(x, f, eps, t) - ref)) < 1e-10


def test_du_df_agrees_with_finite_differences_of_u():
    x = np.linspace(-30, 30, 41)[:, None]
    f = np.array([-40.0, -7.3, -1.1, 0.37, 2.4, 15.0, 49.0])
    h = 1e-4
    fd = (u_sigmoid(x, f + h, 0.8) - u_sigmoid(x, f - h, 0.8)) / (2 * h)
    fd4 = (4 * fd - (u_sigmoid(x, f + 2 * h, 0.8) - u_sigmoid(x, f - 2 * h, 0.8)) / (4 * h)) / 3
    assert np.max(np.abs(du_sigmoid_df(x, f, 0.8) - fd4)) < 1e-8


def test_du_df_at_zero_velocity_is_the_true_derivative():
    x = np.linspace(-6, 6, 13)
    for t in (0.0, 0.4):
        exact = (1 - t) * _sigmoid_prime(x)
        np.testing.assert_allclose(du_sigmoid_df(x, 0.0, 1.7, t), exact, rtol=0, atol=1e-14)
        # and it is the two-sided limit: symmetric difference quotient at f = 0
        h = 1e-5
        fd = (u_sigmoid(x, h, 1.7, t) - u_sigmoid(x, -h, 1.7, t)) / (2 * h)
        np.testing.assert_allclose(fd, exact, rtol=0, atol=1e-9)


def test_zero_noise_is_the_transport_solution_and_t_one_the_terminal():
    x = np.linspace(-40, 40, 81)[:, None]
    f = np.linspace(-50, 50, 11)
    np.testing.assert_allclose(u_sigmoid(x, f, 0.0), expit(x + f), rtol=0, atol=1e-15)
    np.testing.assert_allclose(u_sigmoid(x, f, 0.0, 0.25), expit(x + 0.75 * f), rtol=0, atol=1e-15)
    np.testing.assert_allclose(u_sigmoid(x, f, 1.3, 1.0), np.broadcast_to(expit(x), (81, 11)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(du_sigmoid_df(x, f, 0.0), _sigmoid_prime(x + f), rtol=0, atol=1e-15)


def test_small_eps_limit_is_half_the_viscosity_times_curvature():
    # u = v + (s^2/2) sigma''(m) + O(s^4): the artificial viscosity of section 3.3
    x, f = np.linspace(-4, 4, 9), 2.5
    m = x + f
    e = expit(m)
    curvature = e * (1 - e) * (1 - 2 * e)
    for eps in (1e-2, 1e-3):
        s = eps * f
        np.testing.assert_allclose((u_sigmoid(x, f, eps) - e) / s**2, curvature / 2, rtol=0, atol=5 * s**2)


def test_reflection_symmetry():
    # sigma(-y) = 1 - sigma(y) and Z ~ -Z give u(x, f) = 1 - u(-x, -f)
    x, f, eps, t = _random_cases(400, seed=13)
    np.testing.assert_allclose(u_sigmoid(x, f, eps, t), 1 - u_sigmoid(-x, -f, eps, t), rtol=0, atol=2e-15)
    np.testing.assert_allclose(du_sigmoid_df(x, f, eps, t), du_sigmoid_df(-x, -f, eps, t), rtol=0, atol=1e-14)


def test_broadcasting_and_range():
    u = u_sigmoid(np.zeros((3, 1, 1)), np.ones((1, 4, 1)), np.full((1, 1, 5), 0.5))
    assert u.shape == (3, 4, 5)
    assert du_sigmoid_df(0.0, np.linspace(-50, 50, 7), 2.0).shape == (7,)
    big = u_sigmoid(np.linspace(-1e4, 1e4, 101), np.linspace(-50, 50, 101), 2.0)
    assert np.all((big >= 0) & (big <= 1))
    # far tails on the Gauss-Hermite side (s <= 2.75) saturate cleanly, with no overflow
    far = np.array([-1e6, -800.0, 800.0, 1e6])
    np.testing.assert_allclose(u_sigmoid(far, 1.0, 0.5), [0.0, 0.0, 1.0, 1.0], rtol=0, atol=1e-200)
    np.testing.assert_allclose(du_sigmoid_df(far, 2.0, 1.3), 0.0, rtol=0, atol=1e-200)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"eps": math.nan}, "eps must be finite"),
        ({"eps": math.inf}, "eps must be finite"),
        ({"t": 1.5}, "t must be in"),
        ({"t": -0.1}, "t must be in"),
        ({"f": math.nan}, "f must be finite"),
        ({"x": math.inf}, "x must be finite"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"x": 0.0, "f": 1.0, "eps": 0.5, "t": 0.0} | kwargs
    for fn in (u_sigmoid, du_sigmoid_df):
        with pytest.raises(ValueError, match=match):
            fn(**args)


def test_gauss_fermi_reproduces_the_eta_moments():
    # int_0^inf y^k / (1 + e^y) dy = k! eta(k+1), eta(1) = ln 2, eta(s) = (1 - 2^(1-s)) zeta(s)
    y, w = gauss_fermi(12)
    for k in range(24):
        eta = math.log(2.0) if k == 0 else (1.0 - 2.0**-k) * zeta(k + 1)
        assert np.sum(w * y**k) == pytest.approx(math.factorial(k) * eta, rel=1e-12)
    z, v = gauss_hermite(10)
    assert np.sum(v * z**8) == pytest.approx(105.0, rel=1e-13)  # E[Z^8] = 7!!


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(-200, 200),
    f=st.floats(-50, 50),
    eps=st.floats(0, 2),
    t=st.floats(0, 1),
    dx=st.floats(1e-3, 5),
)
def test_u_is_a_probability_increasing_in_x(x, f, eps, t, dx):
    # u(., t) = E[sigma(x + ...)] inherits 0 <= sigma <= 1 and sigma' > 0 (maximum principle of (3.6)).
    lo, hi = u_sigmoid([x, x + dx], f, eps, t)
    assert 0.0 <= lo <= hi <= 1.0


_OVERFLOW_SCRIPT = """
import json, math, sys
from kolmogorov import du_sigmoid_df, u_sigmoid
out = []
for args in json.loads(sys.argv[1]):
    row = []
    for fn in (u_sigmoid, du_sigmoid_df):
        try:
            row.append(float(fn(*args)))
        except ValueError as e:
            row.append("ValueError: " + str(e))
    out.append(row)
print(json.dumps(out))
"""


def test_huge_noise_scale_neither_crashes_nor_returns_nan():
    # s = eps |f| sqrt(1-t) beyond the last band's bound (1e300) used to read past the band tables
    # in the numba kernel (a segfault); run in a subprocess so that a crash fails this test only.
    import json
    import subprocess
    import sys

    cases = [
        [0.0, 10.0, 1e300],  # s = 1e301, finite: must be computed
        [0.0, 1e300, 1e10],  # s overflows to inf from finite eps, f: refused
        [1e308, 1e308, 0.0],  # m = x + f overflows: refused
        [1e200, 1.0, 3.0],  # |m| / s huge on the Gauss-Fermi side (its derivative sums used to give nan)
        [-1e200, 1.0, 3.0],
        [5e300, 1e300, 2.0],  # s = 2e300 with m / s = 3
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _OVERFLOW_SCRIPT, json.dumps(cases)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (u0, g0), (u1, g1), (u2, g2), (u3, g3), (u4, g4), (u5, g5) = json.loads(proc.stdout)
    assert abs(u0 - _gauss_expectation(expit, 10.0, 1e301)) < 1e-12
    assert abs(g0) < 1e-290  # phi(q) ((1-t)/s - q/f) with q = 1e-300
    for message in (u1, g1):
        assert message.startswith("ValueError: eps * |f| * sqrt(1 - t)") and "eps=10000000000.0, f=1e+300" in message
    for message in (u2, g2):
        assert message.startswith("ValueError: x + (1 - t) f") and "x=1e+308, f=1e+308" in message
    assert (u3, g3, u4, g4) == (1.0, 0.0, 0.0, 0.0)
    assert abs(u5 - _gauss_expectation(expit, 6e300, 2e300)) < 1e-12
    assert abs(u5 - 0.5 * math.erfc(-3.0 / math.sqrt(2.0))) < 1e-15  # Phi(3): the s -> inf limit
    assert math.isfinite(g5)


@pytest.mark.parametrize("s", [1e6, 1e120, 1e250])
def test_very_wide_noise_matches_quadrature(s):
    # far beyond the documented range, U(m, s) = E[sigma(m + sZ)] -> Phi(m/s); compared with quad
    f, t = 4.0, 0.36
    eps = s / (abs(f) * math.sqrt(1.0 - t))
    q = np.array([-3.0, -0.5, 0.0, 1e-6, 1.7, 39.0, 41.0])
    x = q * s - (1.0 - t) * f
    m = x + (1.0 - t) * f
    ref = [_gauss_expectation(expit, mi, s) for mi in m]
    assert np.max(np.abs(u_sigmoid(x, f, eps, t) - ref)) < 1e-12
    # du/df against 4th-order central differences of u in f (u itself checked against quad above)
    h = 1e-3 * f
    u = lambda ff: u_sigmoid(x, ff, eps, t)
    fd = (8 * (u(f + h) - u(f - h)) - (u(f + 2 * h) - u(f - 2 * h))) / (12 * h)
    np.testing.assert_allclose(du_sigmoid_df(x, f, eps, t), fd, rtol=0, atol=1e-9)
    assert np.max(np.abs(fd)) > 0.04  # not vacuous: du/df ~ -q phi(q) / f, 0.044 at q = -0.5


def test_du_df_at_wide_noise_matches_quadrature():
    # s = 1e6: E[sigma'(m + sZ)] and E[sigma'(m + sZ) Z] resolved by quad (cuts at the turn-over)
    f, eps, t = 2.0, 5e5, 0.0
    s = eps * abs(f)
    for x in (-3e6, -1e5, -2.0, 0.0, 3.0, 2e6):
        m = x + f
        ref = _gauss_expectation(_sigmoid_prime, m, s) + eps * _gauss_expectation(
            lambda y: _sigmoid_prime(y) * (y - m) / s, m, s
        )
        # s^2 U_mm / f carries the kernel's U_mm error times s^2 / f: 1.7e-12 measured at x = 2e6
        assert abs(float(du_sigmoid_df(x, f, eps, t)) - ref) < 1e-10
        assert abs(float(u_sigmoid(x, f, eps, t)) - _gauss_expectation(expit, m, s)) < 1e-12
