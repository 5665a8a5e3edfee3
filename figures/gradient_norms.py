"""Robust ResNet Fig. 2 on CPU: gradient and weight norms of single layers over training iterations,
h = 1.0 against h = 0.1 (batch-norm MLP ResNet on digits, SGD momentum 0.9), at the paper's lr 0.1 and
at a smaller lr at which h = 1 also trains."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

SUMMARY = "robust Fig. 2 analogue: per-layer gradient and weight norms over iterations on digits, h = 1.0 vs 0.1"
NAME = "robust_fig2"
H_COLORS = {1.0: "tab:red", 0.1: "tab:blue"}


def settings(fast: bool):
    """The GradientNormConfig of this figure (nets.companion.presets.gradient_norms)."""
    from nets.companion import presets

    return presets.gradient_norms(fast)


def largest_finite(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The largest finite value along axis (nanmax semantics, without its all-NaN RuntimeWarning): NaN and
    inf entries (a diverged run) are ignored, and a slice with no finite value is NaN."""
    values = np.asarray(values, dtype=float)
    return np.fmax.reduce(np.where(np.isfinite(values), values, np.nan), axis=axis)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from nets.companion.experiments import run_gradient_norms

    config = settings(fast)
    result = run_gradient_norms(config, progress=True)
    blocks = result.block_names
    second, last = (blocks[1] if len(blocks) > 1 else blocks[0]), blocks[-1]  # the paper's layer #2; the deepest
    lrs = config.learning_rates
    fig, axes = plt.subplots(len(lrs), 4, figsize=(19, 3.9 * len(lrs)), squeeze=False)
    for row, lr in enumerate(lrs):
        for h in config.h_values:
            run = result.runs[(lr, h)]
            color = H_COLORS.get(h)
            label = f"h = {h:g} (test acc {run.test_accuracy:.3f}{', diverged' if run.diverged else ''})"
            it = np.arange(1, run.iterations + 1)
            axes[row, 0].semilogy(it, run.grad_norms[:, run.layer_names.index(second)], color=color, lw=0.8,
                                  label=label)
            axes[row, 1].plot(it, run.weight_norms[:, run.layer_names.index(second)], color=color, lw=1.2,
                              label=label)
            axes[row, 2].semilogy(it, run.grad_norms[:, run.layer_names.index(last)], color=color, lw=0.8,
                                  label=label)
            block_index = [run.layer_names.index(b) for b in blocks]
            axes[row, 3].semilogy(np.arange(1, len(blocks) + 1), largest_finite(run.grad_norms[:, block_index]), "o-",
                                  ms=3, color=color, label=label)
        low, high = axes[row, 1].dataLim.y0, axes[row, 1].dataLim.y1
        if low > 0 and high / low > 100:  # a diverging run: only a log scale shows both curves
            axes[row, 1].set_yscale("log")
        axes[row, 0].set(xlabel="iteration", ylabel="gradient norm", title=f"lr {lr:g}: {second} gradient")
        axes[row, 1].set(xlabel="iteration", ylabel="weight norm", title=f"lr {lr:g}: {second} weights")
        axes[row, 2].set(xlabel="iteration", ylabel="gradient norm", title=f"lr {lr:g}: {last} gradient")
        axes[row, 3].set(xlabel="block", ylabel="largest finite gradient norm over training",
                         title=f"lr {lr:g}: largest gradient per block")
    for ax in axes.flat:
        ax.legend(fontsize=7)
    net = config.net
    fig.suptitle(f"robust ResNet Fig. 2 analogue: {config.dataset}, {net.depth} blocks with batch norm, "
                 f"SGD momentum {config.train.momentum:g}, {config.train.epochs} epochs", fontsize=10)
    fig.tight_layout()
    groups = {}
    for (lr, h), run in result.runs.items():
        groups[f"lr={lr:g}/h={h:g}"] = {"grad_norms": run.grad_norms, "weight_norms": run.weight_norms,
                                        "train_loss": run.train_loss, "test_accuracy": run.test_accuracy,
                                        "diverged": run.diverged, "h": h, "lr": lr,
                                        "layer_names": ",".join(run.layer_names)}
    attrs = {"paper": "robust ResNet Fig. 2 (digits analogue)", "fast": fast, "config": asdict(config),
             "shown_layers": f"{second},{last}"}
    return save_outputs(fig, out_dir, NAME, groups, attrs=attrs)
