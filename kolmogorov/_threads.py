"""Run small kernel calls on one numba thread.

Waking the thread pool costs microseconds on an idle machine but can cost milliseconds on a busy
one (the other threads wait for a time slice), which dominates calls with little work, such as
a minibatch gradient. Large calls keep every thread.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def single_thread_if_small(work: float, threshold: float) -> Iterator[None]:
    """Within the block, numba parallel kernels use one thread when work < threshold."""
    import numba

    if work >= threshold:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
