"""Robust ResNet Fig. 8 on CPU: train on digits with Gaussian input noise, test on clean digits, h = 1.0
against h = 0.1, mean +- population std over trials (ddof = 0)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

SUMMARY = "robust Fig. 8 analogue: clean digits test accuracy vs training-input noise, h = 1.0 vs 0.1"
NAME = "robust_fig8_digits"
H_COLORS = {1.0: "tab:red", 0.1: "tab:blue"}


def settings(fast: bool):
    """The GridConfig of this figure (nets.companion.presets.digits_noise)."""
    from nets.companion import presets

    return presets.digits_noise(fast)


def noise_groups(result) -> dict[str, dict]:
    """HDF5 groups: one per (variant, depth, h) line with noise levels, mean, std and all trials."""
    from figures.smooth_accuracy_synthetic import grid_groups

    return grid_groups(result, "mean", along="noise")


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from figures.propagation import fast_note
    from figures.smooth_accuracy_synthetic import (accuracy_error_bars, annotate_diverged, grid_checkpoint,
                                                   legend_with_diverged)
    from nets.companion.sweeps import STD_LABEL, run_grid

    config = settings(fast)
    result = run_grid(config, checkpoint=grid_checkpoint(results, NAME, config, fast))
    mean, std = result.summary("mean")
    noise = np.asarray(config.noise_levels, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    all_diverged = False
    for v, variant in enumerate(config.variants):
        for d, depth in enumerate(config.depths):
            for k, h in enumerate(config.h_values):
                ax.errorbar(noise, mean[v, d, k], yerr=accuracy_error_bars(mean[v, d, k], std[v, d, k]), marker="o",
                            capsize=3, color=H_COLORS.get(h), label=f"h = {h:g}, {depth} blocks")
                all_diverged |= annotate_diverged(ax, noise, mean[v, d, k], result.diverged[v, d, k])
    ax.set(xlabel="std of Gaussian noise on standardized training pixels",
           ylabel=f"clean test accuracy (mean +- population std\nover {config.trials} trials, ddof = 0)")
    diverged = int(result.diverged.sum())
    ax.set_title(f"robust ResNet Fig. 8 analogue: digits, trained on noisy inputs, SGD lr {config.train.lr:g}"
                 + (fast_note(config.train) if fast else "")
                 + (f"\n{diverged} of {result.diverged.size} runs diverged" if diverged else ""), fontsize=10)
    legend_with_diverged(ax, all_diverged)
    fig.tight_layout()
    attrs = {"paper": "robust ResNet Fig. 8 (digits analogue)", "fast": fast, "std": STD_LABEL, "config": asdict(config),
             "seconds": result.seconds}
    return save_outputs(fig, out_dir, NAME, noise_groups(result), attrs=attrs)
