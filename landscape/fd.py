"""Solver "fd": the backward Kolmogorov equation (3.6)/(4.1) by finite differences, for the landscapes.

For constant velocity f, u(x, 0) = E[T(X_1) | X_0 = x] solves u_t + f u_x + 1/2 (eps f)^2 u_xx = 0
with u(x, 1) = T(x) (main paper (3.6), reversed in time (4.1)). One batched Crank-Nicolson solve
(kolmogorov.solve_backward_batched, drift f_j, noise eps |f_j|) gives u(., 0) for the whole f grid,
and a cubic spline reads it off at the samples y. T is sigma for the ensemble objective and the
loss of sigma for the expected one.

Accuracy: Crank-Nicolson is second order in dx and dt; two solves, (dx, n) and (dx/2, 2n), are
combined by Richardson extrapolation, (4 u_fine - u_coarse) / 3, which removes the leading error
term (measured below 4e-6 against u_sigmoid for |f| <= 15, 0 <= eps <= 2 with dx = 0.05, n = 200).
Time steps follow the drift: each f_j gets n = N_STEPS k coarse steps, the smallest multiple with
Courant number |f_j| dt / dx <= COURANT = 1.5 (so |f| <= 15 keeps n = 200 and its old numbers; f's
with the same n are solved together). Crank-Nicolson needs |f| dt/dx <= 2 + (eps f)^2 dt/dx^2 for a
diagonally dominant step matrix (kolmogorov.solver), so 1.5 is safe for every eps; at fixed Courant
number the eps = 0 error still grows like f^2 (dispersion of transport over |f| units at fixed dx):
measured u-level errors against u_sigmoid, eps = 0, samples where sigma(y + f) is in transition:
9.8e-6 (|f| = 15), 3.6e-5 (30), 6.4e-5 (40), 1.0e-4 (50); with Courant 1 instead: 4.7e-6, 1.8e-5,
3.2e-5, 5.1e-5 (about half, at up to 1.5x the steps); eps = 0.5: below 1e-9 for 10 <= |f| <= 50.
Grids of f that would need more than _MAX_WORK cell updates (|f| in the thousands, or huge grids)
are refused with a ValueError naming f_min/f_max instead of running for many minutes.
The grid covers [-35, 35], where sigma and the losses are not yet linear, and every point the
samples can reach, y + f +- 6.5 eps |f|, plus 2 units; the solver's linear boundary condition
(u_xx = 0) is then exact to rounding at both ends. Large grids of f are solved in consecutive
chunks (at most 1.2e7 grid values each, with a tqdm bar on a terminal), each on its own grid.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

DX = 0.05
N_STEPS = 200
COURANT = 1.5
_SATURATION = 35.0
_GAUSS_REACH = 6.5
_MAX_CELLS = 12_000_000
_MAX_WORK = 1e10  # cell updates (coarse + fine solves) of one call: ~1 min on a 2-core box, 7x the default grid


def _grid_ends(f_low, f_high, f_abs, y: np.ndarray, eps: float):
    """(lo, hi) of the grid in the module docstring for velocities from f_low to f_high with largest |f|
    f_abs: scalars for one grid, or arrays (one grid per f_j, with f_low = f_high = f_j)."""
    reach = _GAUSS_REACH * eps * f_abs
    lo = np.minimum(np.minimum(-_SATURATION, float(y.min()) + np.minimum(0.0, f_low) - reach), float(y.min())) - 2.0
    hi = np.maximum(np.maximum(_SATURATION, float(y.max()) + np.maximum(0.0, f_high) + reach), float(y.max())) + 2.0
    return lo, hi


def fd_grid(f: np.ndarray, y: np.ndarray, eps: float, dx: float) -> np.ndarray:
    """The uniform x grid described in the module docstring, spacing dx (end adjusted to fit)."""
    lo, hi = _grid_ends(float(f.min()), float(f.max()), float(np.max(np.abs(f))), y, eps)
    n = int(np.ceil((hi - lo) / dx)) + 1
    return float(lo) + dx * np.arange(n)


def _solve_once(f, y, eps, terminal, dx, n_steps) -> np.ndarray:
    from kolmogorov.solver import solve_backward_batched
    from scipy.interpolate import CubicSpline

    x = fd_grid(f, y, eps, dx)
    u = solve_backward_batched(terminal, f, eps * np.abs(f), x, n_steps)
    return CubicSpline(x, u, axis=1)(y)


def fd_terminal_expectations(
    f: np.ndarray,
    y: np.ndarray,
    eps: float,
    terminal: Callable[[np.ndarray], np.ndarray],
    dx: float = DX,
    n_steps: int = N_STEPS,
) -> np.ndarray:
    """E[terminal(y_i + f_j + eps |f_j| Z)] for every f_j and y_i, (n_f, n), by finite differences.

    Args:
        f: velocities (n_f,); y: samples (n,); eps >= 0.
        terminal: T, vectorised (sigma or the label-0 loss of sigma).
        dx, n_steps: the coarse grid spacing and time steps; the fine solve halves both.
        n_steps is the least count; larger |f| get a multiple of it (fd_steps).

    Raises:
        ValueError: the f range needs more than _MAX_WORK cell updates (names f_min/f_max).
    """
    from tqdm import tqdm

    f = np.asarray(f, dtype=float)
    steps = check_fd_work(f, y, eps, dx, n_steps)
    out = np.empty((f.size, y.size))
    jobs = []
    for n in np.unique(steps):
        idx = np.flatnonzero(steps == n)
        jobs.extend((idx[sl], int(n)) for sl in _chunks(f[idx], y, eps, dx / 2.0))
    for idx, n in tqdm(jobs, desc="fd solves", unit="chunk", disable=None if len(jobs) > 1 else True, leave=False):
        coarse = _solve_once(f[idx], y, eps, terminal, dx, n)
        fine = _solve_once(f[idx], y, eps, terminal, dx / 2.0, 2 * n)
        out[idx] = (4.0 * fine - coarse) / 3.0
    return out


def check_fd_work(f, y, eps: float, dx: float = DX, n_steps: int = N_STEPS) -> np.ndarray:
    """Check that one fd evaluation at this eps needs at most _MAX_WORK cell updates (else a ValueError
    naming f_min/f_max) and return the coarse time steps of every f (fd_steps). The work grows with eps
    (wider grids), so a caller with several eps checks the largest first."""
    f, y = np.asarray(f, dtype=float), np.asarray(y, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # huge |f| or eps: the work is inf, refused below
        steps = _fd_steps_float(f, dx, n_steps)
        sizes = _grid_sizes(f, y, eps, dx / 2.0)
        work = float(np.sum(1.25 * 2.0 * steps * sizes))
    if not work <= _MAX_WORK:  # nan (inf - inf in a grid end) is refused too
        raise ValueError(
            f"f_min/f_max: the f range [{f.min():g}, {f.max():g}] is too wide for the fd solver at eps={eps:g} "
            f"(up to {steps.max():.3g} time steps on up to {sizes.max():.3g} nodes "
            f"per f, ~{work:.1e} cell updates > {_MAX_WORK:.0e}); narrow f_min/f_max, use fewer f points "
            "or the closed solver"
        )
    return steps.astype(np.int64)


def fd_steps(f: np.ndarray, dx: float = DX, n_steps: int = N_STEPS) -> np.ndarray:
    """Coarse time steps for each f: n_steps k with the least k >= 1 that gives |f| / (n_steps k) / dx <= COURANT
    (t_end = 1; the fine solve doubles the steps and halves dx, the same Courant number)."""
    return _fd_steps_float(f, dx, n_steps).astype(np.int64)


def _fd_steps_float(f, dx: float, n_steps: int) -> np.ndarray:
    """fd_steps as floats (no int64 overflow for the huge |f| that check_fd_work refuses)."""
    k = np.maximum(1.0, np.ceil(np.abs(np.asarray(f, dtype=float)) / (COURANT * dx * n_steps) * (1.0 - 1e-12)))
    return n_steps * k


def _grid_sizes(f: np.ndarray, y: np.ndarray, eps: float, dx: float) -> np.ndarray:
    """fd_grid(np.array([f_j]), y, eps, dx).size for every f_j, vectorised (the work estimate)."""
    lo, hi = _grid_ends(f, f, np.abs(f), y, eps)
    return np.ceil((hi - lo) / dx) + 1.0


def _chunks(f: np.ndarray, y: np.ndarray, eps: float, dx: float):
    """Consecutive slices of f whose fine solve holds at most _MAX_CELLS values (memory stays ~100 MB;
    each slice gets its own, smaller grid when its |f| is smaller)."""
    start = 0
    while start < f.size:
        stop = start + 1
        while stop < f.size and (stop + 1 - start) * fd_grid(f[start : stop + 1], y, eps, dx).size <= _MAX_CELLS:
            stop += 1
        yield slice(start, stop)
        start = stop
