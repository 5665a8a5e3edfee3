"""Zhang & Wynter Fig. 6: feature propagation of the synthetic 2-D data, batch norm h=1, 100 layers."""
from __future__ import annotations

from pathlib import Path

SUMMARY = "smooth Fig. 6: feature propagation, batch norm h=1, 100 layers"
NAME = "smooth_fig6"
KEY = "batchnorm"


def settings(fast: bool):
    """The PropagationConfig of this figure (nets.companion.presets.propagation)."""
    from nets.companion import presets

    return presets.propagation(KEY, fast)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.propagation import make_propagation

    return make_propagation(KEY, NAME, out_dir, fast, config=settings(fast))
