"""Main paper Fig. 4: the l1 landscape (left) and over-damping by too much noise (right), section 4.1.

(a) J_0 and J_eps under the l1 loss on the ``rugged`` data set: the same smoothing as Fig. 3.
(b) The ``separable`` data set, which a plain network fits perfectly at f near 3. For a large eps
the minimiser of J_eps moves towards f = 0, where the injected noise eps |f| vanishes, and the
network evaluated at test time (eps = 0) no longer fits the data: each legend entry gives the
minimiser f* of its curve and the training accuracy of sigma(y + f*).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = "main paper Fig. 4: l1 landscapes (rugged data) and over-damping at large eps (separable data)"
NAME = "fig4"
LOSS = "l1"
EPS_SMOOTHING = (0.0, 0.25, 0.5)
EPS_DAMPING = (0.0, 0.5, 2.0, 4.0)


def settings(fast: bool) -> dict:
    return {"n_f": 401 if fast else 1201}


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.output import save_outputs
    from landscape import LOSS_FLOOR, compute, fit_accuracy, get_dataset, landscape_statistics
    from landscape.drawing import CURVE_COLORS, draw_curve, new_figure

    n_f = settings(fast)["n_f"]
    fig = new_figure(figsize=(12, 4.3))
    axes = fig.subplots(1, 2)
    groups: dict[str, dict] = {}
    panels = (("rugged", EPS_SMOOTHING, "(a) smoothing"), ("separable", EPS_DAMPING, "(b) over-damping"))
    for ax, (name, eps_values, title) in zip(axes, panels):
        data = get_dataset(name)
        f = np.linspace(*data.default_f_range(), n_f)
        for k, eps in enumerate(eps_values):
            J = compute(f, data.y, data.label, eps, LOSS)
            st = landscape_statistics(f, J, floor=LOSS_FLOOR)
            accuracy = fit_accuracy(st.global_f, data.y, data.label)
            color = "black" if eps == 0 else CURVE_COLORS[(k - 1) % len(CURVE_COLORS)]
            label = r"$J_0$" if eps == 0 else rf"$J_\varepsilon$, $\varepsilon$={eps:g}"
            draw_curve(ax, f, J, st, label=f"{label}: f*={st.global_f:.2f}, train acc {100 * accuracy:.0f}%",
                       color=color, linestyle="--" if eps == 0 else "-")
            groups[f"{name}/eps_{eps:g}"] = {
                "f": f, "J": J, "eps": eps, "minimiser": st.global_f, "minimum": st.global_J,
                "train_accuracy_at_minimiser": accuracy, "n_minima": st.n_minima,
                "minima_f": np.array([m.f for m in st.minima]), "minima_J": np.array([m.J for m in st.minima]),
            }
        groups[f"{name}/data"] = {"y": data.y, "label": data.label}
        ax.set(xlabel="constant velocity $f$", ylabel=r"$\ell_1$ loss", title=f"{title}: {name} data, l1")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_outputs(fig, out_dir, NAME, groups, attrs={
        "loss": LOSS, "objective": "ensemble", "solver": "closed", "paper": "main paper Fig. 4"})
