"""Fixed quadrature rules behind the closed forms: Gauss-Hermite and Gauss-Fermi.

Gauss-Hermite integrates against the standard normal density. Gauss-Fermi integrates against the
Fermi-Dirac weight w(y) = 1/(1 + e^y) = sigma(-y) on [0, inf); its recurrence coefficients come from
the discretized Stieltjes procedure on a composite Gauss-Legendre discretization of [0, 80] (the
weight beyond 80 is below 1e-34), and its nodes and weights from the Golub-Welsch eigenproblem.
Both are computed once per size and cached.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

_FERMI_CUTOFF = 80.0
_FERMI_PANELS = 320
_FERMI_PANEL_POINTS = 24


@lru_cache(maxsize=None)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w with sum(w h(z)) ~ E[h(Z)], Z ~ N(0, 1) (exact for degree <= 2n-1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2.0 * np.pi)
    z.setflags(write=False)
    w.setflags(write=False)
    return z, w


@lru_cache(maxsize=None)
def gauss_fermi(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes y > 0 and weights W with sum(W h(y)) ~ int_0^inf h(y) / (1 + e^y) dy.

    The Gauss rule of the weight truncated at y = 80: exact for polynomials of degree <= 2n-1 on
    that weight; the truncation changes int_0^inf by less than 1e-30 for the bounded integrands
    used here. For n <= 12 the moments k! eta(k+1), k <= 2n-1, of the untruncated weight agree
    to rounding.
    """
    if not 1 <= n <= 80:
        raise ValueError(f"n must be in 1..80, got {n!r}")
    g, gw = np.polynomial.legendre.leggauss(_FERMI_PANEL_POINTS)
    edges = np.linspace(0.0, _FERMI_CUTOFF, _FERMI_PANELS + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    y = (0.5 * (hi - lo) * g + 0.5 * (hi + lo)).ravel()
    mass = (0.5 * (hi - lo) * gw).ravel() / (1.0 + np.exp(y))
    alpha = np.empty(n)
    beta = np.empty(n)
    p_prev = np.zeros_like(y)
    p = np.ones_like(y)
    norm_prev = 1.0
    for k in range(n):
        norm = float(np.sum(mass * p * p))
        alpha[k] = float(np.sum(mass * y * p * p)) / norm
        beta[k] = norm if k == 0 else norm / norm_prev
        p_next = (y - alpha[k]) * p - (0.0 if k == 0 else beta[k]) * p_prev
        scale = np.sqrt(norm)  # keep the polynomials O(1): rescale both, ratios stay exact
        p_prev, p = p / scale, p_next / scale
        norm_prev = 1.0
    off = np.sqrt(beta[1:])
    jacobi = np.diag(alpha) + np.diag(off, 1) + np.diag(off, -1)
    nodes, vectors = np.linalg.eigh(jacobi)
    weights = beta[0] * vectors[0] ** 2
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights
