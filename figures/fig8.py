"""Fig. 8 of the main paper (section 4.2.2): the panels of Fig. 7 for PreResNet-56 and PreResNet-110.

Per depth: training/test error against the epoch (mean +- std over seeds) for two survival probabilities
p of (4.2), then one run's training (T) and validation (V) loss and accuracy. Rows appear for the depths
whose runs are present.
"""
from __future__ import annotations

from pathlib import Path

from figures.fig7 import DEEP_MODELS, make_curves

SUMMARY = "Fig. 8: PreResNet-56/110 learning curves, mean +- std for two p, and train vs test of one run (from sweep results)"
MODELS = DEEP_MODELS


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot Fig. 8 from sweep results; `fast` changes nothing (the numbers are read, not computed)."""
    return make_curves(out_dir, results, "fig8", lambda model: model in MODELS, MODELS)
