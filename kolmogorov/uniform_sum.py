"""The mean of K uniform masks as a quadrature law: exact expectations of the uniform and shake-shake flows.

The uniform flow (3.14) in 1-D, X_{k+1} = X_k + (f / K)(1 + U(-beta, beta)), and the shake-shake flow (3.15),
X_{k+1} = X_k + (f1 alpha_k + f2 (1 - alpha_k)) / K with alpha_k ~ U(0, 1), depend on their masks only through

    Ubar = (U_1 + ... + U_K) / K,   U_k ~ U(0, 1) independent:

X_K = x + f (1 - beta + 2 beta Ubar) and X_K = x + f2 + (f1 - f2) Ubar. K Ubar has the Irwin-Hall density, the
cardinal B-spline M_K: a polynomial of degree K - 1 on each piece [j, j + 1], j = 0 .. K - 1. So

    E[h(Ubar)] = sum_j int_j^{j+1} h(s / K) M_K(s) ds

is K integrals of h times a polynomial, each taken by an n-point Gauss-Legendre rule: exact for polynomials h of
degree <= 2n - K (every moment of Ubar), and for h(u) = sigma(c + r u) geometrically convergent in n, because
sigma is analytic and bounded by 1 in the strip |Im z| <= pi / 2 (Re e^{-z} >= 0 there). On one piece, mapped
to [-1, 1], that strip contains the Bernstein ellipse of semi-minor axis pi K / |r|, whose parameter rho gives
the error bound (Trefethen, Approximation Theory and Approximation Practice, Thm 19.3, with Bernstein's
inequality for the degree K - 1 factor)

    K (32 / 15) rho^(K - 1 - 2n) / (rho^2 - 1),

and nodes_for picks the smallest n that puts it under 1e-16. The result is a kolmogorov.flow.SumLaw whose atoms
are the quadrature nodes: the flows' means become finite sums, exact to rounding, as for the Bernoulli masks.

M_K at the nodes comes from the recursion M_k(s) = (s M_{k-1}(s) + (k - s) M_{k-1}(s - 1)) / (k - 1), a sum of
positive terms (no cancellation, unlike the alternating sum_i (-1)^i C(K, i) (s - i)^{K-1} / (K - 1)!).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from kolmogorov._checks import check_blocks

#: the quadrature error bound nodes_for aims under (absolute, for integrands bounded by 1 in the strip)
TOLERANCE = 1e-16
#: Gauss-Legendre nodes per piece at the most (|r| / K up to about 300)
MAX_NODES = 2048


def nodes_for(n_blocks: int, reach: float) -> int:
    """Gauss-Legendre nodes per piece that integrate sigma(c + r Ubar), |r| <= reach, to TOLERANCE (module
    docstring), and never fewer than ceil((K + 4) / 2), which integrate polynomials of degree 4 in Ubar exactly (the
    first four moments; reach = 0 asks for those alone).

    Raises:
        ValueError: n_blocks not an integer >= 1; reach negative or not finite; more than MAX_NODES needed.
    """
    k = check_blocks(n_blocks)
    if not (isinstance(reach, (int, float, np.floating)) and math.isfinite(reach) and reach >= 0.0):
        raise ValueError(f"reach must be a finite number >= 0 (the largest |r| of sigma(c + r Ubar)); got {reach!r}")
    fewest = math.ceil((k + 4) / 2.0)  # exact for E[q(Ubar)], q of degree <= 4: the first four moments
    if reach == 0.0:
        return fewest
    d = math.pi * k / reach
    log_rho = math.asinh(d)  # rho = d + sqrt(1 + d^2)
    # K (32/15) rho^(K - 1 - 2n) / (rho^2 - 1) <= TOLERANCE
    log_factor = math.log(k * 32.0 / 15.0 / TOLERANCE) - math.log(math.expm1(2.0 * log_rho))
    n = math.ceil((k - 1) / 2.0 + log_factor / (2.0 * log_rho)) + 2
    if n > MAX_NODES:
        raise ValueError(f"reach {reach:g} with K = {k} needs {n} Gauss-Legendre nodes per piece, more than "
                         f"{MAX_NODES}: |r| / K must stay below about 300")
    return max(n, fewest)


def _piece_values(k: int, t: np.ndarray) -> np.ndarray:
    """M_K(j + t) for j = 0 .. K - 1 and every t in [0, 1) of the 1-D array t: shape (K, t.size)."""
    m = np.zeros((k, t.size))  # m[j] = M_order(j + t), zero for j >= order
    m[0] = 1.0  # M_1, the indicator of [0, 1)
    for order in range(2, k + 1):
        j = np.arange(order)[:, None]
        below = np.concatenate([np.zeros((1, t.size)), m[: order - 1]])  # M_{order-1}(j - 1 + t)
        m[:order] = ((j + t) * m[:order] + (order - j - t) * below) / (order - 1)
    return m


def irwin_hall_density(n_blocks: int, s) -> np.ndarray:
    """M_K(s), the density of U_1 + ... + U_K (U_k ~ U(0, 1)), by the positive B-spline recursion; 0 outside [0, K)."""
    k = check_blocks(n_blocks)
    s = np.asarray(s, dtype=float)
    whole = np.floor(s).ravel()
    values = _piece_values(k, s.ravel() - whole)
    inside = (whole >= 0) & (whole < k)
    picked = values[np.clip(whole, 0, k - 1).astype(int), np.arange(whole.size)]
    return np.where(inside, picked, 0.0).reshape(s.shape)


@lru_cache(maxsize=64)
def _quadrature(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and weights of Ubar's law with n Gauss-Legendre nodes per piece, read-only (SGD rebuilds the law of
    the current f at every step; the node count changes only with the reach)."""
    t, w = np.polynomial.legendre.leggauss(n)
    offsets = (t + 1.0) / 2.0  # nodes on [0, 1]
    s = np.arange(k)[:, None] + offsets[None, :]  # (K, n): piece j's nodes in [j, j + 1]
    weights = (w / 2.0)[None, :] * _piece_values(k, offsets)
    keep = weights > 1e-300
    atoms, weights = s[keep] / k, weights[keep]
    atoms.setflags(write=False)
    weights.setflags(write=False)
    return atoms, weights


def uniform_mean_law(n_blocks: int, reach: float):
    """Ubar = (U_1 + ... + U_K) / K as a quadrature law (kolmogorov.flow.SumLaw): atoms u_j in (0, 1), weights w_j
    with sum_j w_j h(u_j) = E[h(Ubar)] to 1e-16 for h = sigma(c + r u), |r| <= reach (module docstring).

    Raises:
        ValueError: n_blocks not an integer >= 1; reach negative, not finite or too large (nodes_for).
    """
    from kolmogorov.flow import SumLaw

    k = check_blocks(n_blocks)
    return SumLaw(*_quadrature(k, nodes_for(k, reach)))


def uniform_mask_law(n_blocks: int, beta: float, reach: float):
    """The law (kolmogorov.flow.SumLaw) of the mean m of K uniform masks 1 + U(-beta, beta) (3.14): X_K = x + f m with
    m = 1 - beta + 2 beta Ubar, exact to 1e-16 in E[sigma(x + f m)] for |f| <= reach.

    Raises:
        ValueError: as uniform_mean_law, for the reach 2 beta reach of sigma(x + f (1 - beta) + 2 beta f Ubar).
    """
    from kolmogorov.flow import SumLaw

    ubar = uniform_mean_law(n_blocks, 2.0 * beta * reach)
    return SumLaw(1.0 - beta + 2.0 * beta * ubar.multipliers, ubar.probabilities)
