"""Main paper Fig. 5: small- and large-batch SGD on the plain and the regularized l2 landscape.

Left column (a, c, e, g): the ``rugged`` data set, SGD started at f_0 = 10.5 in the basin of a
poor local minimum (f ~ 9). Right column (b, d, f, h): the ``double-well`` data set, started at
f_0 = -9.5 beside the sharp well (f ~ -8); the flat well is at f ~ 1. Rows: small batch (m = 1) and
large batch (m = all samples) on the plain landscape J_0 (eps = 0), then the same on the
regularized landscape (eps = 0.5). Iterates are coloured light pink -> dark red with the step.

The regularized landscape is the noise-averaged l2 loss E[(sigma(X_1) - h)^2] (objective
"expected"), the objective that dropout training descends: its minibatch gradient is the mean of
the per-pass gradients of noisy forward passes. Expanding in eps it is J_0 + eps^2 f^2 J_0''/2 + ...,
a penalty on curvature, which is why the sharp well of the double well disappears; the paper's
ensemble J_eps (3.7) does not have that term (see docs/landscape.md). The learning rate decays
geometrically from 20 to 5 over 300 steps in every panel; only eps and m change within a column.

The HDF5 file stores, per panel, the curve, the drawn path (seed 0) and the final iterate of
`n_seeds` independent runs (one for a full batch, which is deterministic), so the claims are
checked on more than the drawn run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = "main paper Fig. 5: small/large-batch SGD on plain and regularized l2 landscapes (rugged, double-well)"
NAME = "fig5"
LOSS = "l2"
EPS = 0.5
OBJECTIVE = "expected"
COLUMNS = (("rugged", 10.5), ("double-well", -9.5))
SGD = {"lr": 20.0, "lr_end": 5.0, "steps": 300, "mode": "smoothed"}


def settings(fast: bool) -> dict:
    return {"n_f": 301 if fast else 801, "n_seeds": 2 if fast else 8}


def panels():
    """(letter, dataset, f0, eps, batch label) in the paper's order: a-h, left column rugged."""
    letters = iter("abcdefgh")
    out = []
    for eps, batch in ((0.0, "small"), (0.0, "large"), (EPS, "small"), (EPS, "large")):
        for name, f0 in COLUMNS:
            out.append((next(letters), name, f0, eps, batch))
    return out


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.output import save_outputs
    from landscape import LOSS_FLOOR, compute, get_dataset, landscape_statistics, sgd
    from landscape.drawing import draw_curve, draw_sgd_path, new_figure

    s = settings(fast)
    fig = new_figure(figsize=(10, 12.5))
    axes = fig.subplots(4, 2)
    groups: dict[str, dict] = {}
    for k, (letter, name, f0, eps, batch) in enumerate(panels()):
        ax = axes[k // 2, k % 2]
        data = get_dataset(name)
        m = 1 if batch == "small" else data.n
        f = np.linspace(*data.default_f_range(), s["n_f"])
        J = compute(f, data.y, data.label, eps, LOSS, objective=OBJECTIVE)
        st = landscape_statistics(f, J, floor=LOSS_FLOOR)
        # a full batch is deterministic (smoothed mode): one run stands for every seed
        seeds = range(s["n_seeds"]) if m < data.n else range(1)
        runs = [sgd(data.y, data.label, eps, f0=f0, batch_size=m, seed=seed, loss=LOSS, objective=OBJECTIVE, **SGD)
                for seed in seeds]
        draw_curve(ax, f, J, st, label=r"$J_0$" if eps == 0 else rf"$E\,\ell_2$, $\varepsilon$={eps:g}", color="0.35")
        draw_sgd_path(ax, runs[0].f, runs[0].J)
        kind = "plain" if eps == 0 else "regularized"
        ax.set_title(f"({letter}) {name}, {kind}, {batch} batch m={m}", fontsize=10)
        ax.set_xlabel("$f$")
        ax.set_ylabel(r"$\ell_2$ loss")
        ax.legend(fontsize=8, loc="upper center")
        ax.grid(alpha=0.3)
        groups[f"{letter}_{name}_{kind}_{batch}"] = {
            "f": f, "J": J, "eps": eps, "batch_size": m, "f0": f0, "dataset": name,
            "path_f": runs[0].f, "path_J": runs[0].J,
            "final_f_per_seed": np.array([r.final_f for r in runs]),
            "minima_f": np.array([mm.f for mm in st.minima]), "minima_curvature": np.array([mm.curvature for mm in st.minima]),
        }
    fig.tight_layout()
    return save_outputs(fig, out_dir, NAME, groups, attrs={
        "loss": LOSS, "objective": OBJECTIVE, "sgd": SGD, "n_seeds": s["n_seeds"], "paper": "main paper Fig. 5"})
