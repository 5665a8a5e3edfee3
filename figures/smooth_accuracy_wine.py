"""Zhang & Wynter Fig. 9: test accuracy against h on Wine, 20 blocks of width 13, mean +- population std over
trials (ddof = 0)."""
from __future__ import annotations

from pathlib import Path

SUMMARY = "smooth Fig. 9: test accuracy vs h on Wine, 20 blocks of width 13, residual / batch norm / shrinkage"
NAME = "smooth_fig9"


def settings(fast: bool):
    """The GridConfig of this figure (nets.companion.presets.smooth_wine)."""
    from nets.companion import presets

    return presets.smooth_wine(fast)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.smooth_accuracy_synthetic import make_grid_figure

    config = settings(fast)
    title = f"Zhang & Wynter Fig. 9: Wine, {config.depths[0]} blocks, {config.trials} trials per h"
    return make_grid_figure(config, NAME, title, out_dir, fast, results, "Zhang & Wynter Fig. 9")
