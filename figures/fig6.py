"""Fig. 6 of the main paper (section 4.2.2): final training loss and validation (test) error against the
survival probability p of the stochastic training (4.2), mean +- standard deviation over seeds, one line
per depth. Smaller p means a larger noise level eps^2 = (1 - p) / (p K) of the modified equation (3.4).
Each line's legend entry gives its least-squares slope over all its runs per percentage point of p removed,
with the two-sided p-value of a zero slope (figures.results.final_value_trends; also in fig6.h5).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from figures.output import MissingResults, save_outputs, wrapped_suptitle
from figures.results import Aggregate, final_value_trends, group_by, results_root
from figures.table1 import command, select_table1_runs

SUMMARY = "Fig. 6: training loss and test error vs survival probability p, mean +- std (from sweep results)"


def compute(results: Path | None) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """model -> arrays p, train_loss_mean/std, test_error_mean/std (%), n_runs, and the slopes over all the
    model's runs per point of p removed (final_value_trends: {test_error,train_loss}_slope, _slope_stderr, _slope_p;
    absent with fewer than 3 runs at 2 or more p); and the data note."""
    selection = select_table1_runs(results)
    if not selection.records:
        raise MissingResults(f"no finished Table 1 runs under {results_root(results)}", command(results))
    by_model = group_by(selection.records, lambda r: r.model)
    data = {}
    for model in sorted(by_model, key=lambda m: by_model[m][0].depth or 0):
        by_p = group_by(by_model[model], lambda r: r.survival_p)
        ps = sorted(by_p)
        loss = [Aggregate.of([r.final_train_loss for r in by_p[p]]) for p in ps]
        error = [Aggregate.of([r.final_test_error for r in by_p[p]]) for p in ps]
        data[model] = {"p": np.array(ps), "train_loss_mean": np.array([a.mean for a in loss]),
                       "train_loss_std": np.array([a.std for a in loss]),
                       "test_error_mean": np.array([a.mean for a in error]),
                       "test_error_std": np.array([a.std for a in error]), "n_runs": np.array([a.n for a in error])}
        for key, trend in final_value_trends([r for p in ps for r in by_p[p]]).items():
            if trend is not None:
                data[model].update({f"{key}_slope": trend.slope, f"{key}_slope_stderr": trend.stderr,
                                    f"{key}_slope_p": trend.pvalue})
    return data, selection.note()


def spread_phrase(runs_per_point: Sequence[int]) -> str:
    """What a point and its error bar are, from the number of runs behind each point."""
    counts = sorted({int(n) for n in runs_per_point})
    if counts == [1]:
        return "One run per point (no error bars)"
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"Mean $\\pm$ std over {seeds} seeds per point"


def trend_label(label: str, d: dict[str, np.ndarray], key: str, unit: str) -> str:
    """A legend entry: the line's name and, when computed, its slope per point of p removed with its p-value."""
    if f"{key}_slope" not in d:
        return label
    return (f"{label}: {d[f'{key}_slope']:+.2g}{unit} per point of p removed (p = {d[f'{key}_slope_p']:.2g}, "
            f"{int(np.sum(d['n_runs']))} runs)")


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot Fig. 6 from sweep results; `fast` changes nothing (the numbers are read, not computed)."""
    import matplotlib.pyplot as plt

    data, note = compute(results)
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 4.6))
    for i, (model, d) in enumerate(data.items()):
        label = f"PreResNet-{model.removeprefix('preresnet')}"
        x = 100 * d["p"] + 0.15 * (i - (len(data) - 1) / 2)  # small horizontal dodge so error bars stay apart
        ax_loss.errorbar(x, d["train_loss_mean"], yerr=d["train_loss_std"], marker="o", capsize=3,
                         label=trend_label(label, d, "train_loss", ""))
        ax_err.errorbar(x, d["test_error_mean"], yerr=d["test_error_std"], marker="o", capsize=3,
                        label=trend_label(label, d, "test_error", " pts"))
    ax_loss.set(xlabel="survival probability p (%)", ylabel="training loss (last epoch)", title="(a) training loss")
    ax_err.set(xlabel="survival probability p (%)", ylabel="test error (%)", title="(b) validation error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        # below the axes: with the slopes in it the legend is wide, and inside it would cover error bars
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    wrapped_suptitle(fig, spread_phrase([n for d in data.values() for n in d["n_runs"]]) + "; " + note, fontsize=8)
    fig.tight_layout()
    return save_outputs(fig, out_dir, "fig6", data, attrs={"note": note})
