"""Timing shared by the benchmark scripts: the best wall time of repeated calls after a warm-up.

Imported by bench_kolmogorov.py and bench_landscape.py (same folder; not a package).
"""
from __future__ import annotations

import time
from typing import Callable


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of `repeat` calls (after one warm-up call, which compiles/loads kernels)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
