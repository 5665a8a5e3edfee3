"""CPU experiments of the companion papers: Zhang & Wynter, "Smooth inter-layer propagation of stabilized
neural networks for classification" and Zhang et al., "Towards robust ResNet: a small step but a giant leap".

One module per job:

=============  ===========================================================================
datasets       synthetic 2-D binary data (Fig. 1), wine, two moons, digits; input noise
euler          explicit Euler on x' = -2.3 x (robust ResNet Fig. 1, eq. (3))
models         the residual / batch-norm / shrinkage MLP ResNets via nets.build_model (eqs. (7), (8))
trainer        a small seeded trainer recording per-layer gradient and weight norms
layer_norms    per-layer parameter groups and their norms
propagation    features at each layer, linear probes, step lengths, noise amplification
experiments    propagation runs (Figs. 2-7, robust Fig. 7) and gradient-norm runs (robust Fig. 2)
sweeps         accuracy over a grid of (variant, depth, h, input noise) and trials (Figs. 8-9)
presets        the settings of every figure, full and --fast
=============  ===========================================================================

Names are imported lazily so that `import nets.companion` does not load torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Dataset": "datasets", "synthetic_binary": "datasets", "wine": "datasets", "moons": "datasets",
    "digits": "datasets", "with_input_noise": "datasets", "load_dataset": "datasets",
    "EulerPath": "euler", "explicit_euler": "euler", "stability_limit": "euler", "is_stable": "euler",
    "NetSpec": "models", "build_net": "models", "VARIANTS": "models",
    "TrainConfig": "trainer", "TrainResult": "trainer", "train": "trainer", "accuracy": "trainer",
    "layer_groups": "layer_norms",
    "shown_layers": "propagation", "layer_features": "propagation", "linear_probe_accuracy": "propagation",
    "step_lengths": "propagation", "perturbation_growth": "propagation",
    "PropagationConfig": "experiments", "PropagationResult": "experiments", "run_propagation": "experiments",
    "GradientNormConfig": "experiments", "GradientNormResult": "experiments", "run_gradient_norms": "experiments",
    "GridConfig": "sweeps", "GridResult": "sweeps", "run_grid": "sweeps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"nets.companion.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'nets.companion' has no attribute {name!r}")
