"""Feature propagation of the synthetic 2-D data through trained MLP ResNets (Zhang & Wynter Figs. 2-7).

Shared by the six registered modules figures/propagation_*.py, one per figure of the paper.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

CLASS_COLORS = ("tab:blue", "tab:red")


def scatter_layer(ax, features: np.ndarray, labels: np.ndarray, title: str) -> None:
    """One panel: the 2-D features of one layer coloured by class, axes scaled to the data (as in the paper)."""
    finite = np.isfinite(features).all(axis=1)
    for cls, color in enumerate(CLASS_COLORS):
        pts = features[finite & (labels == cls)]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, c=color, alpha=0.7, linewidths=0)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)


def plot_depth_profile(ax, result) -> None:
    """Smoothness along depth: at layer k, the mean length ||y_k - y_{k-1}|| of block k's step, and the feature
    range max |y_k| (k = 0 is the input)."""
    depth = len(result.step_lengths)
    ax.semilogy(np.arange(1, depth + 1), result.step_lengths, label="mean step ||y_k - y_{k-1}||")
    ax.semilogy(np.arange(depth + 1), result.feature_scale, label="feature range max |y_k|")
    ax.set_xlabel("layer k", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")


def propagation_groups(result) -> dict[str, dict]:
    """The HDF5 groups of a PropagationResult: exactly the plotted numbers plus the run's summary."""
    return {
        "features": {"layers": np.asarray(result.layers), "features": result.features, "labels": result.labels,
                     "probe_accuracy": result.probe_accuracy},
        "depth_profile": {"step_lengths": result.step_lengths, "feature_scale": result.feature_scale},
        "training": {"train_loss": result.training.train_loss, "test_accuracy": result.training.test_accuracy,
                     "train_accuracy": result.training.train_accuracy, "diverged": result.training.diverged,
                     "seconds": result.training.seconds},
    }


def fast_note(train, n_train: int | None = None) -> str:
    """What a --fast figure's title adds: its shorter recipe (train: nets.companion TrainConfig; n_train when
    --fast also trains on fewer points), since the full protocol's numbers are what the docs quote."""
    return f" [--fast: {train.describe()}" + (f", {n_train} training points]" if n_train else "]")


def make_propagation(key: str, name: str, out_dir: Path, fast: bool, config=None) -> list[Path]:
    """Train the network of Fig. key (presets.PROPAGATION_FIGURES) and draw its test features at the shown layers."""
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from nets.companion import presets
    from nets.companion.experiments import run_propagation
    from nets.companion.models import VARIANT_LABELS

    config = config if config is not None else presets.propagation(key, fast)
    result = run_propagation(config, progress=True)
    n = len(result.layers)
    cols = min(6, n)
    rows = int(np.ceil(n / cols))
    fig = plt.figure(figsize=(2.4 * cols, 2.3 * rows + 2.2))
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[1.0] * rows + [0.9])
    for i, (k, feats, acc) in enumerate(zip(result.layers, result.features, result.probe_accuracy)):
        scatter_layer(fig.add_subplot(grid[i // cols, i % cols]), feats, result.labels,
                      f"layer {k}, probe acc {acc:.2f}")
    plot_depth_profile(fig.add_subplot(grid[rows, :]), result)
    net = config.net
    fig.suptitle(f"Zhang & Wynter Fig. {presets.PAPER_FIGURE.get(key, '?')}: {VARIANT_LABELS[net.variant]}, "
                 f"h = {net.h:g}, {net.depth} layers; test accuracy {result.test_accuracy:.3f}"
                 + (" (diverged)" if result.training.diverged else "")
                 + (fast_note(config.train, config.n_train) if fast else ""), fontsize=10)
    fig.tight_layout()
    attrs = {"paper": f"Zhang & Wynter Fig. {presets.PAPER_FIGURE.get(key, '?')}", "fast": fast,
             "config": asdict(config)}
    return save_outputs(fig, out_dir, name, propagation_groups(result), attrs=attrs)
