"""Two-point masks in the 1-D residual flow: what the size of a mask's jumps does at a fixed noise level.

Every injection of the main paper multiplies a branch by a mean-one mask m of variance v = K eps^2 (eqs. (3.2),
(3.13), (3.14)), and to leading order only eps enters the SDE (3.4). The two-point family

    m = 1 + v / a   with probability 1 - q,      m = 1 - a   with probability q = v / (a^2 + v),

has mean 1 and variance v for every jump a in [sqrt(v), 1]: a = sqrt(v) is a fair coin 1 +- sqrt(v), a = 1 is
the Bernoulli mask of (3.1) with p = 1 / (1 + v). nets.two_point_masks measures trained networks along a;
this module gives the exact answer for the 1-D flow of kolmogorov.flow,

    X_{k+1} = X_k + (f / K) m_k,  X_0 = x,   so   X_K = x + f + (f / K) sum_k (m_k - 1),

whose mean E[sigma(X_K)] is a finite sum over the number N ~ Binomial(K, q) of steps down. Its gap to the SDE's
u_sigmoid(x, f, eps) (X_K has the SDE's mean x + f and variance f^2 eps^2) is an expansion in the cumulants
kappa_n of X_K beyond the second (the Edgeworth series of E[h(X)] about the normal law G of the same mean and
variance):

    E[sigma(X_K)] - u_sigmoid = kappa_3/3! E[sigma'''(G)] + kappa_4/4! E[sigma''''(G)]
                                + kappa_5/5! E[sigma^(5)(G)] + kappa_3^2/72 E[sigma^(6)(G)] + ...,

    kappa_n(X_K) = f^n kappa_n(m) / K^(n-1),   kappa_3(m) = v (v - a^2) / a.

The jump enters first through kappa_3, which vanishes for the fair coin and is -v (1 - v) for the Bernoulli
mask. At fixed mask (v and a fixed, so eps^2 = v / K, the paper's limit of many blocks at fixed p) the terms are
of order 1/K^2, 1/K^3 and 1/K^4; at fixed eps, the kappa_3 term relative to the variance term
(1/2) f^2 eps^2 E[sigma''(G)] is f (v - a^2) E[sigma'''] / (3 a K E[sigma'']), of order 1/K: with few blocks the
jump's size matters at order one.

With few blocks the expansion converges slowly (its terms go like (a f / K)^n), but the small-noise limit at
fixed K and a is closed: a block steps down by delta = a f / K with probability about K eps^2 / a^2, so

    c(a) = lim_{eps -> 0} (E[sigma(X_K)] - sigma(x + f)) / eps^2 = (K / a)^2 [sigma(z - delta) - sigma(z) + delta sigma'(z)],

z = x + f: the divided difference of sigma over one jump, where the SDE has (1/2) f^2 sigma''(z) (its a -> 0 limit,
approached as (1/2) f^2 sigma'' - a f^3 sigma''' / (6 K)). This is the 1-D form of nets.noise_response's c: the
Bernoulli mask sees the change of removing a whole branch, the Gaussian mask the curvature at the point.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from kolmogorov.flow import FlowMean, SumLaw, binomial_law, check_blocks, law_flow_mean

#: Gauss-Hermite nodes of sigmoid_derivative_mean: |error| < 1e-12 for s <= MAX_SMOOTHING (tested against quad)
_HERMITE_NODES = 200
#: the largest Gaussian spread |f| eps for which sigmoid_derivative_mean and cumulant_corrections are accurate
MAX_SMOOTHING = 2.0


def smallest_jump(variance: float) -> float:
    """sqrt(v): the jump of the fair coin 1 +- sqrt(v), the smallest of the family."""
    return math.sqrt(variance)


#: a jump this far (relative) below sqrt(v) is the fair coin computed another way (sqrt(K) eps against sqrt(K eps^2))
_ROUNDING = 1e-12


def check_jump(jump: object, variance: float) -> float:
    """jump as a float when it lies in [sqrt(variance), 1], else ValueError naming jump and the interval; a jump
    within rounding (1e-12 relative) below sqrt(variance) is the fair coin and comes back as sqrt(variance)."""
    low = smallest_jump(variance)
    if isinstance(jump, bool) or not isinstance(jump, (int, float, np.floating)) or not math.isfinite(jump):
        raise ValueError(f"jump must be a number in [sqrt(K eps^2), 1] = [{low:.6g}, 1]; got {jump!r}")
    jump = float(jump)
    if low * (1.0 - _ROUNDING) <= jump < low:
        return low
    if not low <= jump <= 1.0:
        raise ValueError(f"jump must be a number in [sqrt(K eps^2), 1] = [{low:.6g}, 1]; got {jump!r}")
    return jump


def jump_probability(jump: float, variance: float) -> float:
    """q = v / (a^2 + v): the probability of the step down to 1 - a that makes the mask's variance v."""
    return variance / (jump * jump + variance)


def check_level(n_blocks: int, eps: object) -> tuple[int, float]:
    """(K, eps) when K >= 1 and 0 < eps <= 1/sqrt(K) (so that some jump fits: sqrt(K eps^2) <= 1), else ValueError."""
    k = check_blocks(n_blocks)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0; got {eps!r}")
    if k * eps * eps < sys.float_info.min:  # underflows: the variance, the jumps and q lose their digits
        raise ValueError(f"eps must be at least {math.sqrt(sys.float_info.min / k):.3g} for K = {k} blocks (K eps^2 "
                         f"underflows in float64 below it); got {eps!r}")
    if k * eps * eps > 1.0:
        raise ValueError(f"eps must be at most 1/sqrt(K) = {1 / math.sqrt(k):.6g} for K = {k} blocks "
                         f"(the jumps lie in [sqrt(K eps^2), 1]); got {eps!r}")
    return k, float(eps)


@dataclass(frozen=True)
class TwoPointMask:
    """The mask 1 + variance/jump with probability 1 - q, 1 - jump with probability q (mean 1)."""

    variance: float
    jump: float

    def __post_init__(self) -> None:
        if isinstance(self.variance, bool) or not isinstance(self.variance, (int, float)) \
                or not 0.0 < self.variance <= 1.0:
            raise ValueError(f"variance must be a number in (0, 1]; got {self.variance!r}")
        object.__setattr__(self, "jump", check_jump(self.jump, self.variance))  # the fair coin within rounding: sqrt(v)

    @classmethod
    def at_level(cls, n_blocks: int, eps: float, jump: float) -> "TwoPointMask":
        """The mask of variance K eps^2 that puts K blocks at noise level eps (eq. (3.2)'s eps^2 = var(m) / K)."""
        k, eps = check_level(n_blocks, eps)
        return cls(k * eps * eps, jump)

    @property
    def low(self) -> float:
        return 1.0 - self.jump

    @property
    def high(self) -> float:
        return 1.0 + self.variance / self.jump

    @property
    def down_probability(self) -> float:
        return jump_probability(self.jump, self.variance)

    def block_mean(self, n_blocks: int, down: ArrayLike) -> np.ndarray:
        """(1/K) sum_k m_k when `down` of the K masks are at 1 - a and the rest at 1 + v/a: X_K = x + f times this."""
        down = np.asarray(down)
        return 1.0 + ((n_blocks - down) * (self.high - 1.0) - down * self.jump) / n_blocks

    def cumulant(self, order: int) -> float:
        """kappa_n(m) for n >= 2 (kappa_2 = variance, kappa_3 = v (v - a^2)/a), from the moments of m - 1.

        m - 1 = -a + (a + v/a) B with B ~ Bernoulli(1 - q), so kappa_n(m) = (a + v/a)^n kappa_n(B); the cumulants
        of B follow from kappa_1 = r, kappa_{n+1} = r (1 - r) d kappa_n / dr, r = 1 - q: kappa_n(B) = P_{n-1}(r)
        with the polynomials of logistic_polynomial."""
        if isinstance(order, bool) or not isinstance(order, int) or order < 2:
            raise ValueError(f"order must be an int >= 2; got {order!r}")
        r = 1.0 - self.down_probability
        return float((self.jump + self.variance / self.jump) ** order * logistic_polynomial(order - 1)(r))


@lru_cache(maxsize=None)
def logistic_polynomial(order: int) -> np.polynomial.Polynomial:
    """P_n with P_0(y) = y and P_{n+1}(y) = y (1 - y) P_n'(y): sigma^(n) = P_n(sigma) (sigma' = sigma (1 - sigma)),
    and the cumulant kappa_{n+1} of a Bernoulli(r) variable is P_n(r), by the same recursion."""
    poly = np.polynomial.Polynomial([0.0, 1.0])
    logistic = np.polynomial.Polynomial([0.0, 1.0, -1.0])
    for _ in range(order):
        poly = logistic * poly.deriv()
    return poly


def two_point_law(n_blocks: int, eps: float, jump: float) -> SumLaw:
    """The law of X_K = x + f m_N of K blocks with two-point masks of variance K eps^2 and jump a (exact, finite).

    N ~ Binomial(K, q) masks at 1 - a and K - N at 1 + v/a: m_N = 1 + ((K - N) v/a - N a) / K, mean 1 and
    variance eps^2 (the SDE's (3.4) for every jump). jump = 1 is kolmogorov.flow.dropout_law at p = 1/(1 + K eps^2).

    Raises:
        ValueError: n_blocks < 1, eps not in (0, 1/sqrt(K)], jump outside [sqrt(K eps^2), 1].
    """
    k, eps = check_level(n_blocks, eps)
    mask = TwoPointMask(k * eps * eps, jump)
    return binomial_law(k, mask.down_probability, mask.block_mean(k, np.arange(k + 1)))


def two_point_flow_mean(x: ArrayLike, f: ArrayLike, n_blocks: int, eps: float, jump: float) -> FlowMean:
    """E[sigma(X_K)] of the 1-D flow X_{k+1} = X_k + (f/K) m_k with two-point masks of variance K eps^2 (exact).

    A finite sum over the law two_point_law. jump = 1 is residual_flow_mean's Bernoulli flow at p = 1/(1 + K eps^2);
    eps is the SDE's level (3.4) for every jump, so the gap to u_sigmoid(x, f, eps) is the jump's own effect (module docstring).

    Raises:
        ValueError: n_blocks < 1, eps not in (0, 1/sqrt(K)], jump outside [sqrt(K eps^2), 1], x or f not finite.
    """
    return law_flow_mean(x, f, two_point_law(n_blocks, eps, jump))


def sigmoid_derivative_mean(m: ArrayLike, s: ArrayLike, order: int) -> np.ndarray:
    """E[sigma^(n)(m + s Z)], Z ~ N(0, 1), n = order >= 0, by Gauss-Hermite quadrature (s in [0, MAX_SMOOTHING]).

    sigma^(n) = P_n(sigma) (logistic_polynomial). sigma^(n) is analytic in the strip
    |Im z| < pi, so the rule converges geometrically in the number of nodes for these s."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an int >= 0; got {order!r}")
    m, s = np.broadcast_arrays(np.asarray(m, dtype=float), np.asarray(s, dtype=float))
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError("m and s must be finite")
    if np.any(s < 0) or np.any(s > MAX_SMOOTHING):
        raise ValueError(f"s must lie in [0, {MAX_SMOOTHING:g}] (the spread |f| eps); got max {float(np.max(s)):.6g}, "
                         f"min {float(np.min(s)):.6g}")
    from scipy.special import expit

    from kolmogorov.quadrature import gauss_hermite

    z, w = gauss_hermite(_HERMITE_NODES)
    y = expit(m[..., None] + s[..., None] * z)
    return logistic_polynomial(order)(y) @ w


@dataclass(frozen=True)
class CumulantCorrections:
    """The terms of E[sigma(X_K)] - u_sigmoid(x, f, eps) by order in 1/K at fixed mask (module docstring).

    third: kappa_3/3! E[sigma'''(G)] (order 1/K^2); fourth: kappa_4/4! E[sigma''''(G)] (1/K^3); fifth:
    kappa_5/5! E[sigma^(5)(G)] + kappa_3^2/72 E[sigma^(6)(G)] (1/K^4)."""

    third: np.ndarray
    fourth: np.ndarray
    fifth: np.ndarray


def cumulant_corrections(x: ArrayLike, f: ArrayLike, n_blocks: int, eps: float, jump: float) -> CumulantCorrections:
    """The Edgeworth terms of the two-point flow's gap to the SDE, about G ~ N(x + f, f^2 eps^2).

    Raises:
        ValueError: as two_point_flow_mean, and |f| eps above MAX_SMOOTHING.
    """
    mask = TwoPointMask.at_level(n_blocks, eps, jump)
    k = check_blocks(n_blocks)
    x, f = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(f, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise ValueError("x and f must be finite")
    centre, spread = x + f, np.abs(f) * eps
    kappa = {n: f ** n * mask.cumulant(n) / k ** (n - 1) for n in (3, 4, 5)}

    def mean_derivative(order: int) -> np.ndarray:
        return sigmoid_derivative_mean(centre, spread, order)

    return CumulantCorrections(
        third=kappa[3] / 6.0 * mean_derivative(3),
        fourth=kappa[4] / 24.0 * mean_derivative(4),
        fifth=kappa[5] / 120.0 * mean_derivative(5) + kappa[3] ** 2 / 72.0 * mean_derivative(6))


def small_noise_curvature(x: ArrayLike, f: ArrayLike, n_blocks: int, jump: float) -> np.ndarray:
    """c(a) = lim_{eps -> 0} (E[sigma(X_K)] - sigma(x + f)) / eps^2 of the two-point flow with jump a (module docstring).

    (K/a)^2 [sigma(z - delta) - sigma(z) + delta sigma'(z)], delta = a f / K, z = x + f; jump = 0 gives the SDE's
    (1/2) f^2 sigma''(z), the limit of every jump as K grows.

    Raises:
        ValueError: n_blocks < 1, jump outside [0, 1], x or f not finite.
    """
    from scipy.special import expit

    k = check_blocks(n_blocks)
    if isinstance(jump, bool) or not isinstance(jump, (int, float)) or not 0.0 <= jump <= 1.0:
        raise ValueError(f"jump must be a number in [0, 1]; got {jump!r}")
    x, f = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(f, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise ValueError("x and f must be finite")
    centre = x + f
    slope, value = expit(centre) * expit(-centre), expit(centre)
    if jump == 0.0:
        return 0.5 * f * f * slope * (1.0 - 2.0 * value)
    delta = jump * f / k
    return (k / jump) ** 2 * (expit(centre - delta) - value + delta * slope)
