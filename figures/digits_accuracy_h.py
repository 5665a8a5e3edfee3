"""Robust ResNet Fig. 9 on CPU: test accuracy against h (log scale) on digits for a shallow and a deep
batch-norm MLP ResNet, median +- population std over trials (ddof = 0), the paper's statistics."""
from __future__ import annotations

from pathlib import Path

SUMMARY = ("robust Fig. 9 analogue: digits test accuracy vs h, a shallow and a deep MLP ResNet "
           "(h 0.001..20 at 10 and 50 blocks; --fast: h 0.01..10 at 8 and 32 blocks)")
NAME = "robust_fig9_digits"


def settings(fast: bool):
    """The GridConfig of this figure (nets.companion.presets.digits_h)."""
    from nets.companion import presets

    return presets.digits_h(fast)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.smooth_accuracy_synthetic import make_grid_figure

    config = settings(fast)
    depths = " and ".join(str(d) for d in config.depths)
    title = f"robust ResNet Fig. 9 analogue: digits, {depths} blocks, {config.trials} trials per h"
    return make_grid_figure(config, NAME, title, out_dir, fast, results, "robust ResNet Fig. 9 (digits analogue)",
                            statistic="median", log_h=True)
