"""The explicit Euler method on the test equation x' = lam x (robust ResNet, Fig. 1 and eq. (3)).

Zhang et al. illustrate the step factor h of the Euler-viewed ResNet (their eq. (4)) on the IVP
x' = -2.3 x, x(0) = 1, whose solution is x(t) = exp(-2.3 t). One Euler step (eq. (3)) multiplies x by the
amplification factor 1 + h lam, so the iterates decay iff |1 + h lam| < 1, i.e. 0 < h < 2 / |lam| for
lam < 0 (2 / 2.3 = 0.8696 for the paper's example); Zhang & Wynter's eq. (6) is the same condition
with lam an eigenvalue of the Jacobian of f.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_LAMBDA = -2.3


@dataclass(frozen=True)
class EulerPath:
    """Euler iterates x_n at t_n = n h next to the exact solution x0 exp(lam t_n)."""

    lam: float
    h: float
    x0: float
    t: np.ndarray
    x: np.ndarray
    exact: np.ndarray

    @property
    def max_error(self) -> float:
        """max_n |x_n - x(t_n)| over the path."""
        return float(np.max(np.abs(self.x - self.exact)))


def _check_h(h: float) -> None:
    if not np.isfinite(h) or h <= 0:
        raise ValueError(f"h must be a positive finite step, got {h!r}")


def explicit_euler(h: float, t_end: float = 5.0, lam: float = PAPER_LAMBDA, x0: float = 1.0) -> EulerPath:
    """Iterate x_{n+1} = x_n + h lam x_n (eq. (3)) from x_0 = x0 for all n with n h <= t_end (plus rounding slack).

    The loop is the method itself, not the closed form (1 + h lam)^n, so that the tests can compare the two.
    """
    _check_h(h)
    if not np.isfinite(t_end) or t_end <= 0:
        raise ValueError(f"t_end must be positive and finite, got {t_end!r}")
    steps = int(np.floor(t_end / h + 1e-9))
    x = np.empty(steps + 1)
    x[0] = x0
    for n in range(steps):
        x[n + 1] = x[n] + h * lam * x[n]
    t = h * np.arange(steps + 1)
    return EulerPath(lam=lam, h=h, x0=x0, t=t, x=x, exact=x0 * np.exp(lam * t))


def amplification_factor(h: float, lam: float = PAPER_LAMBDA) -> float:
    """The factor 1 + h lam by which one explicit Euler step multiplies x."""
    _check_h(h)
    return 1.0 + h * lam


def stability_limit(lam: float = PAPER_LAMBDA) -> float:
    """The largest step for which explicit Euler on x' = lam x (lam < 0) does not grow: h* = 2 / |lam|."""
    if not lam < 0:
        raise ValueError(f"lam must be negative (a decaying test equation), got {lam!r}")
    return 2.0 / abs(lam)


def is_stable(h: float, lam: float = PAPER_LAMBDA) -> bool:
    """Whether the Euler iterates decay to zero: |1 + h lam| < 1 (Zhang & Wynter eq. (6), strictly)."""
    return abs(amplification_factor(h, lam)) < 1.0


def error_at(t_end: float, h: float, lam: float = PAPER_LAMBDA, x0: float = 1.0) -> float:
    """|x_N - x(t_end)| for the Euler iterate landing on t_end = N h (t_end must be a multiple of h)."""
    path = explicit_euler(h, t_end, lam, x0)
    if not np.isclose(path.t[-1], t_end, rtol=1e-9, atol=1e-12):
        raise ValueError(f"t_end={t_end!r} must be a multiple of h={h!r}")
    return float(abs(path.x[-1] - path.exact[-1]))
