"""Finite-difference solvers of the 1-D backward Kolmogorov equation (3.6).

    u_t + a(x, t) u_x + 1/2 b(x, t)^2 u_xx = 0,   t in [0, t_end),   u(x, t_end) = T(x),

the equation (3.6) of the main paper with drift a = f and noise b = eps g; section 4.1 takes
a = f and b = eps |f| constant, the reversed-time problem (4.1). With b = 0 it is the transport
equation (3.9). The answer u(x, 0) is the prediction in J_eps (3.7) (J_0 (3.10) for b = 0).

Schemes (on a uniform grid, marching tau = t_end - t forward):

* "crank-nicolson": central differences in x, Crank-Nicolson in time (second order in dx and
  dt), started with Rannacher steps (the first `rannacher_steps` steps each replaced by two
  implicit-Euler half steps) so that pure transport and non-smooth terminals do not ring.
  Not monotone. Its step matrix (central D_x) is diagonally dominant, so the Thomas solve (no
  pivoting) never meets a zero pivot, only while |a| dt/dx <= 2 + b^2 dt/dx^2 at every node (dt =
  t_end / n_steps; the Rannacher half steps have the same weight dt/2); beyond, a pivot can vanish
  (the first one does at |a| dt/dx = 4 + b^2 dt/dx^2 with the drift entering the grid), so both
  solvers check this up front and raise a ValueError naming the Courant number, the bound and the
  n_steps that would do.
* "implicit-upwind": upwind advection, implicit Euler (first order, monotone: the discrete
  maximum principle holds for any dt, so interior values stay in [min T, max T]).

Boundary ("linear", the default): u_xx = 0 at the end nodes (linear extrapolation where the
drift carries information out of the grid, the terminal's slope where it carries it in);
"dirichlet" holds the end values at the terminal's. Each step is one tridiagonal (Thomas) solve
in a numba kernel (kolmogorov._kernels); `solve_backward_batched` solves many constant-
coefficient problems at once, in parallel over the batch.
"""
from __future__ import annotations

import numbers
from typing import Callable, Union

import numpy as np
from numpy.typing import ArrayLike
from kolmogorov._checks import check_choice

SCHEMES = ("crank-nicolson", "implicit-upwind")
BOUNDARIES = ("linear", "dirichlet")
_LEVEL_BLOCK = 256
_PARALLEL_MIN_WORK = 5e6  # cell-updates below which a batch runs on one thread (kolmogorov._threads)
_PROGRESS_CHUNK = 256  # problems per kernel call when a progress bar is shown (16 tiles of 16)

Coefficient = Union[float, ArrayLike, Callable[[np.ndarray, float], ArrayLike]]
Terminal = Union[ArrayLike, Callable[[np.ndarray], ArrayLike]]


def check_grid(x: ArrayLike) -> tuple[np.ndarray, float]:
    """Return (x, dx) for a uniform increasing grid of at least 5 nodes; ValueError otherwise."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size < 5:
        raise ValueError(f"x must be a 1-D uniform increasing grid of at least 5 nodes, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    dx = (x[-1] - x[0]) / (x.size - 1)
    tolerance = 1e-9 * abs(dx) + 64 * np.finfo(float).eps * np.max(np.abs(x))  # rounding of linspace
    if not dx > 0.0 or np.max(np.abs(np.diff(x) - dx)) > tolerance:
        raise ValueError("x must be a uniform, strictly increasing grid (constant spacing)")
    return x, float(dx)


def _check_steps(n_steps: int, t_end: float) -> tuple[int, float]:
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    try:
        t_end = float(t_end)
    except (TypeError, ValueError):
        raise ValueError(f"t_end must be a finite number > 0, got {t_end!r}") from None
    if not np.isfinite(t_end) or t_end <= 0.0:
        raise ValueError(f"t_end must be finite and > 0, got {t_end!r}")
    return int(n_steps), t_end


def _check_options(scheme: str, boundary: str, rannacher_steps: int) -> None:
    check_choice("scheme", scheme, SCHEMES)
    check_choice("boundary", boundary, BOUNDARIES)
    if isinstance(rannacher_steps, bool) or not isinstance(rannacher_steps, numbers.Integral) or rannacher_steps < 0:
        raise ValueError(f"rannacher_steps must be an integer >= 0, got {rannacher_steps!r}")


def _on_grid(values, x: np.ndarray, not_numeric: str, bad_shape: str) -> np.ndarray:
    """values as a float scalar or (n_x,) array; ValueError(not_numeric) or ValueError(bad_shape with {shape})."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(not_numeric) from None
    if array.ndim > 1 or (array.ndim == 1 and array.shape != x.shape):
        raise ValueError(bad_shape.format(shape=array.shape))
    return array


def _terminal_values(terminal: Terminal, x: np.ndarray) -> np.ndarray:
    values = _on_grid(terminal(x) if callable(terminal) else terminal, x,
                      f"terminal must be numeric: a callable x -> array or an array of shape {x.shape}",
                      f"terminal must be a scalar or an array of shape {x.shape} (one value per grid node), "
                      "got shape {shape}")
    values = np.array(np.broadcast_to(values, x.shape))
    if not np.all(np.isfinite(values)):
        raise ValueError("terminal must be finite on the grid")
    return values


def _time_plan(n_steps: int, t_end: float, scheme: str, rannacher_steps: int):
    """tau levels, step sizes and theta per step (Rannacher half steps first for Crank-Nicolson)."""
    dtau = t_end / n_steps
    if scheme == "implicit-upwind":
        n_start = 0
        theta = 1.0
    else:
        n_start = min(rannacher_steps, n_steps)
        theta = 0.5
    dtaus = np.concatenate([np.full(2 * n_start, 0.5 * dtau), np.full(n_steps - n_start, dtau)])
    thetas = np.concatenate([np.ones(2 * n_start), np.full(n_steps - n_start, theta)])
    taus = np.concatenate([[0.0], np.cumsum(dtaus)])
    taus[-1] = t_end
    return taus, dtaus, thetas, n_start, dtau, theta


def _non_dominant_row(a_lv: np.ndarray, b2_lv: np.ndarray, w: np.ndarray, dx: float, upwind: bool, linear: bool):
    """First (level, node, excess, end_row) where the implicit matrix is not diagonally dominant, or None.

    a_lv, b2_lv: (L, n_x) drift and squared noise at the implicit level of L steps; w: (L,) the weight
    theta dtau of each step. The rows are built as in kolmogorov._kernels (interior nodes 1..n_x-2,
    with the end values eliminated), and row i is dominant when |diag_i| >= |sub_i| + |sup_i| (up to
    1e-9 relative, for rounding). A weakly dominant tridiagonal matrix whose off-diagonals do not
    vanish together with its diagonal keeps every Thomas pivot nonzero, |pivot_i| >= |sup_i|.
    """
    ai, bi = a_lv[:, 1:-1], b2_lv[:, 1:-1]
    w = np.asarray(w, dtype=float)[:, None]
    diff = 0.5 * bi / (dx * dx)
    if upwind:
        lo = w * (diff + np.maximum(-ai, 0.0) / dx)
        hi = w * (diff + np.maximum(ai, 0.0) / dx)
    else:
        lo = w * (diff - 0.5 * ai / dx)
        hi = w * (diff + 0.5 * ai / dx)
    diag = 1.0 + lo + hi
    off_lo = np.abs(lo)
    off_hi = np.abs(hi)
    left_out = right_out = np.zeros(ai.shape[0], dtype=bool)
    if linear:  # u_0 = la u_1 + lb u_2 + lg: (2, -1) where the drift leaves the grid, (1, 0) where it enters
        left_out = a_lv[:, 0] >= 0.0
        right_out = a_lv[:, -1] <= 0.0
        la, lb = np.where(left_out, 2.0, 1.0), np.where(left_out, -1.0, 0.0)
        ra, rb = np.where(right_out, 2.0, 1.0), np.where(right_out, -1.0, 0.0)
        diag[:, 0] -= lo[:, 0] * la
        off_hi[:, 0] = np.abs(hi[:, 0] + lo[:, 0] * lb)
        diag[:, -1] -= hi[:, -1] * ra
        off_lo[:, -1] = np.abs(lo[:, -1] + hi[:, -1] * rb)
    off_lo[:, 0] = 0.0
    off_hi[:, -1] = 0.0
    off = off_lo + off_hi
    excess = off - np.abs(diag)
    bad = excess > 1e-9 * (off + np.abs(diag))
    if not bad.any():
        return None
    level = int(np.argmax(bad.any(axis=1)))
    row = int(np.argmax(np.where(bad[level], excess[level], -np.inf)))
    last = ai.shape[1] - 1
    end_row = (row == 0 and bool(left_out[level])) or (row == last and bool(right_out[level]))
    return level, row + 1, end_row


def _courant_bound(scheme: str, b2: float, dt: float, dx: float, end_row: bool) -> float:
    """The largest Courant number |a| dt/dx (dt = t_end / n_steps) with a diagonally dominant row.

    Crank-Nicolson (and its Rannacher half steps, same weight dt/2): interior rows need
    |a| dt/dx <= 2 + b^2 dt/dx^2; implicit upwind rows are always dominant. An end row that
    extrapolates (drift leaving the grid at the end node) while the drift at the next node points
    inward needs |a| dt/dx <= 1 (Crank-Nicolson) or 1/2 (implicit upwind), whatever b.
    """
    if end_row:
        return 1.0 if scheme == "crank-nicolson" else 0.5
    return 2.0 + b2 * dt / (dx * dx) if scheme == "crank-nicolson" else np.inf


def _courant_excess(scheme: str, drift: float, b2: float, dt: float, dx: float, end_row: bool) -> str:
    """The clause of a non-dominance error: the Courant number, its bound and why the bound is there."""
    why = " (an end node whose drift leaves the grid next to inflow)" if end_row else " (2 + noise^2 dt/dx^2)"
    return (f"Courant number |drift| dt/dx = {abs(drift) * dt / dx:.6g} > allowed "
            f"{_courant_bound(scheme, b2, dt, dx, end_row):.6g}{why}, where the step matrix loses diagonal "
            "dominance (zero pivots possible)")


def _coefficient_levels(coef: Coefficient, name: str, x: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), n_x) values of a scalar, an (n_x,) array or a callable (x, t)."""
    if callable(coef):
        rows = []
        for t in times:
            value = _on_grid(coef(x, float(t)), x,
                             f"{name} must return numbers: a scalar or an array of shape {x.shape}",
                             f"{name}(x, t) must return a scalar or an array of shape {x.shape}, got shape {{shape}}")
            rows.append(np.broadcast_to(value, x.shape))
        levels = np.array(rows)
    else:
        form = f"{name} must be a scalar, an array of shape {x.shape} or a callable (x, t)"
        value = _on_grid(coef, x, form, form)
        levels = np.broadcast_to(value, (times.size,) + x.shape)
    if not np.all(np.isfinite(levels)):
        raise ValueError(f"{name} must be finite on the grid")
    return levels


# Largest |a| dt/dx + b^2 dt/dx^2 accepted: the step matrices have diagonal 1 + (that number), and
# beyond ~1e15 float64 no longer holds the 1 (its spacing at 1e16 is 2). The elimination then divides
# by a pivot that rounding has made 0 (a ZeroDivisionError from the kernel: implicit-upwind at drift
# 1e20 with dx = 0.5 and n_steps = 3) or returns garbage (drift 1e145, noise 1e72: u = 0 everywhere
# for a terminal in (0, 1)); b^2 itself overflows for |b| > 1.3e154 (nan). Such inputs are refused.
_MAX_STEP_COEFFICIENT = 1e15


def _check_step_scale(a_abs_max: float, b_abs_max: float, dx: float, n_steps: int, t_end: float, scheme: str) -> None:
    """ValueError unless |a| dt/dx + b^2 dt/dx^2 <= _MAX_STEP_COEFFICIENT (dt = t_end / n_steps)."""
    dt = t_end / n_steps
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.float64(a_abs_max) * (dt / dx) + np.square(np.float64(b_abs_max)) * (dt / dx) / dx
    if not scale <= _MAX_STEP_COEFFICIENT:
        raise ValueError(
            f"{scheme}: drift and noise are too large for n_steps={n_steps} (t_end={t_end:g}) and dx={dx:.6g}: "
            f"|drift| dt/dx + noise^2 dt/dx^2 = {scale:.6g} must be at most {_MAX_STEP_COEFFICIENT:g} "
            "(beyond it the step matrix 1 + that number loses the 1 in float64); increase n_steps"
        )


def _check_constant_dominance(a, b, dx, n_steps, t_end, scheme, boundary, n_start, dtau, theta) -> None:
    """ValueError unless every step matrix of the constant problems (a_p, b_p) is diagonally dominant.

    Only Crank-Nicolson can fail (central differences; the implicit-upwind matrix of a constant drift
    is an M-matrix): its rows need the Courant number |a| dt/dx <= 2 + b^2 dt/dx^2 (see
    _courant_bound), i.e. n_steps >= t_end (|a|/dx - b^2/dx^2) / 2.
    """
    weights = ([0.5 * dtau] if n_start else []) + ([theta * dtau] if n_steps > n_start else [])
    a_lv = np.repeat(np.tile(a, len(weights))[:, None], 5, axis=1)
    b2_lv = np.repeat(np.tile(b * b, len(weights))[:, None], 5, axis=1)
    w = np.repeat(weights, a.size)
    found = _non_dominant_row(a_lv, b2_lv, w, dx, scheme == "implicit-upwind", boundary == "linear")
    if found is None:
        return
    p = found[0] % a.size
    dt = t_end / n_steps
    rate = np.max(np.abs(a) / dx - b * b / (dx * dx))
    needed = int(np.ceil(t_end * rate / 2.0 * (1.0 - 1e-12)))
    raise ValueError(
        f"{scheme}: drift {a[p]:.6g} (noise {b[p]:.6g}) is too large for n_steps={n_steps} (t_end={t_end:g}) "
        f"and dx={dx:.6g}: {_courant_excess(scheme, a[p], b[p] * b[p], dt, dx, False)}; "
        f"use n_steps >= {needed} or scheme='implicit-upwind'"
    )


def solve_backward(
    terminal: Terminal,
    drift: Coefficient,
    noise: Coefficient,
    x: ArrayLike,
    n_steps: int,
    t_end: float = 1.0,
    scheme: str = "crank-nicolson",
    *,
    boundary: str = "linear",
    rannacher_steps: int = 2,
    progress: bool = False,
) -> np.ndarray:
    """u(x, 0) of u_t + a u_x + 1/2 b^2 u_xx = 0, u(., t_end) = terminal: eq. (3.6) in 1-D.

    Args:
        terminal: T as a callable x -> array or an array (n_x,) (sigma for (4.1)).
        drift: a, a scalar, an array (n_x,) or a callable (x, t) -> array or scalar (f in (3.4)).
        noise: b, same forms (eps g in (3.4); eps |f| for (4.1)); only b^2 enters.
        x: uniform increasing grid, n_x >= 5 nodes; the truncated domain.
        n_steps: time steps (>= 1) of size t_end / n_steps.
        t_end: terminal time (1 in the paper).
        scheme: "crank-nicolson" (second order, Rannacher start) or "implicit-upwind" (monotone).
        boundary: "linear" (u_xx = 0 at the ends) or "dirichlet" (ends held at T).
        rannacher_steps: Crank-Nicolson steps replaced by two implicit-Euler half steps each.
        progress: show a tqdm bar over the time steps (variable coefficients; constant drift and noise are
            one kernel call of a single problem, without a bar).

    Returns:
        u(x, 0), shape (n_x,).

    Raises:
        ValueError: grid not uniform and increasing, n_steps < 1, t_end <= 0, unknown scheme or
            boundary, non-finite terminal or coefficients; a step matrix that is not diagonally
            dominant (Crank-Nicolson with |drift| dt/dx > 2 + noise^2 dt/dx^2, see the module docstring).
    """
    x, dx = check_grid(x)
    n_steps, t_end = _check_steps(n_steps, t_end)
    _check_options(scheme, boundary, rannacher_steps)
    values = _terminal_values(terminal, x)
    constant = not callable(drift) and not callable(noise) and np.ndim(drift) == 0 and np.ndim(noise) == 0
    if constant:
        return solve_backward_batched(
            values, drift, noise, x, n_steps, t_end, scheme, boundary=boundary, rannacher_steps=rannacher_steps
        )[0]
    from tqdm.auto import tqdm

    from kolmogorov._kernels import BC_DIRICHLET, BC_LINEAR, march_levels

    taus, dtaus, thetas, *_ = _time_plan(n_steps, t_end, scheme, rannacher_steps)
    times = t_end - taus
    bc = BC_LINEAR if boundary == "linear" else BC_DIRICHLET
    u = values.copy()
    bar = tqdm(total=dtaus.size, unit="step", desc="solve_backward", disable=not progress)
    for first in range(0, dtaus.size, _LEVEL_BLOCK):
        last = min(first + _LEVEL_BLOCK, dtaus.size)
        level_times = times[first : last + 1]
        a_lv = np.ascontiguousarray(_coefficient_levels(drift, "drift", x, level_times))
        b_lv = _coefficient_levels(noise, "noise", x, level_times)
        _check_step_scale(np.max(np.abs(a_lv)), np.max(np.abs(b_lv)), dx, n_steps, t_end, scheme)
        b2_lv = np.ascontiguousarray(b_lv * b_lv)
        found = _non_dominant_row(
            a_lv[1:], b2_lv[1:], thetas[first:last] * dtaus[first:last], dx, scheme == "implicit-upwind",
            boundary == "linear",
        )
        if found is not None:
            bar.close()
            level, node, end_row = found
            drift_here, b2_here, dt = a_lv[1 + level, node], b2_lv[1 + level, node], t_end / n_steps
            raise ValueError(
                f"{scheme}: the drift is too large for n_steps={n_steps} (t_end={t_end:g}) and dx={dx:.6g}: "
                f"at x={x[node]:.6g}, t={level_times[1 + level]:.6g} drift {drift_here:.6g} and noise "
                f"{np.sqrt(b2_here):.6g} give {_courant_excess(scheme, drift_here, b2_here, dt, dx, end_row)}; "
                "increase n_steps" + ("" if end_row else " or use scheme='implicit-upwind'")
            )
        march_levels(
            u, a_lv, b2_lv, dx, dtaus[first:last], thetas[first:last], scheme == "implicit-upwind", bc, values,
        )
        bar.update(last - first)
    bar.close()
    return u


def solve_backward_batched(
    terminal: Terminal,
    drift: ArrayLike,
    noise: ArrayLike,
    x: ArrayLike,
    n_steps: int,
    t_end: float = 1.0,
    scheme: str = "crank-nicolson",
    *,
    boundary: str = "linear",
    rannacher_steps: int = 2,
    progress: bool = False,
) -> np.ndarray:
    """Many constant-coefficient problems u_t + a_p u_x + 1/2 b_p^2 u_xx = 0 on one grid at once.

    The batched form of :func:`solve_backward` for a whole f-grid of (4.1): drift a_p = f_p and
    noise b_p = eps |f_p|, all with the same terminal. Problems run in parallel (numba prange).

    Args:
        terminal: callable x -> array or array (n_x,), shared by all problems.
        drift, noise: 1-D arrays of length B, or scalars broadcast against each other.
        x, n_steps, t_end, scheme, boundary, rannacher_steps: as in :func:`solve_backward`.
        progress: show a tqdm bar over the problems (solved in chunks of _PROGRESS_CHUNK).

    Returns:
        u(x, 0) for every problem, shape (B, n_x).
    """
    x, dx = check_grid(x)
    n_steps, t_end = _check_steps(n_steps, t_end)
    _check_options(scheme, boundary, rannacher_steps)
    values = _terminal_values(terminal, x)
    try:
        a = np.asarray(drift, dtype=float)
        b = np.asarray(noise, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("drift and noise must be numeric scalars or 1-D arrays (one value per problem)") from None
    if a.ndim > 1 or b.ndim > 1:
        raise ValueError("drift and noise must be scalars or 1-D arrays (one value per problem)")
    a, b = np.atleast_1d(a), np.atleast_1d(b)
    if a.size != b.size and a.size != 1 and b.size != 1:
        raise ValueError(f"drift and noise must have the same length or length 1, got {a.size} and {b.size}")
    a, b = (np.ascontiguousarray(v) for v in np.broadcast_arrays(a, b))
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("drift and noise must be finite")
    from kolmogorov._kernels import BC_DIRICHLET, BC_LINEAR, march_constant_batch, march_constant_single
    from kolmogorov._threads import single_thread_if_small

    _, _, _, n_start, dtau, theta = _time_plan(n_steps, t_end, scheme, rannacher_steps)
    plan = (2 * n_start, 0.5 * dtau, n_steps - n_start, dtau, theta, scheme == "implicit-upwind",
            BC_LINEAR if boundary == "linear" else BC_DIRICHLET)
    _check_step_scale(np.max(np.abs(a)), np.max(np.abs(b)), dx, n_steps, t_end, scheme)
    _check_constant_dominance(a, b, dx, n_steps, t_end, scheme, boundary, n_start, dtau, theta)
    if a.size == 1:
        u = values.copy()
        march_constant_single(u, float(a[0]), float(b[0] * b[0]), dx, *plan)
        return u[None, :]
    out = np.empty((a.size, x.size))
    b2 = np.ascontiguousarray(b * b)
    if not progress:
        with single_thread_if_small(a.size * x.size * n_steps, _PARALLEL_MIN_WORK):
            march_constant_batch(out, values, a, b2, dx, *plan)
        return out
    from tqdm.auto import tqdm

    with tqdm(total=a.size, unit="problem", desc="solve_backward_batched") as bar:
        for start in range(0, a.size, _PROGRESS_CHUNK):
            part = slice(start, start + _PROGRESS_CHUNK)
            march_constant_batch(out[part], values, a[part], b2[part], dx, *plan)
            bar.update(out[part].shape[0])
    return out
