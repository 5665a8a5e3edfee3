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
    # main paper, section 4.1: 1-D loss landscapes (landscape package, seconds on a CPU)
    "fig3": "figures.fig3",
    "fig4": "figures.fig4",
    "fig5": "figures.fig5",
    # ... and for the network the SDE models: K dropout blocks, exactly (landscape.network, seconds)
    "network_landscape": "figures.network_landscape",
    # main paper, section 4.2 (from sweep results: python -m nets.sweep)
    "table1": "figures.table1",
    # ... and what the runs still missing from it should give, written down before they train
    "table1_forecast": "figures.table1_forecast",
    "fig6": "figures.fig6",
    "fig7": "figures.fig7",
    "fig8": "figures.fig8",
    # main paper, section 3.4: the noise kinds at matched eps (from sweep results)
    "noise_kinds": "figures.noise_kinds",
    # ... and at fixed trained weights: the eps^2 law of J_eps - J_0 (from saved nets.noise_response measurements)
    "noise_curvature": "figures.noise_curvature",
    # ... and against the size of a mask's jumps at fixed variance (from saved nets.two_point_masks measurements)
    "noise_jumps": "figures.noise_jumps",
    # ... and against the dose of training noise: c at one eps against the p the networks trained with
    "noise_dose": "figures.noise_dose",
    # ... and each network under its own noise against the others at fixed weights, paired by training seed
    "noise_own": "figures.noise_own",
    # ... and the same question answered exactly in the 1-D flow (kolmogorov.two_point, seconds)
    "flow_jumps": "figures.flow_jumps",
    # LM-ResNet paper (from sweep results)
    "lm_table": "figures.lm_table",
    "lm_coefficients": "figures.lm_coefficients",
    "lm_curves": "figures.lm_curves",
    "lm_parameters": "figures.lm_parameters",
    # LM-ResNet paper section 3.2, computed: stochastic depth as an SDE (kolmogorov, seconds)
    "stochastic_depth_sde": "figures.stochastic_depth_sde",
    # robust-ResNet paper, CIFAR version (from sweep results)
    "robust_cifar": "figures.robust_cifar",
    "robust_noise_cifar": "figures.robust_noise_cifar",
    "robust_grad_norms_cifar": "figures.robust_grad_norms_cifar",
    # ... and where each branch's gradient comes from, at a run's start and end (saved nets.branch_gradients)
    "branch_gradients": "figures.branch_gradients",
    # companion papers on CPU: robust ResNet (Zhang et al.) and smooth propagation (Zhang & Wynter)
    "robust_fig1": "figures.euler_steps",
    "smooth_fig1": "figures.propagation_data",
    "smooth_fig2": "figures.propagation_plain",
    "smooth_fig3": "figures.propagation_plain_h01",
    "smooth_fig4": "figures.propagation_shrinkage",
    "smooth_fig5": "figures.propagation_shrinkage_h01",
    "smooth_fig6": "figures.propagation_batchnorm",
    "smooth_fig7": "figures.propagation_batchnorm_h01",
    "smooth_fig8": "figures.smooth_accuracy_synthetic",
    "smooth_fig9": "figures.smooth_accuracy_wine",
    "robust_fig7": "figures.moons_filtering",
    "robust_fig2": "figures.gradient_norms",
    "robust_fig9_digits": "figures.digits_accuracy_h",
    "robust_fig8_digits": "figures.digits_noise",
}


def figure_names() -> list[str]:
    return list(FIGURES)


def load(name: str) -> ModuleType:
    """Import the module of figure `name`; ValueError naming the allowed names otherwise."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES) or '(none yet)'}, all, list")
    return importlib.import_module(FIGURES[name])
