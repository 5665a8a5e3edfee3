"""Fig. 7 of the main paper (section 4.2.2): learning curves of PreResNet-20.

Top: training and test error against the epoch, mean +- standard deviation over seeds, for two survival
probabilities p of the stochastic training (4.2), paired as in the paper's Fig. 8 (choose_ps): the mildest
injection p < 1 and the p < 1 with the lowest mean final test error. Bottom: one run (the lowest seed)
of each of the two p, training (T) against validation (V) loss and accuracy: the noise (3.4) trades
training fit for a smaller train/test gap. fig8 draws the same panels for PreResNet-56 and -110; fig7
draws every other depth of the Table 1 runs (one row each, shallowest first), so that a sweep of a
shallower net (PreResNet-8 on a CPU) has its learning curves too, labelled with its depth.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from figures.output import MissingResults, count_of_runs, save_outputs, wrapped_suptitle
from figures.results import (RunRecord, Aggregate, error_percent, group_by, mean_and_std, read_runs,
                             results_root, stacked_curve, sweep_command)
from figures.table1 import P_VALUES, select_table1_runs

SUMMARY = ("Fig. 7: PreResNet-20 (and any other depth but 56/110) learning curves, mean +- std for two p, "
           "and train vs test of one run (from sweep results)")
DEEP_MODELS = ("preresnet56", "preresnet110")  # fig8's rows; fig7 draws every other Table 1 depth


def choose_ps(by_p: dict[float, list[RunRecord]]) -> list[float]:
    """The two survival probabilities shown, paired as in the paper's Fig. 8 (97.5% against 85% for
    PreResNet-56, 97.5% against 87.5% for PreResNet-110): the mildest injection (the p < 1 closest to 1)
    and the p < 1 with the lowest mean final test error, or the strongest injection (smallest p) when those
    coincide. With a single p < 1 it is paired with the plain network p = 1 when present.
    """
    mean_error = {p: Aggregate.of([r.final_test_error for r in runs]).mean for p, runs in by_p.items()}
    noisy = sorted(p for p in mean_error if p < 1.0)
    if len(noisy) >= 2:
        mildest, best = noisy[-1], min(noisy, key=mean_error.get)
        return [mildest, best if best != mildest else noisy[0]]
    return noisy + [p for p in sorted(mean_error) if p >= 1.0][:2 - len(noisy)]


def model_curves(records: Sequence[RunRecord]) -> dict[str, dict[str, np.ndarray]]:
    """Per chosen p: mean/std of training and test error (%) per epoch, and one run's loss and accuracy."""
    by_p = group_by(records, lambda r: r.survival_p)
    data = {}
    for p in choose_ps(by_p):
        runs = by_p[p]
        train_error = stacked_curve(runs, "train_acc", error_percent)
        test_error = stacked_curve(runs, "test_acc", error_percent)
        (train_mean, train_std), (test_mean, test_std) = mean_and_std(train_error), mean_and_std(test_error)
        one = runs[0]
        data[f"p{p:g}"] = {
            "p": p, "n_runs": len(runs), "epoch": np.arange(1, train_error.shape[1] + 1),
            "train_error_mean": train_mean, "train_error_std": train_std,
            "test_error_mean": test_mean, "test_error_std": test_std,
            "one_run_seed": one.seed, "one_run_train_loss": one.curves["train_loss"], "one_run_test_loss": one.curves["test_loss"],
            "one_run_train_acc": one.curves["train_acc"], "one_run_test_acc": one.curves["test_acc"]}
    return data


def plot_model(axes: Sequence, label: str, data: dict[str, dict[str, np.ndarray]], letters: str = "abcd") -> None:
    """Four panels: mean +- std error curves for each chosen p (two axes), then one run's loss and accuracy."""
    keys = list(data)
    for i, ax in enumerate(axes[:2]):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        d = data[keys[i]]
        for kind, color in (("train", "tab:blue"), ("test", "tab:red")):
            mean, std = d[f"{kind}_error_mean"], d[f"{kind}_error_std"]
            ax.plot(d["epoch"], mean, color=color, label=f"{'training' if kind == 'train' else 'test'} error")
            ax.fill_between(d["epoch"], mean - std, mean + std, color=color, alpha=0.25)
        ax.set(title=f"({letters[i]}) {label} with p = {100 * d['p']:g}% ({count_of_runs(d['n_runs'])})", xlabel="epoch", ylabel="error (%)")
        ax.legend(fontsize=8)
    for ax, quantity, letter in ((axes[2], "loss", letters[2]), (axes[3], "acc", letters[3])):
        for key, style in zip(keys, ("-", "--")):
            d = data[key]
            epoch = np.arange(1, len(d[f"one_run_train_{quantity}"]) + 1)
            scale = 100.0 if quantity == "acc" else 1.0
            ax.plot(epoch, scale * d[f"one_run_train_{quantity}"], style, color="tab:blue", label=f"T, p = {100 * d['p']:g}%")
            ax.plot(epoch, scale * d[f"one_run_test_{quantity}"], style, color="tab:red", label=f"V, p = {100 * d['p']:g}%")
        name = "loss value" if quantity == "loss" else "accuracy (%)"
        ax.set(title=f"({letter}) {name} for {label}, one run", xlabel="epoch", ylabel=name)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)


def runs_of(results: Path | None, keep_model: Callable[[str], bool]):
    """The finished Table 1 runs of the models that pass keep_model, grouped by model in order of depth, and
    the data note.

    The recipe is table1's (the dominant one over every depth), so that another sweep of a depth this
    figure draws (a PreResNet-8 recipe check beside a Table 1 sweep) does not push the Table 1 runs out;
    only when that recipe has none of the figure's models is the recipe chosen among theirs alone. Each
    metrics.h5 is read once (read_runs) for both selections.
    """
    runs = read_runs(results)
    selection = select_table1_runs(runs)
    kept = [r for r in selection.records if keep_model(r.model)]
    selection = replace(selection, records=kept) if kept else select_table1_runs(runs, keep_model)
    by_model = group_by(sorted(selection.records, key=lambda r: r.depth or 0), lambda r: r.model)
    return by_model, selection.note()


def make_curves(out_dir: Path, results: Path | None, name: str, keep_model: Callable[[str], bool],
                missing_models: Sequence[str]) -> list[Path]:
    """Shared by fig7 and fig8: one row of four panels per model that passes keep_model, shallowest first.

    missing_models: the models of the sweep command printed when no run passes.
    """
    import matplotlib.pyplot as plt

    by_model, note = runs_of(results, keep_model)
    if not by_model:
        raise MissingResults(f"no finished runs of {', '.join(missing_models)} under {results_root(results)}",
                             sweep_command(missing_models, results_root(results) / "table1", seeds=4, p=P_VALUES))
    present = list(by_model)
    layout = (2, 2) if len(present) == 1 else (len(present), 4)
    fig, axes = plt.subplots(*layout, figsize=(10, 7.5) if len(present) == 1 else (18, 4.2 * len(present)), squeeze=False)
    groups = {}
    for row, model in enumerate(present):
        data = model_curves(by_model[model])
        label = f"PreResNet-{model.removeprefix('preresnet')}"
        row_axes = list(axes.flat) if len(present) == 1 else list(axes[row])
        plot_model(row_axes, label, data, letters=_letters(row))
        groups.update({f"{model}/{key}": value for key, value in data.items()})
    wrapped_suptitle(fig, "Mean $\\pm$ std over seeds (shaded); T = training, V = validation; " + note, fontsize=9)
    fig.tight_layout()
    return save_outputs(fig, out_dir, name, groups, attrs={"note": note, "models": ",".join(present)})


def _letters(row: int) -> str:
    """Panel letters of a row: abcd, efgh, ijkl, ..."""
    return "".join(chr(ord("a") + 4 * row + i) for i in range(4))


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot Fig. 7 from sweep results; `fast` changes nothing (the numbers are read, not computed)."""
    return make_curves(out_dir, results, "fig7", lambda model: model not in DEEP_MODELS, ("preresnet20",))
