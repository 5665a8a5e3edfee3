"""The size of a mask's jumps at a fixed noise level, computed exactly in the 1-D residual flow (kolmogorov.two_point).

The 1-D counterpart of figure noise_jumps (trained networks): X_{k+1} = X_k + (f/K) m_k with two-point masks of
variance K eps^2 and jump a (a = sqrt(K eps^2) a fair coin, a = 1 dropout's Bernoulli mask), so every jump is the
same SDE (3.4) at level eps, and what changes with a is the jump's own effect.

(a) c = (E sigma(X_K) - sigma(x + f)) / eps^2, the 1-D form of the eps^2 law's c, against the jump: exact at
    eps = 0.06 (the level of the CIFAR measurements; markers) relative to the SDE's c at the same eps, and its
    small-noise limit, the divided difference of sigma over one jump a f / K (lines), relative to the SDE's
    (1/2) f^2 sigma''(x + f), for K = 3, 9, 27 blocks; stars: the uniform masks 1 + U(-beta, beta) of the same
    eps, placed at their largest move beta = sqrt(3 K eps^2), whose c departs from the SDE's by 3/5 of the fair
    coin's departure (their fourth cumulants).
(b) The same c for the Bernoulli mask (a = 1) across x + f, against the SDE's: the jump moves c by a fraction of
    order 1/K, either way (the sign of sigma''' against sigma''); to first order the Bernoulli c is the SDE's read
    a third of a jump (f / (3K)) upstream.
(c) At a fixed mask (p = 0.8, so eps^2 = 0.25 / K) the gap to the SDE, largest over x, as K doubles: order 2 from
    the mask's third cumulant v (v - a^2) / a for every jump but the fair coin's (order 3), and order 3 once the
    third-cumulant term is subtracted; the uniform mask 1 + U(-beta, beta) of the same variance (beta^2 / 3 = v,
    exact by kolmogorov.uniform_sum) is symmetric too, order 3, and its gap tends to 3/5 of the fair coin's: the
    ratio of their fourth cumulants, -(6/5) v^2 against -2 v^2.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SUMMARY = ("The size of a mask's jumps at fixed eps in the exact 1-D flow: c against the jump for K = 3, 9, 27, "
           "Bernoulli against SDE across x, and the weak orders at fixed mask (kolmogorov.two_point)")
NAME = "flow_jumps"
#: the velocity of every panel and the centre x + f of panel (a)
FLOW_F, CENTRE = 3.0, 1.0
#: panel (a): the noise level (that of the CIFAR jump measurements) and the block counts
EPS, BLOCKS = 0.06, (3, 9, 27)
#: panel (b): the centres x + f
CENTRES = tuple(np.linspace(-4.0, 4.0, 81))
#: panel (c): the mask variance (Bernoulli p = 0.8), its jumps besides the fair coin, the block counts, the inputs
FIXED_VARIANCE, FIXED_JUMPS, DOUBLING_BLOCKS = 0.25, (0.75, 1.0), (4, 8, 16, 32, 64, 128, 256, 512)
DOUBLING_X = tuple(np.linspace(-3.0, 3.0, 13))


def settings(fast: bool) -> dict:
    """Exact finite sums throughout, a second in all: --fast changes nothing."""
    return {"jump_points": 9}


def jump_grid(n_blocks: int, points: int) -> np.ndarray:
    """points jumps from the fair coin sqrt(K eps^2) to 1, evenly spaced."""
    from kolmogorov.two_point import smallest_jump

    return np.linspace(smallest_jump(n_blocks * EPS ** 2), 1.0, points)


def sde_curvature(centre: np.ndarray | float) -> np.ndarray:
    """(1/2) f^2 sigma''(x + f): the SDE's c at small eps."""
    from kolmogorov.two_point import small_noise_curvature

    return small_noise_curvature(np.asarray(centre) - FLOW_F, FLOW_F, 1, 0.0)


def exact_curvature(centre: np.ndarray | float, n_blocks: int, jump: float) -> np.ndarray:
    """(E sigma(X_K) - sigma(x + f)) / eps^2 of the two-point flow at EPS (exact)."""
    from scipy.special import expit

    from kolmogorov.two_point import two_point_flow_mean

    centre = np.asarray(centre, dtype=float)
    return (two_point_flow_mean(centre - FLOW_F, FLOW_F, n_blocks, EPS, jump).mean - expit(centre)) / EPS ** 2


def exact_sde_curvature(centre: np.ndarray | float) -> np.ndarray:
    """(u_sigmoid(x, f, eps) - sigma(x + f)) / eps^2 at EPS: the SDE's c at the same eps as exact_curvature."""
    from scipy.special import expit

    from kolmogorov import u_sigmoid

    centre = np.asarray(centre, dtype=float)
    return (u_sigmoid(centre - FLOW_F, FLOW_F, EPS) - expit(centre)) / EPS ** 2


def jump_curves(points: int) -> dict[int, dict[str, np.ndarray]]:
    """Panel (a): per K, the jumps, exact c / the SDE's exact c at EPS, and the small-noise limits' ratio; the
    uniform masks' half-width beta at EPS and their exact c / the SDE's."""
    from scipy.special import expit

    from kolmogorov import noise_parameter_for, residual_flow_mean
    from kolmogorov.two_point import small_noise_curvature

    sde_limit, sde_exact = float(sde_curvature(CENTRE)), float(exact_sde_curvature(CENTRE))
    curves = {}
    for k in BLOCKS:
        jumps = jump_grid(k, points)
        exact = np.array([float(exact_curvature(CENTRE, k, a)) for a in jumps])
        limit = np.array([float(small_noise_curvature(CENTRE - FLOW_F, FLOW_F, k, a)) for a in jumps])
        beta = noise_parameter_for("uniform", k, EPS)  # eps sqrt(3K) (3.14)
        uniform = (float(residual_flow_mean(CENTRE - FLOW_F, FLOW_F, k, "uniform", beta=beta).mean)
                   - float(expit(CENTRE))) / EPS ** 2
        curves[k] = {"jump": jumps, "exact_ratio": exact / sde_exact, "limit_ratio": limit / sde_limit,
                     "uniform_beta": beta, "uniform_ratio": uniform / sde_exact}
    return curves


def bernoulli_across_centres() -> dict[str, np.ndarray]:
    """Panel (b): the SDE's c and the Bernoulli mask's (exact at EPS) across x + f, per K."""
    centres = np.asarray(CENTRES)
    out = {"centre": centres, "sde": sde_curvature(centres)}
    for k in BLOCKS:
        out[f"bernoulli_K{k}"] = exact_curvature(centres, k, 1.0)
    return out


def fixed_mask_gaps() -> dict[str, np.ndarray]:
    """Panel (c): largest gap over DOUBLING_X to u_sigmoid at eps^2 = FIXED_VARIANCE / K, per jump, as K doubles;
    for the Bernoulli jump also the gap left after the third-cumulant term; and the uniform mask's of that variance."""
    from kolmogorov import residual_flow_mean, u_sigmoid
    from kolmogorov.two_point import cumulant_corrections, smallest_jump, two_point_flow_mean

    x = np.asarray(DOUBLING_X)
    jumps = (smallest_jump(FIXED_VARIANCE), *FIXED_JUMPS)
    out = {"blocks": np.asarray(DOUBLING_BLOCKS), "jumps": np.asarray(jumps)}
    for i, jump in enumerate(jumps):
        gaps, rests = [], []
        for k in DOUBLING_BLOCKS:
            eps = math.sqrt(FIXED_VARIANCE / k)
            gap = two_point_flow_mean(x, FLOW_F, k, eps, jump).mean - u_sigmoid(x, FLOW_F, eps)
            gaps.append(np.max(np.abs(gap)))
            rests.append(np.max(np.abs(gap - cumulant_corrections(x, FLOW_F, k, eps, jump).third)))
        out[f"gap_{i}"] = np.asarray(gaps)
        out[f"after_third_{i}"] = np.asarray(rests)
    beta = math.sqrt(3.0 * FIXED_VARIANCE)
    out["uniform_beta"] = beta
    out["gap_uniform"] = np.asarray([
        np.max(np.abs(residual_flow_mean(x, FLOW_F, k, "uniform", beta=beta).mean
                      - u_sigmoid(x, FLOW_F, math.sqrt(FIXED_VARIANCE / k)))) for k in DOUBLING_BLOCKS])
    return out


def observed_order(blocks: np.ndarray, gaps: np.ndarray) -> float:
    """The order of the last doubling: log2(gap_K / gap_2K)."""
    return float(np.log2(gaps[-2] / gaps[-1]) / np.log2(blocks[-1] / blocks[-2]))


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs

    fig, (ax_jump, ax_centre, ax_order) = plt.subplots(1, 3, figsize=(16, 4.6))
    curves = jump_curves(settings(fast)["jump_points"])
    groups = {}
    for i, (k, curve) in enumerate(curves.items()):
        color = f"C{i}"
        ax_jump.plot(curve["jump"], curve["limit_ratio"], "-", color=color, label=f"K = {k}: eps -> 0 limit")
        ax_jump.plot(curve["jump"], curve["exact_ratio"], "o", color=color, ms=4, label=f"K = {k}: exact, eps = {EPS:g}")
        ax_jump.plot([curve["uniform_beta"]], [curve["uniform_ratio"]], "*", color=color, ms=10, mec="black", mew=0.5,
                     label=f"K = {k}: uniform masks at beta")
        groups[f"jumps_K{k}"] = {**curve, "K": k}
    ax_jump.axhline(1.0, color="black", lw=0.8, ls=":", label="SDE (only eps)")
    ax_jump.set(xlabel="jump a (fair coin sqrt(K eps^2) ... Bernoulli 1)", ylabel="c / c of the SDE at the same eps",
                title=f"(a) c against the jump, x + f = {CENTRE:g}, f = {FLOW_F:g}")
    ax_jump.legend(fontsize=7, ncol=2)

    across = bernoulli_across_centres()
    ax_centre.plot(across["centre"], across["sde"], "k-", lw=1.5, label="SDE: (1/2) f^2 sigma''(x + f)")
    for i, k in enumerate(BLOCKS):
        ax_centre.plot(across["centre"], across[f"bernoulli_K{k}"], "--", color=f"C{i}", label=f"Bernoulli, K = {k}")
    ax_centre.axhline(0.0, color="grey", lw=0.5)
    ax_centre.set(xlabel="x + f", ylabel="c = (E sigma(X_K) - sigma(x + f)) / eps^2",
                  title=f"(b) Bernoulli mask against the SDE, eps = {EPS:g} (exact)")
    ax_centre.legend(fontsize=7)
    groups["across_centres"] = across

    gaps = fixed_mask_gaps()
    k = gaps["blocks"].astype(float)
    orders = {}
    labels = [f"fair coin a = {gaps['jumps'][0]:g}", *(f"a = {a:g}" for a in gaps["jumps"][1:])]
    for i, label in enumerate(labels):
        orders[f"order_{i}"] = observed_order(k, gaps[f"gap_{i}"])
        ax_order.loglog(k, gaps[f"gap_{i}"], "o-", color=f"C{i}", label=f"{label} (order {orders[f'order_{i}']:.2f})")
    last = len(labels) - 1
    orders["order_after_third"] = observed_order(k, gaps[f"after_third_{last}"])
    ax_order.loglog(k, gaps[f"after_third_{last}"], "s:", color=f"C{last}",
                    label=f"a = 1 less its kappa_3 term (order {orders['order_after_third']:.2f})")
    orders["order_uniform"] = observed_order(k, gaps["gap_uniform"])
    orders["uniform_to_fair_coin"] = float(gaps["gap_uniform"][-1] / gaps["gap_0"][-1])
    ax_order.loglog(k, gaps["gap_uniform"], "v--", color="black", ms=4,
                    label=f"uniform, beta = {gaps['uniform_beta']:.3g} (order {orders['order_uniform']:.2f}; "
                          f"{orders['uniform_to_fair_coin']:.3f} x fair coin)")
    ax_order.set(xlabel="blocks K", ylabel="max over x of |E sigma(X_K) - u_sigmoid(x, f, eps)|",
                 title=f"(c) fixed mask, v = {FIXED_VARIANCE:g} (p = {1 / (1 + FIXED_VARIANCE):g}): eps^2 = v / K")
    ax_order.legend(fontsize=7)
    groups["fixed_mask"] = {**gaps, **orders}
    fig.tight_layout()
    return save_outputs(fig, out_dir, NAME, groups,
                        attrs={"f": FLOW_F, "centre": CENTRE, "eps": EPS, "fixed_variance": FIXED_VARIANCE,
                               "module": "kolmogorov.two_point"})
