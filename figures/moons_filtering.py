"""Robust ResNet Fig. 7: noisy two-moons test features through a vanilla ResNet (no BN) with h = 1.0 and h = 0.1,
and the per-layer amplification of input perturbations that its eqs. (11)-(12) bound."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

SUMMARY = "robust Fig. 7: two-moons noise filtering through the layers, h = 1.0 vs 0.1, with noise amplification"
NAME = "robust_fig7"


def settings(fast: bool):
    """The two PropagationConfigs of this figure (nets.companion.presets.moons_filtering)."""
    from nets.companion import presets

    return presets.moons_filtering(fast)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from figures.propagation import fast_note, propagation_groups, scatter_layer
    from nets.companion.experiments import run_propagation

    configs = settings(fast)
    runs = [run_propagation(c, progress=True) for c in configs]
    n = max(len(r.layers) for r in runs)
    fig, axes = plt.subplots(len(runs), n + 1, figsize=(2.3 * (n + 1), 2.4 * len(runs)), squeeze=False)
    data = configs[0].data()
    scatter_layer(axes[0, 0], data.x_train, data.y_train, f"training data (noise {configs[0].noise:g})")
    for row, run in enumerate(runs):
        for col, (k, feats, acc) in enumerate(zip(run.layers, run.features, run.probe_accuracy)):
            scatter_layer(axes[row, col + 1], feats, run.labels, f"h={run.config.net.h:g}: layer {k}, probe {acc:.2f}")
        for ax in axes[row, len(run.layers) + 1:]:
            ax.set_visible(False)
    growth_ax = axes[1, 0] if len(runs) > 1 else axes[0, 0]
    for run in runs:
        if run.perturbation_growth is not None:
            growth_ax.semilogy(np.arange(len(run.perturbation_growth)), run.perturbation_growth,
                               label=f"h={run.config.net.h:g} (test acc {run.test_accuracy:.2f})")
    growth_ax.set_title(f"||y_k(x+d) - y_k(x)|| / ||d||, std(d)={configs[0].perturbation_std:g}", fontsize=7)
    growth_ax.set_xlabel("layer k", fontsize=7)
    growth_ax.tick_params(labelsize=6)
    growth_ax.legend(fontsize=6)
    fig.suptitle(f"robust ResNet Fig. 7: noisy two moons, vanilla ResNet (no BN), {configs[0].net.depth} blocks"
                 + (fast_note(configs[0].train, configs[0].n_train) if fast else ""), fontsize=10)
    fig.tight_layout()
    groups: dict[str, dict] = {"training_data": {"x": data.x_train, "y": data.y_train}}
    for run in runs:
        tag = f"h={run.config.net.h:g}"
        for key, content in propagation_groups(run).items():
            groups[f"{tag}/{key}"] = content
        groups[f"{tag}/noise_amplification"] = {"perturbation_growth": run.perturbation_growth,
                                                "perturbation_std": run.config.perturbation_std}
    attrs = {"paper": "robust ResNet Fig. 7", "fast": fast, "configs": [asdict(c) for c in configs]}
    return save_outputs(fig, out_dir, NAME, groups, attrs=attrs)
