"""Training and test curves of ResNet against LM-ResNet (LM-ResNet paper, Figs. 3 and 5).

The LM-ResNet paper shows its gain as learning curves: ResNeXt29 against LM-ResNeXt29 on CIFAR-100 (its
Fig. 3) and ResNet56 against LM-ResNet56 with stochastic depth on CIFAR-10 (its Fig. 5). Here, from sweep
results, the same comparison for every column of lm_table (ResNet, LM-ResNet, LM-ResNet with an Euler first
step, each with and without stochastic depth p_L) and every depth present, one row per depth:
(a) training loss per epoch (log axis when it falls by more than a decade), (b) test error per epoch, (c) test error from the first learning-rate
milestone on (the last half of training when the recipe has none), where the families part; each curve is
the mean over seeds with the sample standard deviation shaded. The runs are lm_table's (figures.lm_table).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from figures.lm_table import column_label, column_order, command, select_lm_table_runs
from figures.output import MissingResults, count_of_runs, save_labelled, wrapped_suptitle
from figures.results import RunRecord, error_percent, group_by, mean_and_std, results_root, stacked_curve

SUMMARY = "LM-ResNet paper Figs. 3/5: training loss and test error per epoch, ResNet vs LM-ResNet (from sweep results)"
_COLORS = {None: "tab:blue", "zero": "tab:red", "rest": "tab:green"}
_STYLES = ("-", "--", ":", "-.")


def zoom_start(records: Sequence[RunRecord]) -> int:
    """The first epoch of panel (c): the first learning-rate milestone of the runs' recipe (lr is divided
    after that many epochs, so the zoom starts at epoch milestone + 1), or the second half of training when
    the recipe has no milestone."""
    milestones = [int(m) for m in np.atleast_1d(records[0].attrs.get("milestones") or ()) if m is not None]
    epochs = min(len(r.curves["test_acc"]) for r in records)
    first = min(milestones) + 1 if milestones else epochs // 2 + 1
    return first if 1 <= first <= epochs else 1


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """label -> curves of one (depth, family, stochastic depth) group: depth, model, lm_start, stochastic_depth,
    n_runs, seeds, epoch, train_loss_mean/std, test_error_mean/std (%), zoom_from (first epoch of panel (c));
    and the selection's note. MissingResults unless LM runs are present (as lm_table)."""
    selection = select_lm_table_runs(results)
    if not any(r.is_lm for r in selection.records):
        raise MissingResults(f"no finished LM-ResNet runs under {results_root(results)}", command(results))
    groups = group_by(selection.records, lambda r: (r.depth or 0, r.lm_start, r.stochastic_depth))
    zoom_from = {depth: zoom_start(runs) for depth, runs in group_by(selection.records, lambda r: r.depth or 0).items()}
    data: dict[str, dict] = {}
    for depth, start, sd in sorted(groups, key=lambda k: (k[0], *column_order(k[1:]))):
        runs = groups[(depth, start, sd)]
        train_loss = stacked_curve(runs, "train_loss")
        test_error = stacked_curve(runs, "test_acc", error_percent)
        loss_mean, loss_std = mean_and_std(train_loss)
        error_mean, error_std = mean_and_std(test_error)
        data[f"{depth}: {column_label(start, sd)}"] = {
            "depth": depth, "model": runs[0].model, "lm_start": start, "stochastic_depth": sd, "n_runs": len(runs),
            "seeds": np.array([r.seed for r in runs]), "epoch": np.arange(1, train_loss.shape[1] + 1),
            "train_loss_mean": loss_mean, "train_loss_std": loss_std,
            "test_error_mean": error_mean, "test_error_std": error_std, "zoom_from": zoom_from[depth]}
    return data, selection.note()


def draw(data: dict[str, dict], note: str):
    """Three panels per depth (rows, shallowest first): training loss, test error, test error zoomed."""
    import matplotlib.pyplot as plt

    depths = sorted({d["depth"] for d in data.values()})
    fig, axes = plt.subplots(len(depths), 3, figsize=(15, 4.2 * len(depths)), squeeze=False)
    for row, depth in enumerate(depths):
        ax_loss, ax_error, ax_zoom = axes[row]
        curves = {label: d for label, d in data.items() if d["depth"] == depth}
        sd_values = sorted({d["stochastic_depth"] for d in curves.values()}, key=lambda v: (v is not None, -(v or 0.0)))
        zoom_from = next(iter(curves.values()))["zoom_from"]
        low, high = np.inf, -np.inf
        for label, d in curves.items():
            style = dict(color=_COLORS[d["lm_start"]], linestyle=_STYLES[sd_values.index(d["stochastic_depth"]) % len(_STYLES)])
            name = f"{label.split(': ', 1)[1]} ({count_of_runs(d['n_runs'])})"
            zoomed = d["epoch"] >= zoom_from
            for ax, key, mask in ((ax_loss, "train_loss", slice(None)), (ax_error, "test_error", slice(None)),
                                  (ax_zoom, "test_error", zoomed)):
                mean, std = d[f"{key}_mean"][mask], d[f"{key}_std"][mask]
                ax.plot(d["epoch"][mask], mean, label=name if ax is ax_loss else None, **style)
                ax.fill_between(d["epoch"][mask], mean - std, mean + std, color=style["color"], alpha=0.15)
            low = min(low, float(np.min(d["test_error_mean"][zoomed] - d["test_error_std"][zoomed])))
            high = max(high, float(np.max(d["test_error_mean"][zoomed] + d["test_error_std"][zoomed])))
        margin = 0.05 * (high - low) or 0.5
        ax_zoom.set_ylim(low - margin, high + margin)
        letters = [chr(ord("a") + 3 * row + i) for i in range(3)]
        losses = np.concatenate([d["train_loss_mean"] for d in curves.values()])
        if losses.min() > 0 and losses.max() / losses.min() > 10:  # a loss falling by decades; else linear reads better
            ax_loss.set_yscale("log")  # a band mean - std <= 0 has no place on it: the axis ends at half the lowest mean
            ax_loss.set_ylim(0.5 * losses.min(), 2.0 * losses.max())
        ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"({letters[0]}) depth {depth}: training loss")
        ax_error.set(xlabel="epoch", ylabel="test error (%)", title=f"({letters[1]}) depth {depth}: test error")
        ax_zoom.set(xlabel="epoch", ylabel="test error (%)",
                    title=f"({letters[2]}) depth {depth}: test error from epoch {zoom_from}")
        ax_loss.legend(fontsize=8)
        for ax in axes[row]:
            ax.grid(alpha=0.3)
    wrapped_suptitle(fig, "Mean $\\pm$ std over seeds (shaded); " + note, fontsize=8)
    fig.tight_layout()
    return fig


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the learning curves from sweep results; `fast` changes nothing (the numbers are read)."""
    return save_labelled(draw, *compute(results), out_dir, "lm_curves")
