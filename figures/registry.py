"""The list of figures: name -> module. Each module defines

    SUMMARY: str                      one line for `python -m figures list`
    def make(out_dir: Path, fast: bool, results: Path | None) -> list[Path]

`make` computes (or loads) its numbers, plots them and returns the files written. When the numbers
need training runs that are not present it raises figures.output.MissingResults with the command
that produces them.
"""
from __future__ import annotations

import importlib
from types import ModuleType

# name -> module path; order is the order of `python -m figures all`.
FIGURES: dict[str, str] = {
    # main paper, section 4.2 (from sweep results: python -m nets.sweep)
    "table1": "figures.table1",
    "fig6": "figures.fig6",
    "fig7": "figures.fig7",
    "fig8": "figures.fig8",
    # LM-ResNet paper (from sweep results)
    "lm_table": "figures.lm_table",
    "lm_coefficients": "figures.lm_coefficients",
    # robust-ResNet paper, CIFAR version (from sweep results)
    "robust_cifar": "figures.robust_cifar",
}


def figure_names() -> list[str]:
    return list(FIGURES)


def load(name: str) -> ModuleType:
    """Import the module of figure `name`; ValueError naming the allowed names otherwise."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES) or '(none yet)'}, all, list")
    return importlib.import_module(FIGURES[name])
