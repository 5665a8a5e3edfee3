"""Robust ResNet Fig. 1: explicit Euler approximations of x' = -2.3 x, x(0) = 1, for several step factors h."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = "robust ResNet Fig. 1: explicit Euler on x' = -2.3x for several h, error order and stability limit 2/2.3"
NAME = "robust_fig1"


def settings(fast: bool) -> dict:
    """Step factors drawn, time span, and the h grid of the error/stability panels (cheap: same in --fast)."""
    return {"h_values": (0.05, 0.2, 0.4, 0.6, 0.8, 0.9), "t_end": 6.0,
            "error_h": tuple(2.0 ** -k for k in range(1, 11)), "amplification_h": tuple(np.linspace(0.01, 1.2, 120))}


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from nets.companion import euler

    s = settings(fast)
    lam = euler.PAPER_LAMBDA
    paths = [euler.explicit_euler(h, s["t_end"], lam) for h in s["h_values"]]
    error_h = np.asarray(s["error_h"])
    errors = np.array([euler.error_at(1.0, h, lam) for h in error_h])
    amp_h = np.asarray(s["amplification_h"])
    amplification = np.abs(np.array([euler.amplification_factor(h, lam) for h in amp_h]))
    limit = euler.stability_limit(lam)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t_fine = np.linspace(0, s["t_end"], 400)
    axes[0].plot(t_fine, np.exp(lam * t_fine), "k-", lw=2.5, label="exact $e^{-2.3t}$")
    for path in paths:
        axes[0].plot(path.t, path.x, "o-", ms=3, lw=1, label=f"Euler h={path.h:g}")
    axes[0].set(xlabel="t", ylabel="x", title="x' = -2.3x, x(0) = 1 (eq. 3)")
    axes[0].legend(fontsize=7)
    axes[1].loglog(error_h, errors, "o-", label="|x_N - x(1)|")
    axes[1].loglog(error_h, errors[-1] * error_h / error_h[-1], "k--", lw=1, label="slope 1")
    axes[1].set(xlabel="h", ylabel="error at t = 1", title="first-order convergence")
    axes[1].legend(fontsize=8)
    axes[2].plot(amp_h, amplification, "-", label="|1 + h lambda|")
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].axvline(limit, color="r", ls="--", lw=1, label=f"h* = 2/2.3 = {limit:.4f}")
    axes[2].set(xlabel="h", ylabel="amplification per step", title="stability: decays iff h < 2/2.3")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    groups = {f"h={p.h:g}": {"t": p.t, "x": p.x, "exact": p.exact, "h": p.h} for p in paths}
    groups["error"] = {"h": error_h, "error_at_t1": errors}
    groups["amplification"] = {"h": amp_h, "abs_factor": amplification}
    return save_outputs(fig, out_dir, NAME, groups, attrs={"lam": lam, "x0": 1.0, "stability_limit": limit,
                                                           "t_end": s["t_end"], "paper": "robust ResNet Fig. 1"})
