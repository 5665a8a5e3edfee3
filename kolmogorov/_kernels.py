"""numba kernels of the finite-difference backward Kolmogorov solvers (see kolmogorov.solver).

In reversed time tau = t_end - t the equation u_t + a u_x + 1/2 b^2 u_xx = 0 reads
u_tau = L u with L = a D_x + 1/2 b^2 D_xx. One theta-step from tau to tau + dtau solves

    (I - theta dtau L_new) u_new = (I + (1 - theta) dtau L_old) u_old

on the interior nodes 1..N-1 with the Thomas algorithm; theta = 1/2 is Crank-Nicolson,
theta = 1 implicit Euler. D_x is central, or upwind (monotone) when `upwind` is set.
Row i of the implicit matrix is  -lo_i u_{i-1} + (1 + lo_i + hi_i) u_i - hi_i u_{i+1}.

The end values are eliminated through u_0 = al u_1 + be u_2 + ga (and the mirror at N):
* BC_LINEAR (u_xx = 0): where the drift carries information out of the grid (a_0 >= 0 at the
  left, a_N <= 0 at the right) the end value is the linear extrapolation 2 u_1 - u_2; where it
  carries information in, the end keeps the terminal's slope, u_0 = u_1 + (T_0 - T_1). Both take
  u linear (u_xx = 0) at the end; both keep the upwind scheme's implicit matrix an M-matrix with
  unit row sums (the slope term enters as a source).
* BC_DIRICHLET: u_0 = T_0 and u_N = T_N for all time.
"""
from __future__ import annotations

import numba as nb
import numpy as np

BC_LINEAR = 0
BC_DIRICHLET = 1
TILE = 16


@nb.njit(cache=True, inline="always")
def _coefficients(a, b2, dx, weight, upwind):  # pragma: no cover - compiled
    """lo, hi of dtau-weighted L at one node: L u ~ lo (u_{i-1} - u_i) + hi (u_{i+1} - u_i)."""
    diff = 0.5 * b2 / (dx * dx)
    if upwind:
        lo = weight * (diff + max(-a, 0.0) / dx)
        hi = weight * (diff + max(a, 0.0) / dx)
    else:
        lo = weight * (diff - 0.5 * a / dx)
        hi = weight * (diff + 0.5 * a / dx)
    return lo, hi


@nb.njit(cache=True, inline="always")
def _ends(a_left, a_right, bc, t0, t1, tn1, tn):  # pragma: no cover - compiled
    """(al, be, ga) of u_0 = al u_1 + be u_2 + ga and of u_N = al' u_{N-1} + be' u_{N-2} + ga'."""
    if bc == BC_DIRICHLET:
        return 0.0, 0.0, t0, 0.0, 0.0, tn
    if a_left >= 0.0:
        la, lb, lg = 2.0, -1.0, 0.0
    else:
        la, lb, lg = 1.0, 0.0, t0 - t1
    if a_right <= 0.0:
        ra, rb, rg = 2.0, -1.0, 0.0
    else:
        ra, rb, rg = 1.0, 0.0, tn - tn1
    return la, lb, lg, ra, rb, rg


@nb.njit(cache=True, inline="always")
def _end_rows(lo_first, hi_first, lo_last, hi_last, la, lb, ra, rb):  # pragma: no cover - compiled
    """(diag, sup) of row 1 and (diag, sub) of row N-1 once u_0 and u_N are eliminated.

    Row 1 is -lo u_0 + (1 + lo + hi) u_1 - hi u_2 with u_0 = la u_1 + lb u_2 + lg. Its diagonal is
    summed as 1 + (hi + lo (1 - la)), not as (1 + lo + hi) - lo la: with la = 2 the latter cancels
    two numbers of size lo, and where the diffusion number lo is 1e5 the row sum misses 1 by 1e-11,
    enough to break the discrete maximum principle by as much. Summed this way the row sum is 1 to
    rounding of 1 (hi - lo is exact when they are within a factor of two).
    """
    diag_first = 1.0 + (hi_first + lo_first * (1.0 - la))
    sup_first = -(hi_first + lo_first * lb)
    diag_last = 1.0 + (lo_last + hi_last * (1.0 - ra))
    sub_last = -(lo_last + hi_last * rb)
    return diag_first, sup_first, diag_last, sub_last


@nb.njit(cache=True)
def march_levels(u, a_lv, b2_lv, dx, dtaus, thetas, upwind, bc, terminal):  # pragma: no cover - compiled
    """Advance u (n_x,) through len(dtaus) theta-steps; step k goes from level k to level k+1.

    a_lv, b2_lv: (len(dtaus) + 1, n_x) drift and squared noise at each level. In place.
    """
    n = u.size
    m = n - 2
    sub = np.empty(m)
    diag = np.empty(m)
    sup = np.empty(m)
    rhs = np.empty(m)
    t0, t1, tn1, tn = terminal[0], terminal[1], terminal[n - 2], terminal[n - 1]
    for k in range(dtaus.size):
        dtau = dtaus[k]
        theta = thetas[k]
        # explicit half: rhs = u + (1 - theta) dtau L_old u
        for i in range(1, n - 1):
            r = u[i]
            if theta < 1.0:
                lo, hi = _coefficients(a_lv[k, i], b2_lv[k, i], dx, (1.0 - theta) * dtau, upwind)
                r += lo * (u[i - 1] - u[i]) + hi * (u[i + 1] - u[i])
            rhs[i - 1] = r
        for i in range(1, n - 1):
            lo, hi = _coefficients(a_lv[k + 1, i], b2_lv[k + 1, i], dx, theta * dtau, upwind)
            sub[i - 1] = -lo
            diag[i - 1] = 1.0 + lo + hi
            sup[i - 1] = -hi
        la, lb, lg, ra, rb, rg = _ends(a_lv[k + 1, 0], a_lv[k + 1, n - 1], bc, t0, t1, tn1, tn)
        # rows 1 and N-1 with u_0 = la u_1 + lb u_2 + lg and u_N = ra u_{N-1} + rb u_{N-2} + rg
        lo_first, hi_first = -sub[0], -sup[0]
        lo_last, hi_last = -sub[m - 1], -sup[m - 1]
        diag[0], sup[0], diag[m - 1], sub[m - 1] = _end_rows(lo_first, hi_first, lo_last, hi_last, la, lb, ra, rb)
        rhs[0] += lo_first * lg
        rhs[m - 1] += hi_last * rg
        # Thomas
        for i in range(1, m):
            w = sub[i] / diag[i - 1]
            diag[i] -= w * sup[i - 1]
            rhs[i] -= w * rhs[i - 1]
        u[n - 2] = rhs[m - 1] / diag[m - 1]
        for i in range(m - 2, -1, -1):
            u[i + 1] = (rhs[i] - sup[i] * u[i + 2]) / diag[i]
        u[0] = la * u[1] + lb * u[2] + lg
        u[n - 1] = ra * u[n - 2] + rb * u[n - 3] + rg


@nb.njit(cache=True, inline="always")
def _factor(sub, diag, sup, cp, inv, m):  # pragma: no cover - compiled
    """LU of a tridiagonal matrix for repeated solves: cp = modified super-diagonal, inv = 1/pivot."""
    inv[0] = 1.0 / diag[0]
    cp[0] = sup[0] * inv[0]
    for i in range(1, m):
        piv = diag[i] - sub[i] * cp[i - 1]
        inv[i] = 1.0 / piv
        cp[i] = sup[i] * inv[i]


@nb.njit(cache=True, inline="always")
def _factor_constant(a, b2, dx, weight, upwind, la, lb, ra, rb, sub, diag, sup, cp, inv, m):  # pragma: no cover - compiled
    """Assemble and factor (_factor) the implicit matrix I - weight L of constant a, b2; returns its lo, hi.

    Rows as in the module docstring, the end rows with u_0 = la u_1 + lb u_2 + lg and u_N = ra u_{N-1} + rb u_{N-2}
    + rg eliminated (lo lg and hi rg are left to the right-hand side). sub, diag, sup (m,) are overwritten.
    """
    lo, hi = _coefficients(a, b2, dx, weight, upwind)
    for i in range(m):
        sub[i] = -lo
        diag[i] = 1.0 + lo + hi
        sup[i] = -hi
    diag[0], sup[0], diag[m - 1], sub[m - 1] = _end_rows(lo, hi, lo, hi, la, lb, ra, rb)
    _factor(sub, diag, sup, cp, inv, m)
    return lo, hi


@nb.njit(cache=True, parallel=True)
def march_constant_batch(out, terminal, a, b2, dx, n_ie, dtau_ie, n_main, dtau_main, theta_main,
                         upwind, bc):  # pragma: no cover - compiled
    """Constant-coefficient problems p = 0..B-1 (drift a[p], squared noise b2[p]) on one grid.

    n_ie implicit-Euler steps of dtau_ie (the Rannacher start), then n_main theta-steps of
    dtau_main. Each problem's two matrices are factored once; problems are processed in
    tiles of TILE (the inner loops run across the tile, which vectorizes), tiles in parallel.
    out: (B, n_x), written.
    """
    n_problems = a.size
    n = terminal.size
    m = n - 2
    tw = min(TILE, n_problems)  # tile width: a single problem runs without padding
    n_tiles = (n_problems + tw - 1) // tw
    t0, t1, tn1, tn = terminal[0], terminal[1], terminal[n - 2], terminal[n - 1]
    for tile in nb.prange(n_tiles):
        start = tile * tw
        width = min(tw, n_problems - start)
        u = np.empty((n, tw))
        rhs = np.empty((m, tw))
        cp = np.empty((2, m, tw))
        inv = np.empty((2, m, tw))
        gain = np.empty((2, m, tw))  # sub-diagonal / pivot
        ends = np.empty((2, 8, tw))  # [phase, (la lb lg*lo ra rb rg*hi lg rg), problem]
        elo = np.empty(tw)
        ehi = np.empty(tw)
        sub = np.empty(m)
        diag = np.empty(m)
        sup = np.empty(m)
        cpj = np.empty(m)
        invj = np.empty(m)
        for j in range(tw):
            p = start + min(j, width - 1)  # a partial tile repeats its last problem
            for i in range(n):
                u[i, j] = terminal[i]
            la, lb, lg, ra, rb, rg = _ends(a[p], a[p], bc, t0, t1, tn1, tn)
            for phase in range(2):
                weight = dtau_ie if phase == 0 else theta_main * dtau_main
                lo, hi = _factor_constant(a[p], b2[p], dx, weight, upwind, la, lb, ra, rb, sub, diag, sup, cpj, invj, m)
                for i in range(m):
                    cp[phase, i, j] = cpj[i]
                    inv[phase, i, j] = invj[i]
                    gain[phase, i, j] = sub[i] * invj[i]
                ends[phase, 0, j] = la
                ends[phase, 1, j] = lb
                ends[phase, 2, j] = lo * lg
                ends[phase, 3, j] = ra
                ends[phase, 4, j] = rb
                ends[phase, 5, j] = hi * rg
                ends[phase, 6, j] = lg
                ends[phase, 7, j] = rg
            elo[j], ehi[j] = _coefficients(a[p], b2[p], dx, (1.0 - theta_main) * dtau_main, upwind)
        for step in range(n_ie + n_main):
            phase = 0 if step < n_ie else 1
            ex = 1.0 if (phase == 1 and theta_main < 1.0) else 0.0
            # forward sweep fused with the explicit half: y_i = rhs_i / piv_i - g_i y_{i-1}
            for j in range(tw):
                c = u[1, j]
                r = c + ex * (elo[j] * (u[0, j] - c) + ehi[j] * (u[2, j] - c))
                rhs[0, j] = (r + ends[phase, 2, j]) * inv[phase, 0, j]
            for i in range(1, m - 1):
                for j in range(tw):
                    c = u[i + 1, j]
                    r = c + ex * (elo[j] * (u[i, j] - c) + ehi[j] * (u[i + 2, j] - c))
                    rhs[i, j] = r * inv[phase, i, j] - gain[phase, i, j] * rhs[i - 1, j]
            for j in range(tw):
                c = u[m, j]
                r = c + ex * (elo[j] * (u[m - 1, j] - c) + ehi[j] * (u[m + 1, j] - c)) + ends[phase, 5, j]
                rhs[m - 1, j] = r * inv[phase, m - 1, j] - gain[phase, m - 1, j] * rhs[m - 2, j]
                u[m, j] = rhs[m - 1, j]
            for i in range(m - 2, -1, -1):
                for j in range(tw):
                    u[i + 1, j] = rhs[i, j] - cp[phase, i, j] * u[i + 2, j]
            for j in range(tw):
                u[0, j] = ends[phase, 0, j] * u[1, j] + ends[phase, 1, j] * u[2, j] + ends[phase, 6, j]
                u[n - 1, j] = ends[phase, 3, j] * u[n - 2, j] + ends[phase, 4, j] * u[n - 3, j] + ends[phase, 7, j]
        for j in range(width):
            for i in range(n):
                out[start + j, i] = u[i, j]


@nb.njit(cache=True)
def march_constant_single(u, a, b2, dx, n_ie, dtau_ie, n_main, dtau_main, theta_main,
                          upwind, bc):  # pragma: no cover - compiled
    """One constant-coefficient problem, as march_constant_batch with 1-D arrays; u (n_x,) in place.

    Holds the terminal on entry and u(., 0) on return.
    """
    n = u.size
    m = n - 2
    t0, t1, tn1, tn = u[0], u[1], u[n - 2], u[n - 1]
    sub = np.empty(m)
    diag = np.empty(m)
    sup = np.empty(m)
    cp = np.empty((2, m))
    inv = np.empty((2, m))
    gain = np.empty((2, m))
    cpj = np.empty(m)
    invj = np.empty(m)
    y = np.empty(m)
    la, lb, lg, ra, rb, rg = _ends(a, a, bc, t0, t1, tn1, tn)
    e_left = np.empty(2)
    e_right = np.empty(2)
    for phase in range(2):
        weight = dtau_ie if phase == 0 else theta_main * dtau_main
        lo, hi = _factor_constant(a, b2, dx, weight, upwind, la, lb, ra, rb, sub, diag, sup, cpj, invj, m)
        for i in range(m):
            cp[phase, i] = cpj[i]
            inv[phase, i] = invj[i]
            gain[phase, i] = sub[i] * invj[i]
        e_left[phase] = lo * lg
        e_right[phase] = hi * rg
    elo, ehi = _coefficients(a, b2, dx, (1.0 - theta_main) * dtau_main, upwind)
    for step in range(n_ie + n_main):
        phase = 0 if step < n_ie else 1
        ex = 1.0 if (phase == 1 and theta_main < 1.0) else 0.0
        el = ex * elo
        eh = ex * ehi
        ec = 1.0 - el - eh
        inv_p = inv[phase]
        gain_p = gain[phase]
        cp_p = cp[phase]
        y[0] = (ec * u[1] + el * u[0] + eh * u[2] + e_left[phase]) * inv_p[0]
        for i in range(1, m):
            y[i] = (ec * u[i + 1] + el * u[i] + eh * u[i + 2]) * inv_p[i] - gain_p[i] * y[i - 1]
        y[m - 1] += e_right[phase] * inv_p[m - 1]
        u[m] = y[m - 1]
        for i in range(m - 2, -1, -1):
            u[i + 1] = y[i] - cp_p[i] * u[i + 2]
        u[0] = la * u[1] + lb * u[2] + lg
        u[n - 1] = ra * u[n - 2] + rb * u[n - 3] + rg
