"""Benchmark of the kolmogorov numerical core; prints a table (not a test).

    python benchmarks/bench_kolmogorov.py [--no-pypde] [--repeat N]

Rows:
* u_sigmoid / du_sigmoid_df on a landscape of 2001 f-values x 1000 samples (eps = 0.5).
* solve_backward, one problem (f = 8, eps = 0.5, 4001 nodes on [-60, 60]): cell-updates/s and
  the ratio to a plain scipy.linalg.solve_banded Crank-Nicolson loop on the same grid with the
  same scheme (Rannacher start, same boundary rows); the answers are compared.
* solve_backward_batched, 2001 problems (the landscape's f-grid) on the same grid.
* py-pde (pip install py-pde) on the same problem, 4001 cells: its explicit solver at dt = 2e-5,
  and its implicit / Crank-Nicolson solvers at dt = 1e-3 (fixed-point iterations); time to reach
  py-pde's accuracy at x = -5, 0, 3.3 for both tools.
Targets (2-core machine): one solve >= 5x the scipy loop and >= 20x py-pde to the same
accuracy; batched >= 3e8 cell-updates/s; the 2001 x 1000 landscape <= 0.25 s.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.linalg import solve_banded
from scipy.special import expit

from kolmogorov import du_sigmoid_df, solve_backward, solve_backward_batched, u_sigmoid
from kolmogorov._cli import OneLineArgumentParser

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_timing lies beside this script
from bench_timing import best_time  # noqa: E402

F, EPS, HALF_WIDTH, N_X = 8.0, 0.5, 60.0, 4001
PROBES = np.array([-5.0, 0.0, 3.3])


def scipy_crank_nicolson(terminal: np.ndarray, a: float, b: float, x: np.ndarray, n_steps: int, rannacher: int = 2):
    """The same scheme as solve_backward's constant-coefficient path, one solve_banded per step."""
    n = x.size
    m = n - 2
    dx = x[1] - x[0]
    dtau = 1.0 / n_steps
    u = terminal.copy()
    t0, t1, tn1, tn = terminal[0], terminal[1], terminal[-2], terminal[-1]
    la, lb, lg = (2.0, -1.0, 0.0) if a >= 0 else (1.0, 0.0, t0 - t1)
    ra, rb, rg = (2.0, -1.0, 0.0) if a <= 0 else (1.0, 0.0, tn - tn1)
    diff = 0.5 * b * b / dx**2

    def matrix(weight):
        lo, hi = weight * (diff - 0.5 * a / dx), weight * (diff + 0.5 * a / dx)
        ab = np.zeros((3, m))
        ab[0, 1:] = -hi
        ab[1, :] = 1.0 + lo + hi
        ab[2, :-1] = -lo
        ab[1, 0] -= lo * la
        ab[0, 1] -= lo * lb
        ab[1, -1] -= hi * ra
        ab[2, -2] -= hi * rb
        return ab, lo * lg, hi * rg

    plan = [(0.5 * dtau, 1.0)] * (2 * rannacher) + [(dtau, 0.5)] * (n_steps - rannacher)
    for dt, theta in plan:
        ab, e_left, e_right = matrix(theta * dt)
        rhs = u[1:-1].copy()
        if theta < 1.0:
            elo, ehi = (1 - theta) * dt * (diff - 0.5 * a / dx), (1 - theta) * dt * (diff + 0.5 * a / dx)
            rhs += elo * (u[:-2] - u[1:-1]) + ehi * (u[2:] - u[1:-1])
        rhs[0] += e_left
        rhs[-1] += e_right
        u[1:-1] = solve_banded((1, 1), ab, rhs)
        u[0] = la * u[1] + lb * u[2] + lg
        u[-1] = ra * u[-2] + rb * u[-3] + rg
    return u


def probe_error(x: np.ndarray, u: np.ndarray) -> float:
    return float(np.max(np.abs(CubicSpline(x, u)(PROBES) - u_sigmoid(PROBES, F, EPS))))


def bench_closed_form(repeat: int) -> list[tuple[str, str]]:
    samples = np.random.default_rng(0).normal(0.0, 3.0, 1000)
    f = np.linspace(-20.0, 20.0, 2001)[:, None]
    t_u = best_time(lambda: u_sigmoid(samples, f, EPS), repeat)
    t_g = best_time(lambda: du_sigmoid_df(samples, f, EPS), repeat)
    start = time.process_time()
    u_sigmoid(samples, f, EPS)
    cpu_u = time.process_time() - start
    return [
        ("u_sigmoid, 2001 f in [-20, 20] x 1000 samples (target <= 0.25 s)", f"{t_u:.3f} s wall, {cpu_u:.3f} s CPU (all threads)"),
        ("du_sigmoid_df, same landscape", f"{t_g:.3f} s wall"),
    ]


def bench_single(repeat: int, n_steps: int = 400) -> list[tuple[str, str]]:
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, N_X)
    terminal = expit(x)
    ours = solve_backward(terminal, F, EPS * F, x, n_steps)
    ref = scipy_crank_nicolson(terminal, F, EPS * F, x, n_steps)
    t_ours = best_time(lambda: solve_backward(terminal, F, EPS * F, x, n_steps), repeat)
    t_scipy = best_time(lambda: scipy_crank_nicolson(terminal, F, EPS * F, x, n_steps), max(1, repeat // 2))
    cells = N_X * n_steps
    return [
        (f"solve_backward, {N_X} nodes x {n_steps} steps", f"{t_ours * 1e3:.2f} ms, {cells / t_ours:.3g} cell-updates/s"),
        ("scipy solve_banded CN loop, same scheme", f"{t_scipy * 1e3:.2f} ms, {cells / t_scipy:.3g} cell-updates/s"),
        ("  ratio (target >= 5x); max |difference|", f"{t_scipy / t_ours:.1f}x; {np.max(np.abs(ours - ref)):.1e}"),
    ]


def bench_batched(repeat: int, n_problems: int = 2001, n_steps: int = 400) -> list[tuple[str, str]]:
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, N_X)
    f = np.linspace(-20.0, 20.0, n_problems)
    t = best_time(lambda: solve_backward_batched(expit, f, EPS * np.abs(f), x, n_steps), max(1, repeat // 2))
    cells = n_problems * N_X * n_steps
    return [(f"solve_backward_batched, {n_problems} x {N_X} nodes x {n_steps} steps (target >= 3e8/s)",
             f"{t:.2f} s, {cells / t:.3g} cell-updates/s")]


def bench_pypde(repeat: int) -> list[tuple[str, str]]:
    try:
        import pde
    except ImportError:
        return [("py-pde", "not installed (pip install py-pde)")]
    grid = pde.CartesianGrid([[-HALF_WIDTH, HALF_WIDTH]], N_X)
    state = pde.ScalarField.from_expression(grid, "1/(1+exp(-x))")
    coef = 0.5 * (EPS * F) ** 2
    eq = pde.PDE({"u": f"{F} * d_dx(u) + {coef} * laplace(u)"}, bc={"curvature": 0})
    exact = u_sigmoid(PROBES, F, EPS)
    start = time.perf_counter()
    eq.solve(state, t_range=1e-3, dt=2e-5, solver="explicit", tracker=None)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    result = eq.solve(state, t_range=1.0, dt=2e-5, solver="explicit", tracker=None)
    t_pp = time.perf_counter() - start
    err_pp = float(np.max(np.abs(np.array([result.interpolate([p]) for p in PROBES]) - exact)))
    rows = [
        ("py-pde explicit, dt = 2e-5 (50000 steps)", f"{t_pp:.2f} s (+{compile_s:.0f} s first-call compile), error {err_pp:.1e}"),
    ]
    for solver in ("implicit", "crank-nicolson"):
        try:
            eq.solve(state, t_range=1.0, dt=1e-3, solver=solver, tracker=None)
            rows.append((f"py-pde {solver}, dt = 1e-3", "converged"))
        except Exception as exc:  # noqa: BLE001 - we report what py-pde raises
            rows.append((f"py-pde {solver}, dt = 1e-3", f"fails: {type(exc).__name__}: {str(exc)[:40]}"))
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, N_X)
    for n_steps in (50, 100, 150, 200, 300, 400, 600, 800, 1600):
        err = probe_error(x, solve_backward(expit, F, EPS * F, x, n_steps))
        if err <= err_pp:
            t = best_time(lambda: solve_backward(expit, F, EPS * F, x, n_steps), repeat)
            rows.append((f"solve_backward to the same accuracy ({n_steps} steps)",
                         f"{t * 1e3:.2f} ms, error {err:.1e}; {t_pp / t:.0f}x faster (target >= 20x)"))
            break
    else:
        rows.append(("solve_backward to the same accuracy", "not reached on this grid"))
    return rows


def build_parser() -> OneLineArgumentParser:
    """The benchmark's arguments (nothing timed or compiled)."""
    parser = OneLineArgumentParser(prog="bench_kolmogorov", description=__doc__.splitlines()[0])
    parser.add_argument("--no-pypde", action="store_true", help="skip the py-pde comparison (about a minute)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions; the best is reported")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    import numba

    print(f"kolmogorov benchmark, {datetime.date.today().isoformat()}")
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores; "
          f"numba threads {numba.get_num_threads()}; python {sys.version.split()[0]}, numpy {np.__version__}")
    print("load average at start (1, 5, 15 min): " + ", ".join(f"{v:.1f}" for v in os.getloadavg()))
    rows = bench_closed_form(args.repeat) + bench_single(args.repeat) + bench_batched(args.repeat)
    if not args.no_pypde:
        rows += bench_pypde(args.repeat)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
