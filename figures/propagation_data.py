"""Zhang & Wynter Fig. 1: the synthetic non-linearly separable binary data of the propagation figures,
training set (left) and test set (right), with the curve that separates the classes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY = "smooth Fig. 1: the synthetic non-linearly separable 2-D binary data (train and test)"
NAME = "smooth_fig1"


def settings(fast: bool) -> dict:
    """The data of the propagation figures (nets.companion.presets.propagation) and its generator's curve."""
    from nets.companion import presets

    config = presets.propagation("plain", fast)
    return {"n_train": config.n_train, "n_test": config.n_test, "seed": config.data_seed}


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    import matplotlib.pyplot as plt

    from figures.output import save_outputs
    from figures.propagation import scatter_layer
    from nets.companion.datasets import sine_boundary, synthetic_binary

    s = settings(fast)
    data = synthetic_binary(s["n_train"], s["n_test"], seed=s["seed"])
    p = data.params
    x1 = np.linspace(-1, 1, 400)
    curve = sine_boundary(x1, p["amplitude"], p["frequency"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, x, y, title in ((axes[0], data.x_train, data.y_train, f"training data ({len(data.x_train)} points)"),
                            (axes[1], data.x_test, data.y_test, f"test data ({len(data.x_test)} points)")):
        scatter_layer(ax, x, y, title)
        ax.plot(x1, curve, "k--", lw=0.8)
        ax.set_aspect("equal")
    fig.suptitle(f"Zhang & Wynter Fig. 1: label 1 above x2 = {p['amplitude']:g} sin({p['frequency']:g} pi x1), "
                 f"gap {p['margin']:g}", fontsize=10)
    fig.tight_layout()
    groups = {"train": {"x": data.x_train, "y": data.y_train}, "test": {"x": data.x_test, "y": data.y_test},
              "boundary": {"x1": x1, "x2": curve}}
    return save_outputs(fig, out_dir, NAME, groups, attrs={"paper": "Zhang & Wynter Fig. 1", "fast": fast, **p})
