"""Test accuracy against the step factor h on CIFAR (robust-ResNet paper, Fig. 9), from sweep results.

The robust-ResNet block x_{n+1} = x_n + h F(x_n) (its eq. 4) is the forward-Euler step of x' = F(x) with
step h; small h bounds the amplification of perturbations through the layers. Per depth: (a) median final
test accuracy over seeds against h (log axis), with the standard deviation as error bar, as in the paper;
(b) the same for the final training loss, which resolves differences of h that the test accuracy's seed spread
hides (docs/experiments.md section 8).
Runs are plain PreResNets (no noise injection, no stochastic depth) of an h sweep. The printed sweep uses the
paper's Fig. 9 depths on CIFAR-10, ResNet-20, 110 and 218 (here PreResNet-20/110/218), its h grid from 0.001 to
20 and its recipe (80 epochs, lr 0.1 divided by 10 at epochs 40 and 60, 5 seeds); the figure draws every
plain PreResNet depth present with at least two h values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, save_outputs, wrapped_suptitle
from figures.results import Aggregate, RunRecord, group_by, is_plain_preresnet, results_root, select, sweep_command

SUMMARY = "Robust-ResNet Fig. 9 on CIFAR: test accuracy vs step factor h per depth, median +- std (from sweep results)"
MODELS = ("preresnet20", "preresnet110", "preresnet218")  # the robust-ResNet paper's Fig. 9 depths on CIFAR-10
H_VALUES = (0.001, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0)


def command(results: Path | None) -> str:
    """The h sweep of the paper's Fig. 9 (ResNet-20, 110, 218; 5 seeds; 80 epochs, lr 0.1 divided by 10 at
    epochs 40 and 60)."""
    return sweep_command(MODELS, results_root(results) / "robust_h", seeds=5, h=H_VALUES, epochs=80, schedule=(40, 60))


def is_h_run(record: RunRecord) -> bool:
    """A run of the h sweep: a plain PreResNet (figures.results.is_plain_preresnet), any h."""
    return is_plain_preresnet(record)


def compute(results: Path | None) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """model -> arrays h, accuracy median/mean/std (%), final training loss median/std, n_runs; only depths
    with at least two h values."""
    selection = select(results, is_h_run, score=lambda runs: len({r.h for r in runs}))
    by_model = group_by(selection.records, lambda r: r.model)
    data = {}
    for model in sorted(by_model, key=lambda m: by_model[m][0].depth or 0):
        by_h = group_by(by_model[model], lambda r: r.h)
        if len(by_h) < 2:
            continue
        hs = sorted(by_h)
        accuracy = [Aggregate.of([100.0 - r.final_test_error for r in by_h[h]]) for h in hs]
        loss = [Aggregate.of([r.final_train_loss for r in by_h[h]]) for h in hs]
        data[model] = {"h": np.array(hs), "accuracy_median": np.array([a.median for a in accuracy]),
                       "accuracy_mean": np.array([a.mean for a in accuracy]),
                       "accuracy_std": np.array([a.std for a in accuracy]),
                       "train_loss_median": np.array([a.median for a in loss]),
                       "train_loss_std": np.array([a.std for a in loss]), "n_runs": np.array([a.n for a in accuracy])}
    if not data:
        raise MissingResults(f"no finished h sweep (a depth with two or more h values) under {results_root(results)}",
                             command(results))
    return data, selection.note()


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot accuracy and training loss against h from sweep results; `fast` changes nothing (the numbers are
    read)."""
    import matplotlib.pyplot as plt

    data, note = compute(results)
    fig, (ax_accuracy, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    panels = ((ax_accuracy, "accuracy", "test accuracy (%)", "(a) test accuracy"),
              (ax_loss, "train_loss", "final training loss", "(b) training loss"))
    for ax, key, ylabel, title in panels:
        for model, d in data.items():
            ax.errorbar(d["h"], d[f"{key}_median"], yerr=d[f"{key}_std"], marker="o", capsize=3,
                        label=f"PreResNet-{model.removeprefix('preresnet')}")
            for h, value, n in zip(d["h"], d[f"{key}_median"], d["n_runs"]):  # seeds may differ between h
                ax.annotate(f"n={n}", (h, value), textcoords="offset points", xytext=(6, -12), fontsize=7)
        ax.set_xscale("log")
        ax.margins(x=0.08, y=0.12)  # room for the n= labels below the lowest point and right of the last
        ax.set(xlabel="step factor h", ylabel=ylabel, title=f"{title}: median of n runs, std bars")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    wrapped_suptitle(fig, note, fontsize=7)
    fig.tight_layout()
    return save_outputs(fig, out_dir, "robust_cifar", data, attrs={"note": note})
