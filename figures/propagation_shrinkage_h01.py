"""Zhang & Wynter Fig. 5: feature propagation of the synthetic 2-D data, shrinkage blocks h=0.1, 500 layers."""
from __future__ import annotations

from pathlib import Path

SUMMARY = "smooth Fig. 5: feature propagation, shrinkage blocks h=0.1, 500 layers"
NAME = "smooth_fig5"
KEY = "shrinkage_h01"


def settings(fast: bool):
    """The PropagationConfig of this figure (nets.companion.presets.propagation)."""
    from nets.companion import presets

    return presets.propagation(KEY, fast)


def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]:
    from figures.propagation import make_propagation

    return make_propagation(KEY, NAME, out_dir, fast, config=settings(fast))
