"""Main paper Fig. 3: noise injection smooths the l2 loss landscape (section 4.1, (3.7) vs (3.10)).

Left: J_0 and J_eps for several eps on the built-in ``rugged`` data set, local minima marked (open
circles) and the global minimum (star). Right: the number of local minima and the largest barrier
between neighbouring minima as eps grows, the two quantities the paper's caption names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = "main paper Fig. 3: l2 landscapes J_0 and J_eps (rugged data), minima and barriers vs eps"
NAME = "fig3"
DATASET = "rugged"
LOSS = "l2"
EPS = (0.0, 0.1, 0.25, 0.5)


def settings(fast: bool) -> dict:
    """Grid sizes: the f grid of the curves and the eps sweep of the statistics panel."""
    return {"n_f": 401 if fast else 1201, "eps_sweep": tuple(np.linspace(0.0, 1.0, 11 if fast else 41))}


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from matplotlib.ticker import MaxNLocator

    from figures.output import save_outputs
    from landscape import LOSS_FLOOR, compute, get_dataset, landscape_statistics
    from landscape.drawing import CURVE_COLORS, draw_curve, new_figure

    s = settings(fast)
    data = get_dataset(DATASET)
    f = np.linspace(*data.default_f_range(), s["n_f"])
    curves = {eps: compute(f, data.y, data.label, eps, LOSS) for eps in EPS}
    stats = {eps: landscape_statistics(f, J, floor=LOSS_FLOOR) for eps, J in curves.items()}
    sweep = np.asarray(s["eps_sweep"])
    sweep_stats = [landscape_statistics(f, compute(f, data.y, data.label, e, LOSS), floor=LOSS_FLOOR) for e in sweep]
    n_minima = np.array([st.n_minima for st in sweep_stats])
    largest = np.array([st.largest_barrier for st in sweep_stats])

    fig = new_figure(figsize=(11.5, 4.2))
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    for k, eps in enumerate(EPS):
        color = "black" if eps == 0 else CURVE_COLORS[(k - 1) % len(CURVE_COLORS)]
        label = r"$J_0$" if eps == 0 else rf"$J_\varepsilon$, $\varepsilon$={eps:g}"
        count = stats[eps].n_minima
        draw_curve(ax, f, curves[eps], stats[eps], label=f"{label}: {count} local minim{'um' if count == 1 else 'a'}", color=color,
                   linestyle="--" if eps == 0 else "-")
    ax.set(xlabel="constant velocity $f$", ylabel=r"$\ell_2$ loss", title=f"(a) {DATASET} data, l2: $J_0$ (3.10) vs $J_\\varepsilon$ (3.7)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax2.step(sweep, n_minima, where="mid", color="tab:blue", label="local minima")
    ax2.set(xlabel=r"noise level $\varepsilon$", ylabel="number of local minima", title="(b) minima and largest barrier")
    ax2.yaxis.label.set_color("tab:blue")
    ax2.yaxis.set_major_locator(MaxNLocator(integer=True))
    twin = ax2.twinx()
    twin.plot(sweep, largest, "o-", color="tab:red", ms=3, label="largest barrier")
    twin.set_ylabel("largest barrier height", color="tab:red")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    groups = {}
    for eps in EPS:
        st = stats[eps]
        groups[f"eps_{eps:g}"] = {
            "f": f, "J": curves[eps], "eps": eps,
            "minima_f": np.array([m.f for m in st.minima]), "minima_J": np.array([m.J for m in st.minima]),
            "largest_barrier": st.largest_barrier, "n_minima": st.n_minima,
        }
    groups["sweep"] = {"eps": sweep, "n_minima": n_minima, "largest_barrier": largest}
    groups["data"] = {"y": data.y, "label": data.label, "name": DATASET}
    return save_outputs(fig, out_dir, NAME, groups, attrs={
        "dataset": DATASET, "loss": LOSS, "objective": "ensemble", "solver": "closed", "paper": "main paper Fig. 3"})
