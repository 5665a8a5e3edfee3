"""The sigmoid solution of the backward Kolmogorov equation for constant velocity, and its f-derivative.

Main paper, section 4.1: for constant velocity f, noise g = f and terminal sigma, the backward
Kolmogorov equation (3.6) reversed in time is (4.1), whose solution is a Gaussian smoothing of the
transported sigmoid,

    u(x, t) = E[sigma(x + (1-t) f + eps |f| sqrt(1-t) Z)],   Z ~ N(0, 1),

the viscous counterpart of the transport solution v(x, t) = sigma(x + (1-t) f) of (3.9).
With m = x + (1-t) f and s = eps |f| sqrt(1-t) we need the logistic-normal integral
U(m, s) = E[sigma(m + s Z)], evaluated by one of two fixed rules chosen by s:

* s <= 2.75: Gauss-Hermite in Z. sigma(m + s Z) has poles at Z = (-m + i pi (2k+1))/s, a distance
  pi/s from the real axis, so the rule converges geometrically; the nodes needed grow like s^2
  (10 at s <= 0.25, 208 at s <= 2.75), but each costs no exponential in the kernel.
* s large (the integrand is nearly a step in Z, where Gauss-Hermite fails): split sigma into the
  step 1{y > 0} plus a remainder supported near y = 0 and decaying like e^{-|y|},

      U(m, s) = Phi(m/s) + int_0^inf sigma(-y) [p(-y) - p(y)] dy,   p = N(m, s^2) density,

  and integrate the remainder with the Gauss-Fermi rule of the weight sigma(-y) on [0, inf);
  p varies on the scale s, so few nodes suffice once s is large (20 at s <= 3, 6 beyond 15).
* s > 1e100: the s -> inf limits (see _wide_limit), computed outside the kernel.

Absolute error is below 1e-10 over |f| <= 50, 0 <= eps <= 2 and all x (tests/test_kolmogorov_closed_form.py
checks this against scipy adaptive quadrature).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from kolmogorov.quadrature import gauss_fermi, gauss_hermite

_PARALLEL_MIN_POINTS = 20_000  # below this, one thread (see kolmogorov._threads)
# Above this s, U and its m-derivatives are their s -> inf limits (see _wide_limit), computed
# outside the kernel; du_sigmoid_df uses s^2 U_mm -> -q phi(q), since U_mm ~ 1/s^2 underflows.
_S_ASYMPTOTIC = 1e100
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# (largest s, rule, number of nodes): the cheapest rule meeting 1e-10 on each band of s.
_BANDS: tuple[tuple[float, str, int], ...] = (
    (0.25, "hermite", 10),
    (0.5, "hermite", 16),
    (0.75, "hermite", 24),
    (1.0, "hermite", 32),
    (1.15, "hermite", 40),
    (1.3, "hermite", 48),
    (1.45, "hermite", 56),
    (1.6, "hermite", 80),
    (1.75, "hermite", 96),
    (2.0, "hermite", 128),
    (2.25, "hermite", 144),
    (2.5, "hermite", 176),
    (2.75, "hermite", 208),
    (3.0, "fermi", 20),
    (4.0, "fermi", 16),
    (5.0, "fermi", 12),
    (6.0, "fermi", 10),
    (15.0, "fermi", 8),
    (math.inf, "fermi", 6),
)


@lru_cache(maxsize=1)
def _band_tables() -> tuple[np.ndarray, ...]:
    """The bands flattened for the kernel: upper s, kind (0 Hermite, 1 Fermi), offset, size, nodes, weights."""
    upper, kind, offset, size, nodes, weights = [], [], [], [], [], []
    start = 0
    for s_max, rule, n in _BANDS:
        z, w = gauss_hermite(n) if rule == "hermite" else gauss_fermi(n)
        upper.append(min(s_max, 1e300))  # finite: the kernel is compiled with fastmath
        kind.append(0 if rule == "hermite" else 1)
        offset.append(start)
        size.append(n)
        nodes.append(z)
        weights.append(w)
        start += n
    return (
        np.array(upper),
        np.array(kind, dtype=np.int64),
        np.array(offset, dtype=np.int64),
        np.array(size, dtype=np.int64),
        np.concatenate(nodes),
        np.concatenate(weights),
    )


def sigmoid_normal_moments(m: ArrayLike, s: ArrayLike, derivatives: bool = False) -> tuple[np.ndarray, ...]:
    """U(m, s) = E[sigma(m + s Z)] and, with derivatives, U_m and U_mm (1-D float arrays, s >= 0).

    U_s = s U_mm (the heat equation in the variance s^2/2), so these three give every first
    derivative of u_sigmoid. Absolute error below 1e-10 for s <= 100 (see module docstring).
    ValueError if m or s is not finite or s < 0.
    The work is a numba kernel (kolmogorov._closed_form_kernels, compiled once and cached).
    """
    from kolmogorov._closed_form_kernels import sigmoid_normal_kernel
    from kolmogorov._threads import single_thread_if_small

    m = np.ascontiguousarray(m, dtype=float).ravel()
    s = np.ascontiguousarray(s, dtype=float).ravel()
    if m.shape != s.shape:
        raise ValueError(f"m and s must have the same size, got {m.size} and {s.size}")
    if not np.all(np.isfinite(m)):
        raise ValueError("m must be finite (no nan or inf)")
    if not (np.all(np.isfinite(s)) and np.all(s >= 0.0)):
        raise ValueError("s must be finite and >= 0 (no nan or inf)")
    out_u = np.empty_like(m)
    out_um = np.empty_like(m) if derivatives else np.empty(0)
    out_umm = np.empty_like(m) if derivatives else np.empty(0)
    wide = s > _S_ASYMPTOTIC
    any_wide = bool(np.any(wide))
    with single_thread_if_small(m.size, _PARALLEL_MIN_POINTS):
        sigmoid_normal_kernel(m, np.where(wide, 1.0, s) if any_wide else s, derivatives, *_band_tables(),
                              out_u, out_um, out_umm)
    if any_wide:
        from scipy.special import ndtr

        q, phi = _wide_limit(m[wide], s[wide])
        out_u[wide] = ndtr(q)
        if derivatives:
            out_um[wide] = phi / s[wide]
            out_umm[wide] = -q * phi / s[wide] / s[wide]
    return (out_u, out_um, out_umm) if derivatives else (out_u,)


def _wide_limit(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q = m/s and phi(q) for s > _S_ASYMPTOTIC, where U = Phi(q), U_m = phi(q)/s, U_mm = -q phi(q)/s^2.

    Those are the s -> inf limits of the integrals (sigma - 1{y > 0} and sigma' are odd and even
    about 0, so the first corrections vanish): exact to O(1/s^2) relative, far below 1e-16 there.
    Computed here, without fastmath: in the kernel, reassociation could form m^2 (inf for |m| near
    1e308) times 1/s^2 (0).
    """
    q = m / s
    inside = np.abs(q) <= 40.0  # beyond, phi(q) < 1e-347 (0); Phi(q) is 0 or 1 either way
    q_in = np.where(inside, q, 0.0)
    phi = np.where(inside, np.exp(-0.5 * q_in * q_in) * _INV_SQRT_2PI, 0.0)
    return q, phi


def _prepare(x: ArrayLike, f: ArrayLike, eps: ArrayLike, t: ArrayLike):
    x, f, eps, t = (np.asarray(a, dtype=float) for a in (x, f, eps, t))
    for name, value in (("x", x), ("f", f), ("eps", eps), ("t", t)):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name} must be finite (no nan or inf)")
    if np.any(eps < 0.0):
        raise ValueError("eps must be >= 0 (the noise level of (3.4)); got a negative value")
    if np.any((t < 0.0) | (t > 1.0)):
        raise ValueError("t must be in [0, 1] (the time of (3.5))")
    x, f, eps, t = np.broadcast_arrays(x, f, eps, t)
    tau = 1.0 - t
    with np.errstate(over="ignore"):
        m = x + tau * f
        s = eps * np.abs(f) * np.sqrt(tau)
    # Finite inputs can overflow here (eps |f| or x + f beyond 1.8e308). The limit of U is then not
    # determined by m and s alone (it is Phi of their ratio), so such inputs are refused.
    if not np.all(np.isfinite(s)):
        i = np.flatnonzero(~np.isfinite(s.ravel()))[0]
        raise ValueError(
            "eps * |f| * sqrt(1 - t) (the noise scale s of (4.1)) overflows float64 at "
            f"eps={float(eps.ravel()[i])!r}, f={float(f.ravel()[i])!r}, t={float(t.ravel()[i])!r}: need eps * |f| * sqrt(1 - t) < 1.8e308"
        )
    if not np.all(np.isfinite(m)):
        i = np.flatnonzero(~np.isfinite(m.ravel()))[0]
        raise ValueError(
            "x + (1 - t) f (the mean m of (4.1)) overflows float64 at "
            f"x={float(x.ravel()[i])!r}, f={float(f.ravel()[i])!r}, t={float(t.ravel()[i])!r}: need |x + (1 - t) f| < 1.8e308"
        )
    return m, s, f, eps, tau


def u_sigmoid(x: ArrayLike, f: ArrayLike, eps: ArrayLike, t: ArrayLike = 0.0) -> np.ndarray:
    """Viscous solution u(x, t) of (3.6)/(4.1) for constant velocity f and terminal sigma.

    u(x, t) = E[sigma(x + (1-t) f + eps |f| sqrt(1-t) Z)], Z ~ N(0, 1) (section 4.1, the
    convolution sigma * phi of (4.1) at time 1 - t). eps = 0 gives the transport solution
    v = sigma(x + (1-t) f) of (3.9); u(x, 0) is the prediction u(Sy, 0) in J_eps (3.7).

    Args:
        x: positions (the input y of the 1-D task, S = id).
        f: constant velocities.
        eps: noise levels >= 0 of the stochastic modified equation (3.4).
        t: times in [0, 1]; t = 0 is the network's prediction, t = 1 the terminal sigma.
            All four broadcast against each other.

    Returns:
        u with the broadcast shape; absolute error below 1e-10 for |f| <= 50, eps <= 2.

    Raises:
        ValueError: eps negative or not finite, t outside [0, 1], x or f not finite, or
            x + (1-t) f or eps |f| sqrt(1-t) overflowing float64.
    """
    m, s, *_ = _prepare(x, f, eps, t)
    (u,) = sigmoid_normal_moments(m, s)
    return u.reshape(m.shape)


def du_sigmoid_df(x: ArrayLike, f: ArrayLike, eps: ArrayLike, t: ArrayLike = 0.0) -> np.ndarray:
    """Derivative du/df of :func:`u_sigmoid` (the gradient that SGD on J_eps (3.7) needs).

    Since Z and -Z have the same law, u depends on f through m = x + (1-t) f and s^2 = eps^2 f^2
    (1-t), so u is smooth in f, including f = 0 where |f| is not: with U_{s^2} = U_mm / 2,

        du/df = (1-t) [U_m + eps^2 f U_mm],   U_m = E[sigma'(m + s Z)], U_mm = E[sigma''(m + s Z)].

    At f = 0 this is the true derivative (1-t) sigma'(x) (the eps term vanishes), not a one-sided
    or averaged choice. Same arguments, broadcasting and accuracy as :func:`u_sigmoid`.
    """
    m, s, f, eps, tau = _prepare(x, f, eps, t)
    _, u_m, u_mm = sigmoid_normal_moments(m, s, derivatives=True)
    shape = m.shape
    # (1-t) eps^2 f U_mm = s^2 U_mm / f for f != 0 (and 0 at f = 0): no eps^2, which overflows for
    # eps > 1.3e154 while s is still finite. s^2 U_mm is bounded (-> -q phi(q), q = m/s, as s -> inf);
    # beyond _S_ASYMPTOTIC the kernel's U_mm ~ 1/s^2 underflows, so that limit (exact to O(1/s^2)) is used.
    s2_umm = np.array(s * (s * u_mm.reshape(shape)))
    wide = s > _S_ASYMPTOTIC
    if np.any(wide):
        q, phi = _wide_limit(m[wide], s[wide])
        s2_umm[wide] = -q * phi
    eps_term = np.divide(s2_umm, f, out=np.zeros(shape), where=f != 0.0)
    return tau * u_m.reshape(shape) + eps_term


def log_sigmoid_normal_moments(m: ArrayLike, s: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log U(m, s), U_m / U and U_mm / U with relative accuracy where U is tiny (1-D float arrays).

    U itself is accurate only in absolute terms (1e-10): in the lower tail (m far below 0, or
    |m| > 600 where the Gauss-Hermite kernel clips m) its digits, and those of U_m, U_mm, are lost,
    which -log U (the cross-entropy of J_eps) and d log U / df would inherit. The Gaussian shift
    E[e^{sZ} h(Z)] = e^{s^2/2} E[h(Z + s)] and sigma(x) = e^x sigma(-x) give the exact identity

        U(m, s) = e^{m + s^2/2} U(m', s),   m' = -m - s^2,

    and, differentiating in m, U_m(m) = e^{..} [U - U_m](m'), U_mm(m) = e^{..} [U - 2 U_m + U_mm](m').
    For m < -s^2/2 the right side is evaluated at m' > -s^2/2, where U is not in its lower tail.
    """
    m = np.ascontiguousarray(m, dtype=float).ravel()
    s = np.ascontiguousarray(s, dtype=float).ravel()
    with np.errstate(over="ignore"):
        s2 = s * s
    low = m < -0.5 * s2  # False where s^2 overflows (then m >= -s^2/2 for every finite m)
    m_eval = np.where(low, -m - np.where(low, s2, 0.0), m)
    u, u_m, u_mm = sigmoid_normal_moments(m_eval, s, derivatives=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_u = np.log(u)
        a = u_m / u
        b = u_mm / u
    tail = m_eval < -s  # U < Phi(-1)-ish: the kernel's absolute accuracy is not enough (s > 2 here)
    if np.any(tail):
        log_u[tail], a[tail], b[tail] = _log_moments_tail(m_eval[tail], s[tail])
    log_u = np.where(low, m + 0.5 * np.where(low, s2, 0.0), 0.0) + log_u
    return log_u, np.where(low, 1.0 - a, a), np.where(low, 1.0 - 2.0 * a + b, b)


_TAIL_STEP = 0.25
_TAIL_V = np.arange(-90.0, 40.0 + 0.5 * _TAIL_STEP, _TAIL_STEP)


def _log_moments_tail(m: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log U, U_m/U, U_mm/U for -s^2/2 <= m < -s (s > 2) by the substitution z = z0 + v/s, z0 = -m/s:

        U = phi(z0)/s * I0,   I_j = int sigma^(j)(v) exp(-a v - v^2/(2 s^2)) dv,   a = z0/s in (0, 1/2],

    an integrand of size O(1), analytic in the strip |Im v| < pi and decaying like e^{(1-a) v} <= e^{v/2}
    on the left: the trapezoid rule with step 1/4 on [-90, 40] (error ~ e^{-2 pi^2 / h}), plus the exact
    tail beyond v = 40 where sigma = 1 to 4e-18 (a Gaussian integral, via erfcx) for I0.
    """
    from scipy.special import erfcx

    out = (np.empty(m.size), np.empty(m.size), np.empty(m.size))
    v = _TAIL_V
    sig = 1.0 / (1.0 + np.exp(-v))
    d1 = sig * (1.0 - sig)
    d2 = d1 * (1.0 - 2.0 * sig)
    log_sig = -np.logaddexp(0.0, -v)
    for start in range(0, m.size, 4096):
        mc, sc = m[start:start + 4096, None], s[start:start + 4096, None]
        z0 = -mc / sc
        a = z0 / sc
        w = np.exp(log_sig[None, :] - a * v[None, :] - 0.5 * (v[None, :] / sc) ** 2 - log_sig[None, :])
        # Trapezoid up to v = 40 with its Euler-Maclaurin end correction (there the integrand is
        # k = exp(-a v - v^2/(2 s^2)), k' = -b k, k''' = (-b^3 + 3 b c) k, k^(5) = (-b^5 + 10 b^3 c - 15 b c^2) k,
        # b = a + 40/s^2, c = 1/s^2; the left end is below e^{-45}), then the exact Gaussian tail.
        h = _TAIL_STEP
        k_end = np.exp(-40.0 * a[:, 0] - 800.0 / sc[:, 0] ** 2)
        b_, c_ = a[:, 0] + 40.0 / sc[:, 0] ** 2, 1.0 / sc[:, 0] ** 2
        end = k_end * (-0.5 * h + h * h / 12.0 * b_ + h ** 4 / 720.0 * (-b_ ** 3 + 3.0 * b_ * c_)
                       - h ** 6 / 30240.0 * (-b_ ** 5 + 10.0 * b_ ** 3 * c_ - 15.0 * b_ * c_ * c_))
        i0 = h * (w * sig).sum(axis=1) + end + (
            sc[:, 0] * math.sqrt(math.pi / 2.0) * erfcx((40.0 / sc[:, 0] + z0[:, 0]) / math.sqrt(2.0)) * k_end
        )
        i1 = _TAIL_STEP * (w * d1).sum(axis=1)
        i2 = _TAIL_STEP * (w * d2).sum(axis=1)
        sl = slice(start, start + mc.shape[0])
        out[0][sl] = -0.5 * z0[:, 0] ** 2 - 0.5 * math.log(2.0 * math.pi) - np.log(sc[:, 0]) + np.log(i0)
        out[1][sl] = i1 / i0
        out[2][sl] = i2 / i0
    return out
