"""Clean test accuracy after training on noisy inputs, h = 1.0 against h = 0.1 (robust-ResNet paper, Fig. 8), CIFAR.

Zhang et al., section 4.2 ("Real-world data for noise filtering", Figure 8; Appendix 6.5, Figure 17): ResNets
x_{n+1} = x_n + h F(x_n) (their eq. 4) with h = 1.0 (the original ResNet) and h = 0.1 are trained on CIFAR-10
whose training inputs carry Gaussian noise of standard deviation 0.0, 0.1, 0.3, 0.5 or 0.8 at every normalized
pixel, and tested on CLEAN data (SGD with momentum 0.9, lr 0.1 divided by 10 at epochs 40 and 60; 5 seeds,
the standard deviation as error bar). Their claim: small h filters the input noise along the depth, so
h = 0.1 keeps a higher accuracy with a smaller spread at every noise level.

Per depth present: final clean test accuracy (mean +- sample std over seeds; the median is kept in the data
file too) against the training input-noise level (nets.train --input-noise: a fixed noisy copy of the
training set, nets.input_noise), one line per h. Runs are plain PreResNets (no noise injection in the
branches, no stochastic depth) with h = 1.0 or 0.1, from the sweep `command()` prints.

The paper's network is a depth-218 ResNet, registered as `preresnet218` (6n + 2 with n = 36: 108 residual
blocks, 3.48 M parameters); the default sweep uses the 13x cheaper preresnet20 (any plain PreResNet depth
found in the results is drawn). Runs of the same configuration and seed found twice under
the results directory (e.g. the h = 0.1 / 1.0 runs of the robust_cifar h sweep, which are this figure's
clean runs) are counted once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, save_outputs, wrapped_suptitle
from figures.results import Aggregate, RunRecord, group_by, is_plain_preresnet, matching_h, results_root, select, sweep_command

SUMMARY = ("Robust-ResNet Fig. 8 on CIFAR: clean test accuracy vs training input-noise level, h = 1.0 vs h = 0.1, "
           "mean +- std (from sweep results)")
MODELS = ("preresnet20",)
H_VALUES = (0.1, 1.0)
NOISE_LEVELS = (0, 0.1, 0.3, 0.5, 0.8)
SEEDS = 3


def command(results: Path | None) -> str:
    """The input-noise sweep (the paper: lr 0.1 divided by 10 at epochs 40 and 60; 80 epochs here)."""
    return sweep_command(MODELS, results_root(results) / "robust_noise", seeds=SEEDS, h=H_VALUES,
                         input_noise=NOISE_LEVELS, epochs=80, schedule=(40, 60))


def _paper_h(record: RunRecord) -> float | None:
    """The value of H_VALUES that the run's h is (to float rounding), or None."""
    return matching_h(record, H_VALUES)


def is_noise_run(record: RunRecord) -> bool:
    """A plain PreResNet without branch noise or stochastic depth, with h = 1.0 or 0.1 (any input noise)."""
    return is_plain_preresnet(record) and _paper_h(record) is not None


def compute(results: Path | None) -> tuple[dict[str, dict[str, np.ndarray]], str]:
    """"MODEL/hH" -> arrays input_noise, accuracy_mean/std/median (%), n_runs; with the selection's note.

    Only (depth, h) lines with at least two input-noise levels are kept. Accuracy is 100 - the final
    epoch's test error, on the clean test set.
    """
    selection = select(results, is_noise_run, score=lambda runs: len({(_paper_h(r), r.input_noise) for r in runs}),
                       noisy_inputs=True)
    by_model = group_by(selection.records, lambda r: r.model)
    data = {}
    for model in sorted(by_model, key=lambda m: by_model[m][0].depth or 0):
        by_h = group_by(by_model[model], _paper_h)
        for h in sorted(by_h, reverse=True):
            by_noise = group_by(by_h[h], lambda r: r.input_noise)
            if len(by_noise) < 2:
                continue
            levels = sorted(by_noise)
            accuracy = [Aggregate.of([100.0 - r.final_test_error for r in by_noise[s]]) for s in levels]
            data[f"{model}/h{h:g}"] = {
                "input_noise": np.array(levels), "accuracy_mean": np.array([a.mean for a in accuracy]),
                "accuracy_std": np.array([a.std for a in accuracy]),
                "accuracy_median": np.array([a.median for a in accuracy]),
                "n_runs": np.array([a.n for a in accuracy]), "h": h, "model": model}
    if not data:
        raise MissingResults(f"no finished input-noise sweep (a depth and h in {list(H_VALUES)} with two or more "
                             f"--input-noise levels) under {results_root(results)}", command(results))
    return data, selection.note()


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot clean test accuracy against the training input noise from sweep results; `fast` changes nothing."""
    import matplotlib.pyplot as plt

    data, note = compute(results)
    models = list(dict.fromkeys(d["model"] for d in data.values()))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for d in (d for d in data.values() if d["model"] == model):
            label = f"h = {d['h']:.1f}" + (" (original ResNet)" if d["h"] == 1.0 else "")
            ax.errorbar(d["input_noise"], d["accuracy_mean"], yerr=d["accuracy_std"], marker="o", capsize=3, label=label)
        ax.set(xlabel="training input noise (std, normalized pixels)", ylabel="clean test accuracy (%)",
               title=f"PreResNet-{model.removeprefix('preresnet')}: mean over seeds, std as error bar")
        ax.grid(alpha=0.3)
        ax.legend()
    wrapped_suptitle(fig, note, fontsize=7)
    fig.tight_layout()
    return save_outputs(fig, out_dir, "robust_noise_cifar", data, attrs={"note": note})
