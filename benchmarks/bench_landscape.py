"""Benchmark of `python -m landscape.plot` end to end and of its parts; prints a table (not a test).

    python benchmarks/bench_landscape.py [--repeat N]

Rows:
* the main command `python -m landscape.plot --eps 0.5 --loss l2 --no-show` in a fresh subprocess,
  wall time including the interpreter, imports and writing the PNG (target <= 3 s on 2 cores);
  the same with --h5 and with --sgd;
* `python -c "import landscape"` (what every command pays first);
* in-process, after warm-up: the default landscape (rugged, 801 f values, J_0 and J_eps), closed
  solver; the expected objective; the fd and mc solvers on the same grid; 200 SGD steps;
* in-process, the `network` solver (landscape.network, exact) with each mask on the same grid: dropout,
  uniform and stochastic depth at K = 3 (eps 0.25: uniform needs eps sqrt(3K) < 1), stochastic depth at K = 16
  (2^16 atoms, its largest K), and 200 smoothed SGD steps on the K = 8 stochastic-depth network (the law is
  rebuilt each step).
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_timing lies beside this script
from bench_timing import best_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def wall_subprocess(args: list[str], repeat: int, cwd: str) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) of `python args...`, `repeat` fresh runs.

    On a shared machine the wall time depends on the load; the CPU time is what an idle machine's
    wall time would be for a single-threaded run.
    """
    env = dict(os.environ, MPLBACKEND="Agg")
    times, cpu = [], []
    for _ in range(repeat):
        before = os.times()
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        after = os.times()
        cpu.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return times, cpu


def build_parser():
    """The benchmark's arguments (nothing timed)."""
    from kolmogorov._cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python benchmarks/bench_landscape.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per row (default 7)")
    return parser


def main() -> None:
    parser = build_parser()
    repeat = parser.parse_args().repeat
    if repeat < 1:
        parser.error("--repeat must be >= 1")

    print(f"# landscape benchmark, {datetime.date.today()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as cwd:
        for label, extra in (("main command", []), ("main command --h5", ["--h5", "x.h5"]),
                             ("main command --sgd", ["--sgd"])):
            t, cpu = wall_subprocess(["-m", "landscape.plot", "--eps", "0.5", "--loss", "l2", "--no-show", *extra], repeat, cwd)
            rows.append((label, f"wall median {np.median(t):.2f} s, min {min(t):.2f}, max {max(t):.2f} (n={repeat}); "
                                f"CPU median {np.median(cpu):.2f} s", "<= 3 s wall"))
        t, cpu = wall_subprocess(["-c", "import landscape"], repeat, cwd)
        rows.append(("import landscape", f"wall median {np.median(t):.2f} s, min {min(t):.2f}; CPU median {np.median(cpu):.2f} s", "-"))

    from landscape import compute, evaluate, get_dataset, sgd

    data = get_dataset("rugged")
    f = np.linspace(*data.default_f_range(), 801)

    def network(k: int, mask: str):
        return evaluate(f, data.y, data.label, 0.25, "l2", "network", n_blocks=k, mask=mask)

    for label, fn in (
        ("J_0 + J_eps, closed, 801 f x 9 samples", lambda: (compute(f, data.y, data.label, 0.0), compute(f, data.y, data.label, 0.5))),
        ("J_eps expected objective, closed", lambda: compute(f, data.y, data.label, 0.5, objective="expected")),
        ("J_eps, fd (2 batched CN solves, Richardson)", lambda: compute(f, data.y, data.label, 0.5, solver="fd")),
        ("J_eps, mc, 20000 draws", lambda: evaluate(f, data.y, data.label, 0.5, solver="mc")),
        ("200 SGD steps, m = 1, ensemble", lambda: sgd(data.y, data.label, 0.5, f0=10.0, lr=10.0, steps=200)),
        ("network K = 3, dropout, eps 0.25", lambda: network(3, "dropout")),
        ("network K = 3, uniform, eps 0.25", lambda: network(3, "uniform")),
        ("network K = 3, stochastic_depth, eps 0.25", lambda: network(3, "stochastic_depth")),
        ("network K = 16, stochastic_depth, eps 0.25", lambda: network(16, "stochastic_depth")),
        ("200 smoothed SGD steps, K = 8 stochastic_depth", lambda: sgd(data.y, data.label, 0.25, f0=10.0, lr=10.0,
                                                                      steps=200, n_blocks=8, mask="stochastic_depth")),
    ):
        t = best_time(fn, 2)
        rows.append((label, f"{t:.3f} s (best of 2 after a warm-up)", "-"))

    width = max(len(r[0]) for r in rows)
    print(f"{'what':{width}s} | measured | target")
    for what, measured, target in rows:
        print(f"{what:{width}s} | {measured} | {target}")


if __name__ == "__main__":
    main()
