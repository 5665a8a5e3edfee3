"""Zhang & Wynter Fig. 8: test accuracy against h on the synthetic 2-D data, 100-layer networks, mean +- population
std over trials (ddof = 0)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

SUMMARY = "smooth Fig. 8: test accuracy vs h, synthetic data, 100 layers, residual / batch norm / shrinkage"
NAME = "smooth_fig8"
VARIANT_STYLE = {"residual": ("tab:red", "o"), "batchnorm": ("tab:green", "s"), "shrinkage": ("tab:blue", "^")}


def settings(fast: bool):
    """The GridConfig of this figure (nets.companion.presets.smooth_synthetic)."""
    from nets.companion import presets

    return presets.smooth_synthetic(fast)


# the axes of a GridResult's (variant, depth, h, noise[, trial]) arrays that a line can run along
GRID_AXES = {"h": 2, "noise": 3}


def grid_groups(result, statistic: str = "mean", along: str = "h") -> dict[str, dict]:
    """HDF5 groups of a GridResult: one per line against `along` ("h" or "noise"), i.e. per (variant, depth, the
    other one), with the `along` values, centre, std (population std over trials, ddof = 0) and all trials."""
    centre, spread = result.summary(statistic)
    cfg = result.config
    fixed = "noise" if along == "h" else "h"
    values = {"h": cfg.h_values, "noise": cfg.noise_levels}
    # the fixed axis moved to 2: [v, d, k] is then the line of fixed value k against `along`
    centre, spread, test, train, diverged = (
        np.moveaxis(a, GRID_AXES[fixed], 2)
        for a in (centre, spread, result.test_accuracy, result.train_accuracy, result.diverged))
    groups = {}
    for v, variant in enumerate(cfg.variants):
        for d, depth in enumerate(cfg.depths):
            for k, value in enumerate(values[fixed]):
                groups[f"{variant}/depth={depth}/{fixed}={value:g}"] = {
                    along: np.asarray(values[along], dtype=float), statistic: centre[v, d, k], "std": spread[v, d, k],
                    "test_accuracy": test[v, d, k], "train_accuracy": train[v, d, k],
                    "diverged": diverged[v, d, k].astype(np.int8), "variant": variant, "depth": depth, fixed: value}
    return groups


def grid_checkpoint(results: Path | None, name: str, config, fast: bool) -> Path | None:
    """Where a full (not --fast) sweep keeps its per-point progress so that a rerun resumes:
    results/companion/NAME-<config hash>.json. None for --fast runs or without a results root."""
    from nets.companion.sweeps import config_hash

    if fast or results is None:
        return None
    return Path(results) / "companion" / f"{name}-{config_hash(config)}.json"


def accuracy_error_bars(centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Asymmetric error bars (2, n) of centre +- spread for an accuracy, clipped to [0, 1].

    With diverged trials counted as accuracy 0 the standard deviation can exceed the distance to 0 or 1;
    a bar past either bound would show an accuracy that cannot occur.
    """
    centre = np.asarray(centre, dtype=float)
    spread = np.asarray(spread, dtype=float)
    return np.vstack([np.minimum(spread, centre), np.minimum(spread, 1.0 - centre)]).clip(min=0.0)


def annotate_diverged(ax, x: np.ndarray, y: np.ndarray, diverged: np.ndarray) -> bool:
    """Mark points whose trials (last axis of `diverged`) include diverged runs.

    Some trials diverged: the label 'k/n div.'; all of them: a black x on the point (no text, so that a row
    of such points stays readable). Returns True when some point had all its trials diverge, for one legend
    entry (`legend_with_diverged`).
    """
    all_diverged = False
    for xi, yi, flags in zip(x, y, diverged):
        if flags.all():
            ax.plot([xi], [yi], "kx", markersize=8, zorder=5)
            all_diverged = True
        elif flags.any():
            ax.annotate(f"{int(flags.sum())}/{flags.size} div.", (xi, yi), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    return all_diverged


def legend_with_diverged(ax, all_diverged: bool) -> None:
    """The legend, with an entry for the black x of annotate_diverged when one was drawn."""
    if all_diverged:
        ax.plot([], [], "kx", markersize=8, linestyle="none", label="all trials diverged")
    ax.legend(fontsize=8)


def plot_accuracy_vs_h(ax, result, statistic: str = "mean", log_h: bool = False) -> None:
    """Error bars of the test accuracy over trials against h, one line per (variant, depth)."""
    from nets.companion.models import VARIANT_LABELS

    centre, spread = result.summary(statistic)
    cfg = result.config
    h = np.asarray(cfg.h_values, dtype=float)
    all_diverged = False
    for v, variant in enumerate(cfg.variants):
        for d, depth in enumerate(cfg.depths):
            color, marker = VARIANT_STYLE.get(variant, (None, "o"))
            if len(cfg.depths) > 1:
                color = None
            label = VARIANT_LABELS[variant] + (f", {depth} blocks" if len(cfg.depths) > 1 else "")
            ax.errorbar(h, centre[v, d, :, 0], yerr=accuracy_error_bars(centre[v, d, :, 0], spread[v, d, :, 0]),
                        marker=marker, capsize=3, color=color, label=label)
            all_diverged |= annotate_diverged(ax, h, centre[v, d, :, 0], result.diverged[v, d, :, 0, :])
    if log_h:
        ax.set_xscale("log")
    ax.set(xlabel="step factor h",
           ylabel=f"test accuracy ({statistic} +- population std\nover {cfg.trials} trials, ddof = 0)")
    legend_with_diverged(ax, all_diverged)


def save_grid_figure(result, name: str, title: str, out_dir: Path, fast: bool, paper: str,
                     statistic: str = "mean", log_h: bool = False) -> list[Path]:
    """Plot a GridResult against h and write PNG + PDF + HDF5."""
    import matplotlib.pyplot as plt

    from figures.output import save_outputs

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    plot_accuracy_vs_h(ax, result, statistic, log_h)
    diverged = int(result.diverged.sum())
    ax.set_title(title + (f"\n{diverged} of {result.diverged.size} runs diverged" if diverged else ""), fontsize=10)
    fig.tight_layout()
    from nets.companion.sweeps import STD_LABEL

    attrs = {"paper": paper, "fast": fast, "statistic": statistic, "std": STD_LABEL, "config": asdict(result.config),
             "seconds": result.seconds}
    return save_outputs(fig, out_dir, name, grid_groups(result, statistic), attrs=attrs)


def make_grid_figure(config, name: str, title: str, out_dir: Path, fast: bool, results: Path | None, paper: str,
                     statistic: str = "mean", log_h: bool = False) -> list[Path]:
    """Run the GridConfig (resuming from its grid_checkpoint), plot it against h and write PNG + PDF + HDF5."""
    from nets.companion.sweeps import run_grid

    from figures.propagation import fast_note

    result = run_grid(config, checkpoint=grid_checkpoint(results, name, config, fast))
    if fast:
        title += fast_note(config.train, dict(config.dataset_kwargs).get("n_train"))
    return save_grid_figure(result, name, title, out_dir, fast, paper, statistic=statistic, log_h=log_h)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    config = settings(fast)
    title = (f"Zhang & Wynter Fig. 8: synthetic data, {config.depths[0]} layers, "
             f"{config.trials} trials per h")
    return make_grid_figure(config, NAME, title, out_dir, fast, results, "Zhang & Wynter Fig. 8")
