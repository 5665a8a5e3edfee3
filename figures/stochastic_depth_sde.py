"""Stochastic depth as an SDE (LM-ResNet paper, section 3.2), computed, not trained.

Block l of K keeps its whole branch with probability p_l = 1 - (l/K)(1 - p_L) and scales a kept branch by
1/p_l: an Euler-Maruyama step of dX = f dt + eps(t) f dW with eps_l^2 = (1 - p_l)/(p_l K) on block l's step.

(a) eps(t) of the LM-ResNet paper's settings (p_L = 0.8 at depth 56, K = 27; p_L = 0.5 at depth 110, K = 54)
    and of this repository's CPU runs (p_L = 0.78124 at depth 8, K = 3), each with its rms level
    (kolmogorov.stochastic_depth_epsilon), beside dropout's constant eps (3.2) at Table 1's p = 0.9: stochastic
    depth injects most of its diffusion in the last blocks.
(b) The 1-D flow X_{l+1} = X_l + (f/K)(eta_l / p_l) against the SDE at the rms level, u_sigmoid(x, f, eps_rms),
    and against the noise-free transport solution sigma(x + f), as K doubles at fixed p_L (the exact law,
    kolmogorov.stochastic_depth_flow_mean): order 2 (the third cumulant) and order 1 (the noise itself).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = ("LM-ResNet paper section 3.2, computed: stochastic depth's noise level eps(t) per block against "
           "dropout's constant eps, and its 1-D flow's weak convergence to the SDE at the rms eps (order 2)")
NAME = "stochastic_depth_sde"
#: (label, K, p_L) of panel (a): the LM-ResNet paper's two settings and the CPU runs of docs/experiments.md
PROFILES = (("LM-ResNet 56 (K = 27), p_L = 0.8", 27, 0.8), ("LM-ResNet 110 (K = 54), p_L = 0.5", 54, 0.5),
            ("PreResNet-8 (K = 3), p_L = 0.78124", 3, 0.78124))
#: Table 1's survival probability, drawn as dropout's constant eps at K = 27 and 54 for scale
DROPOUT_P = 0.9
#: panel (b): the velocity, p_L and inputs of the 1-D flow
FLOW_F, FLOW_P_LAST, FLOW_X = 2.0, 0.5, tuple(np.linspace(-3.0, 3.0, 25))


def settings(fast: bool) -> dict:
    """The block counts of panel (b): exact sums over at most 2^16 atoms, a second in all, so --fast changes nothing."""
    return {"blocks": (1, 2, 4, 8, 16)}


def profile(n_blocks: int, p_L: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(block start times (l - 1)/K, eps_l, eps_rms) of stochastic depth p_L in K = n_blocks blocks."""
    from kolmogorov.noise_level import stochastic_depth_epsilon, stochastic_depth_epsilons

    return (np.arange(n_blocks) / n_blocks, stochastic_depth_epsilons(p_L, n_blocks),
            stochastic_depth_epsilon(p_L, n_blocks))


def flow_gaps(blocks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Largest gap over FLOW_X of the exact stochastic-depth flow to the SDE at eps_rms and to transport, per K."""
    from kolmogorov import stochastic_depth_epsilon, stochastic_depth_flow_mean, u_sigmoid

    x = np.asarray(FLOW_X)
    transport = 1.0 / (1.0 + np.exp(-(x + FLOW_F)))
    to_sde, to_transport = [], []
    for k in blocks:
        flow = stochastic_depth_flow_mean(x, FLOW_F, k, FLOW_P_LAST).mean
        to_sde.append(np.max(np.abs(flow - u_sigmoid(x, FLOW_F, stochastic_depth_epsilon(FLOW_P_LAST, k)))))
        to_transport.append(np.max(np.abs(flow - transport)))
    return {"blocks": np.asarray(blocks), "gap_to_sde": np.asarray(to_sde),
            "gap_to_transport": np.asarray(to_transport)}


def observed_order(blocks: np.ndarray, gaps: np.ndarray) -> float:
    """The order of the last doubling: log2(gap_K / gap_2K)."""
    return float(np.log2(gaps[-2] / gaps[-1]) / np.log2(blocks[-1] / blocks[-2]))


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from kolmogorov import epsilon

    fig, (ax_eps, ax_gap) = plt.subplots(1, 2, figsize=(12, 4.4))
    groups = {}
    for i, (label, k, p_L) in enumerate(PROFILES):
        starts, eps, rms = profile(k, p_L)
        color = f"C{i}"
        ax_eps.step(np.append(starts, 1.0), np.append(eps, eps[-1]), where="post", color=color, label=label)
        ax_eps.axhline(rms, color=color, ls=":", lw=1.2, label=f"its rms eps = {rms:.3f}")
        groups[f"profile_K{k}_pL{p_L:g}"] = {"t_start": starts, "eps": eps, "eps_rms": rms, "p_L": p_L, "K": k}
    for k, ls in ((27, "--"), (54, "-.")):
        level = epsilon("bernoulli", k, p=DROPOUT_P)
        ax_eps.axhline(level, color="black", ls=ls, lw=1,
                       label=f"dropout p = {DROPOUT_P:g}, K = {k}: eps = {level:.3f}")
        groups[f"dropout_K{k}"] = {"eps": level, "p": DROPOUT_P, "K": k}
    ax_eps.set(xlabel="t (block l starts at (l - 1)/K)", ylabel="noise level eps(t)",
               title="(a) stochastic depth: eps_l^2 = (1 - p_l)/(p_l K)")
    ax_eps.set_ylim(0.0, 1.6 * ax_eps.get_ylim()[1])  # room for the legend above the curves
    ax_eps.legend(fontsize=7, ncol=2, loc="upper left")

    gaps = flow_gaps(settings(fast)["blocks"])
    k = gaps["blocks"].astype(float)
    sde_order, transport_order = (observed_order(k, gaps[key]) for key in ("gap_to_sde", "gap_to_transport"))
    ax_gap.loglog(k, gaps["gap_to_sde"], "o-", label=f"to the SDE at eps_rms (last doubling: order {sde_order:.2f})")
    ax_gap.loglog(k, gaps["gap_to_transport"], "s-", label=f"to transport sigma(x + f) (order {transport_order:.2f})")
    ax_gap.loglog(k, gaps["gap_to_sde"][-1] * (k / k[-1]) ** -2.0, "k--", lw=0.8, label="slope -2")
    ax_gap.loglog(k, gaps["gap_to_transport"][-1] * (k / k[-1]) ** -1.0, "k:", lw=0.8, label="slope -1")
    ax_gap.set(xlabel="blocks K", ylabel="max over x in [-3, 3] of |E sigma(X_K) - ...|",
               title=f"(b) 1-D flow, f = {FLOW_F:g}, p_L = {FLOW_P_LAST:g} (exact law)")
    ax_gap.legend(fontsize=7)
    fig.tight_layout()
    groups["flow"] = {**gaps, "x": np.asarray(FLOW_X), "sde_order": sde_order, "transport_order": transport_order}
    return save_outputs(fig, out_dir, NAME, groups, attrs={"f": FLOW_F, "p_L": FLOW_P_LAST,
                                                           "paper": "LM-ResNet paper section 3.2"})
