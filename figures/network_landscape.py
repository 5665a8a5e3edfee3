"""Main paper Fig. 3 for the network the SDE models: the K-block dropout network's own l2 landscape, exactly.

The SDE (3.4) at eps stands for K dropout blocks with survival probability p = 1 / (1 + K eps^2) (3.2). On the
``rugged`` data of Fig. 3 (landscape.network computes the network's landscape as a finite sum):

(a) at eps = 0.5, J_0, the SDE's J_eps and the network's for K = 1, 3 and 27 blocks: few blocks smooth less.
(b) the largest gap |J_network - J_eps| over f as K grows, at fixed p = 0.8 (eps^2 = 0.25 / K, the paper's
    limit: weak order 2) and at fixed eps = 0.5 and 1 (p falls like 1 / (K eps^2) and the kept count tends to a
    Poisson law: the gap stops shrinking, a jump process rather than the diffusion); beside them stochastic depth
    (--mask stochastic_depth, the LM-ResNet paper's linear decay at the same rms eps, K <= 16) at the same fixed
    eps, whose gap turns and grows: its last blocks survive with p_L falling fast in K and jump by 1/p_l.
(c) the number of local minima against K at eps = 0.25, 0.5 and 1, the SDE's count as a dashed line.
(d) the size of the masks' jumps at fixed eps = 0.25: the largest gap |J_network - J_eps| against the jump a of
    two-point masks 1 - a / 1 + K eps^2 / a (landscape.network, --jump; a = 1 is dropout, a = sqrt(K eps^2) a fair
    coin), for K = 2, 3, 4, 8, 12: every a is the same SDE, and large jumps (dropout's among them) are the
    farthest from it; the uniform masks 1 + U(-beta, beta) of (3.14) at the same eps (--mask uniform, where
    beta = eps sqrt(3K) < 1: K = 2, 3, 4 here) as dashed levels, closer still.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SUMMARY = ("main paper Fig. 3 for the network itself: the K-block dropout network's exact l2 landscape against "
           "the SDE's, its gap as K grows at fixed p (order 2) and at fixed eps (a Poisson limit; stochastic depth "
           "grows away), its minima")
NAME = "network_landscape"
DATASET, LOSS = "rugged", "l2"
#: panel (a): the noise level and block counts drawn
CURVE_EPS, CURVE_BLOCKS = 0.5, (1, 3, 27)
#: panel (b): the fixed survival probability and the fixed noise levels
FIXED_P, FIXED_EPS = 0.8, (0.5, 1.0)
#: panels (b) and (c): the block counts
BLOCKS = (1, 2, 3, 4, 6, 9, 16, 27, 64, 128, 256, 512, 1024)
#: panel (c): the noise levels
MINIMA_EPS = (0.25, 0.5, 1.0)
#: panel (d): the noise level, the block counts (K eps^2 <= 1, so that a two-point mask has the variance) and the
#: number of jumps from sqrt(K eps^2) to 1
JUMP_EPS, JUMP_BLOCKS, N_JUMPS = 0.25, (2, 3, 4, 8, 12), 13


def settings(fast: bool) -> dict:
    """The f grid: 401 points with --fast, 801 (landscape.plot's default) without."""
    return {"n_f": 401 if fast else 801}


def _network(f: np.ndarray, data, eps: float, k: int, jump: float = 1.0, mask: str = "dropout") -> np.ndarray:
    from landscape import evaluate

    return evaluate(f, data.y, data.label, eps, LOSS, "network", n_blocks=k, jump=jump, mask=mask).J


def gap_sweeps(f: np.ndarray, data) -> dict[str, np.ndarray]:
    """Panel (b): max over f of |J_network - J_eps| per K, at FIXED_P and at each FIXED_EPS (dropout), and per K of
    BLOCKS up to kolmogorov's exact stochastic-depth limit (2^K atoms) at each FIXED_EPS (stochastic depth)."""
    from kolmogorov.flow import EXACT_STOCHASTIC_DEPTH_BLOCKS
    from landscape import compute
    from landscape.network import STOCHASTIC_DEPTH

    depth_blocks = [k for k in BLOCKS if k <= EXACT_STOCHASTIC_DEPTH_BLOCKS]
    out = {"blocks": np.asarray(BLOCKS)}
    gaps = []
    for k in BLOCKS:
        eps = math.sqrt((1 - FIXED_P) / (FIXED_P * k))
        gaps.append(np.max(np.abs(_network(f, data, eps, k) - compute(f, data.y, data.label, eps, LOSS))))
    out["fixed_p"] = np.asarray(gaps)
    for eps in FIXED_EPS:
        sde = compute(f, data.y, data.label, eps, LOSS)
        out[f"fixed_eps_{eps:g}"] = np.asarray([np.max(np.abs(_network(f, data, eps, k) - sde)) for k in BLOCKS])
        out[f"stochastic_depth_eps_{eps:g}"] = np.asarray(
            [np.max(np.abs(_network(f, data, eps, k, mask=STOCHASTIC_DEPTH) - sde)) for k in depth_blocks])
    out["stochastic_depth_blocks"] = np.asarray(depth_blocks)
    return out


def minima_counts(f: np.ndarray, data) -> dict[str, np.ndarray]:
    """Panel (c): local minima of the network's landscape per K, and the SDE's, at each of MINIMA_EPS."""
    from landscape import LOSS_FLOOR, compute, landscape_statistics

    out = {"blocks": np.asarray(BLOCKS)}
    for eps in MINIMA_EPS:
        out[f"network_eps_{eps:g}"] = np.asarray(
            [landscape_statistics(f, _network(f, data, eps, k), floor=LOSS_FLOOR).n_minima for k in BLOCKS])
        out[f"sde_eps_{eps:g}"] = landscape_statistics(f, compute(f, data.y, data.label, eps, LOSS),
                                                       floor=LOSS_FLOOR).n_minima
    return out


def jump_gaps(f: np.ndarray, data) -> dict[str, np.ndarray]:
    """Panel (d): max over f of |J_network - J_eps| against the jump a in [sqrt(K eps^2), 1], per K of JUMP_BLOCKS;
    where uniform masks of that eps exist (beta < 1), their half-width and gap."""
    from landscape import compute
    from landscape.network import uniform_half_width

    sde = compute(f, data.y, data.label, JUMP_EPS, LOSS)
    out = {}
    for k in JUMP_BLOCKS:
        jumps = np.linspace(math.sqrt(k) * JUMP_EPS, 1.0, N_JUMPS)
        out[f"jump_K{k}"] = jumps
        out[f"gap_K{k}"] = np.asarray([np.max(np.abs(_network(f, data, JUMP_EPS, k, a) - sde)) for a in jumps])
        try:
            out[f"uniform_beta_K{k}"] = uniform_half_width(JUMP_EPS, k)
        except ValueError:  # no uniform mask keeps its sign at this eps and K
            continue
        out[f"uniform_gap_K{k}"] = float(np.max(np.abs(_network(f, data, JUMP_EPS, k, mask="uniform") - sde)))
    return out


def observed_order(blocks: np.ndarray, gaps: np.ndarray) -> float:
    """The order of the last doubling of K: log2(gap_K / gap_2K)."""
    return float(np.log2(gaps[-2] / gaps[-1]) / np.log2(blocks[-1] / blocks[-2]))


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    from figures.output import save_outputs
    from landscape import compute, get_dataset
    from landscape.drawing import CURVE_COLORS, new_figure
    from landscape.network import survival_probability

    data = get_dataset(DATASET)
    f = np.linspace(*data.default_f_range(), settings(fast)["n_f"])
    fig = new_figure(figsize=(13, 9))
    (ax_curves, ax_gap), (ax_minima, ax_jump) = fig.subplots(2, 2)
    groups = {}

    J0, sde = compute(f, data.y, data.label, 0.0, LOSS), compute(f, data.y, data.label, CURVE_EPS, LOSS)
    ax_curves.plot(f, J0, "k--", lw=1.4, label="J_0 (3.10)")
    ax_curves.plot(f, sde, "k-", lw=2.2, alpha=0.35, label=f"SDE J_eps (3.7), eps = {CURVE_EPS:g}")
    groups["curves"] = {"f": f, "J0": J0, "sde": sde, "eps": CURVE_EPS}
    for i, k in enumerate(CURVE_BLOCKS):
        J = _network(f, data, CURVE_EPS, k)
        p = survival_probability(CURVE_EPS, k)
        ax_curves.plot(f, J, color=CURVE_COLORS[i], lw=1.4, label=f"network, K = {k} (p = {p:.3g})")
        groups["curves"][f"network_K{k}"] = J
    ax_curves.set(xlabel="constant velocity f", ylabel="l2 loss (ensemble)",
                  title=f"(a) {DATASET} data: the dropout network at eps = {CURVE_EPS:g}")
    ax_curves.legend(fontsize=7)
    ax_curves.grid(alpha=0.3)

    gaps = gap_sweeps(f, data)
    k = gaps["blocks"].astype(float)
    order = observed_order(k, gaps["fixed_p"])
    ax_gap.loglog(k, gaps["fixed_p"], "o-", color="C0", label=f"fixed p = {FIXED_P:g} (last doubling: order {order:.2f})")
    for i, eps in enumerate(FIXED_EPS):
        ax_gap.loglog(k, gaps[f"fixed_eps_{eps:g}"], "s-", color=f"C{i + 1}", label=f"fixed eps = {eps:g}")
        ax_gap.loglog(gaps["stochastic_depth_blocks"], gaps[f"stochastic_depth_eps_{eps:g}"], "^:", color=f"C{i + 1}",
                      label=f"stochastic depth, fixed eps = {eps:g}")
    ax_gap.loglog(k, gaps["fixed_p"][-1] * (k / k[-1]) ** -2.0, "k--", lw=0.8, label="slope -2")
    ax_gap.set(xlabel="blocks K", ylabel="max over f of |J_network - J_eps|",
               title="(b) the network against its SDE as K grows")
    ax_gap.legend(fontsize=7)
    ax_gap.grid(alpha=0.3, which="both")
    groups["gaps"] = {**gaps, "fixed_p_order": order, "p": FIXED_P}

    minima = minima_counts(f, data)
    for i, eps in enumerate(MINIMA_EPS):
        ax_minima.semilogx(k, minima[f"network_eps_{eps:g}"], "o-", color=f"C{i}", label=f"network, eps = {eps:g}")
        ax_minima.axhline(minima[f"sde_eps_{eps:g}"], color=f"C{i}", ls="--", lw=1,
                          label=f"SDE, eps = {eps:g}: {minima[f'sde_eps_{eps:g}']}")
    ax_minima.set(xlabel="blocks K", ylabel="local minima of the l2 landscape", title="(c) minima against K")
    ax_minima.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_minima.legend(fontsize=7, ncol=2)
    ax_minima.grid(alpha=0.3)
    groups["minima"] = minima

    jumps = jump_gaps(f, data)
    for i, k in enumerate(JUMP_BLOCKS):
        ax_jump.semilogy(jumps[f"jump_K{k}"], jumps[f"gap_K{k}"], "o-", ms=3, color=f"C{i}", label=f"K = {k}")
        if f"uniform_gap_K{k}" in jumps:
            ax_jump.axhline(jumps[f"uniform_gap_K{k}"], color=f"C{i}", ls="--", lw=1.0,
                            label=f"K = {k}, uniform masks (beta = {jumps[f'uniform_beta_K{k}']:.2f})")
    ax_jump.set(xlabel="jump a of the masks 1 - a / 1 + K eps^2 / a (1: dropout)",
                ylabel="max over f of |J_network - J_eps|",
                title=f"(d) the masks' jump at fixed eps = {JUMP_EPS:g}: one SDE, large jumps farthest from it")
    ax_jump.legend(fontsize=7)
    ax_jump.grid(alpha=0.3, which="both")
    groups["jumps"] = {**jumps, "eps": JUMP_EPS}
    groups["data"] = {"y": data.y, "label": data.label, "name": DATASET}
    fig.tight_layout()
    return save_outputs(fig, out_dir, NAME, groups, attrs={"dataset": DATASET, "loss": LOSS, "objective": "ensemble",
                                                           "module": "landscape.network", "paper": "main paper Fig. 3"})
