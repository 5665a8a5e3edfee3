"""Serial numba kernels for loops of tiny calls (SGD): the parallel pool's per-call cost dominates there."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def serial_kernels():
    """Run kolmogorov's parallel numba kernels on one thread inside the block, then restore.

    One SGD step evaluates u_sigmoid on a minibatch of a few samples; waking the thread pool for that
    costs ~4 ms per call on a loaded 2-core machine against ~0.3 ms on one thread.
    """
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
