"""numba kernel for U(m, s) = E[sigma(m + s Z)] and its m-derivatives (see kolmogorov.closed_form).

Compiled with fastmath (the node sums vectorize); no infinity or nan reaches the kernel: inputs are
checked finite, the last band's bound is finite (any larger s, up to the largest double, uses the
last band), e^{-m} is clipped, the Gauss-Fermi bands return the limits for |m| > 40 s
and otherwise guard their factors.
Points are split into contiguous blocks processed in parallel; inside a block the per-node
factors that depend only on s are rebuilt only when s changes, which is what makes a landscape
(s constant along the samples of one f) cheap:

* Gauss-Hermite: sigma(m + s z_k) = 1 / (1 + e^{-m} e^{-s z_k}): one exp per point, none per node.
* Gauss-Fermi: exp(-(y_k -+ m)^2 / (2 s^2)) = A_k B C_k^{+-1} with A_k = exp(-y_k^2/(2s^2)),
  B = exp(-m^2/(2s^2)), C_k = exp(y_k m / s^2): one exp per node. Where the factors would
  overflow (|m| far beyond s^2) both Gaussians are evaluated directly.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_BLOCK = 2048
_SAFE_EXPONENT = 600.0
# Gauss-Hermite runs for s <= 3 with nodes |z| < 30: for |m| > 600 every sigma(m + s z) is within
# 1e-200 of 0 or 1, so clipping m there changes nothing and keeps e^{-m} e^{-s z} finite.
_M_CLIP = 600.0
# Gauss-Fermi runs for s > 2.75. For |m| > 40 s, |sigma'|, |sigma''| <= e^{-|x|} give |U_m|, |U_mm|
# <= max over s >= 2.75 of e^{-40 s + s^2/2} + e^{-800} < 1e-45 and |U - 1{m > 0}| as small: the
# kernel returns those limits exactly (the squares of m / s would otherwise overflow for |m| near
# 1e308, and inf * 0 = nan in the derivative sums).
_Q_CLIP = 40.0


@nb.njit(cache=True, parallel=True, fastmath=True)
def sigmoid_normal_kernel(m, s, derivatives, band_upper, band_kind, band_offset, band_size,
                          nodes, weights, out_u, out_um, out_umm):  # pragma: no cover - compiled
    n_points = m.size
    n_blocks = (n_points + _BLOCK - 1) // _BLOCK
    last_band = band_size.size - 1
    max_nodes = 0
    for b in range(band_size.size):
        max_nodes = max(max_nodes, band_size[b])
    for blk in nb.prange(n_blocks):
        factor = np.empty(max_nodes)
        scaled = np.empty(max_nodes)
        s_cached = -1.0
        kind = 0
        off = 0
        size = 0
        for i in range(blk * _BLOCK, min(n_points, (blk + 1) * _BLOCK)):
            si = s[i]
            mi = m[i]
            if si != s_cached:
                s_cached = si
                band = 0
                while band < last_band and si > band_upper[band]:  # s beyond the last bound: last band
                    band += 1
                kind = band_kind[band]
                off = band_offset[band]
                size = band_size[band]
                if kind == 0:
                    for k in range(size):
                        factor[k] = math.exp(-si * nodes[off + k])
                else:
                    inv_s2 = (1.0 / si) * (1.0 / si)  # s * s would overflow for s > 1e154
                    for k in range(size):
                        y = nodes[off + k]
                        factor[k] = math.exp(-0.5 * y * y * inv_s2)
                        scaled[k] = y * inv_s2
            if kind == 0:
                em = math.exp(-min(max(mi, -_M_CLIP), _M_CLIP))
                u = 0.0
                um = 0.0
                umm = 0.0
                for k in range(size):
                    sig = 1.0 / (1.0 + em * factor[k])
                    w = weights[off + k]
                    u += w * sig
                    if derivatives:
                        d1 = sig * (1.0 - sig)
                        um += w * d1
                        umm += w * d1 * (1.0 - 2.0 * sig)
            elif abs(mi) * (1.0 / si) > _Q_CLIP:  # (not 40 s: inf for s near 1e308)
                u = 1.0 if mi > 0.0 else 0.0
                um = 0.0
                umm = 0.0
            else:
                inv_s = 1.0 / si
                q = mi * inv_s
                b_fac = math.exp(-0.5 * q * q)
                y_max = nodes[off + size - 1]
                safe = abs(mi) * y_max * inv_s * inv_s < _SAFE_EXPONENT and 0.5 * q * q < _SAFE_EXPONENT
                acc0 = 0.0
                acc1 = 0.0
                acc2 = 0.0
                for k in range(size):
                    y = nodes[off + k]
                    if safe:
                        c = math.exp(scaled[k] * mi)
                        g = factor[k] * b_fac
                        e_minus = g * c
                        e_plus = g / c
                    else:
                        a_plus = (y + mi) * inv_s
                        a_minus = (y - mi) * inv_s
                        e_plus = math.exp(-0.5 * a_plus * a_plus)
                        e_minus = math.exp(-0.5 * a_minus * a_minus)
                    w = weights[off + k]
                    acc0 += w * (e_plus - e_minus)
                    if derivatives:
                        plus = (y + mi) * inv_s
                        minus = (y - mi) * inv_s
                        acc1 += w * (plus * e_plus + minus * e_minus)
                        acc2 += w * (e_plus * (plus * plus - 1.0) - e_minus * (minus * minus - 1.0))
                c0 = _INV_SQRT_2PI * inv_s
                u = 0.5 * math.erfc(-q * _INV_SQRT_2) + c0 * acc0
                if derivatives:
                    phi_q = _INV_SQRT_2PI * b_fac
                    um = phi_q * inv_s - c0 * inv_s * acc1
                    umm = -q * phi_q * inv_s * inv_s + c0 * inv_s * inv_s * acc2
            # U is an expectation of sigma in (0, 1) and U_m one of sigma' > 0 (the maximum principle of
            # (3.6)); rounding in the node sums may leave them an ulp outside, which the clamps remove.
            out_u[i] = min(max(u, 0.0), 1.0)
            if derivatives:
                out_um[i] = max(um, 0.0)
                out_umm[i] = umm
