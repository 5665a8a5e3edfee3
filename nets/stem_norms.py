"""How far training moved a network's stem: the norm of the stem convolution's weight when training started and in
the checkpoint, as the network has it and in its unit-step (h = 1) terms.

When every branch starts with BatchNorm, the network with a uniform step factor h is the h = 1 network with its stem
W divided by h, trained at lr / h^2 (nets.models.step_factor; docs/models.md, "What a uniform h is when the branches
start with BatchNorm"). In those terms ||W|| / h is the size of the stream that every step h F(X_k) is taken
against, so a stem that training grows shortens the flow nets.flow_steps measures (docs/experiments.md section 8).
The start is rebuilt from the run's configuration and seed exactly as training built it (nets.trainer.initial_model);
nothing of it is stored in the run.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from nets.trained_run import TrainedRun


@dataclass(frozen=True)
class StemNorms:
    """Frobenius norms of a stem convolution's weight.

    Attributes:
        start: when training started.
        end: in the checkpoint.
        unit_step_start, unit_step_end: the same in the unit-step equivalent's terms (||W|| / h for a
            pre-activation network with uniform h); None where nets.models.step_factor does not cover the model.
    """

    start: float
    end: float
    unit_step_start: float | None
    unit_step_end: float | None

    @property
    def growth(self) -> float:
        """end / start: how many times larger training left the stem (the same in both terms)."""
        return self.end / self.start


def stem_weight_norm(model: "nn.Module") -> float | None:
    """||W|| of model.stem's weight (float64 sum of squares), or None for a model without a stem convolution."""
    import torch

    stem = getattr(model, "stem", None)
    weight = getattr(stem, "weight", None)
    if not isinstance(weight, torch.Tensor):
        return None
    return float(weight.detach().double().norm())


def unit_step_factor(model: "nn.Module") -> float | None:
    """The factor that turns model's stem weight into its unit-step equivalent's (h^e, with e the stem's exponent in
    nets.models.step_factor.step_factor_rescaling: 1 / h for pre-activation networks), or None where the identity
    does not cover the model (or its blocks have different h)."""
    from nets.models.step_factor import step_factor_rescaling, uniform_step_factor

    try:
        exponent = step_factor_rescaling(model).exponents.get("stem.weight")
        h = uniform_step_factor(model)
    except ValueError:
        return None
    return None if exponent is None else h**exponent


def stem_norms(start_model: "nn.Module", end_model: "nn.Module") -> StemNorms | None:
    """StemNorms of two states of one network (the same architecture and h); None when it has no stem convolution.

    Raises:
        ValueError: only one of the two models has a stem, or a start norm of zero (growth undefined).
    """
    start, end = stem_weight_norm(start_model), stem_weight_norm(end_model)
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValueError("start_model and end_model must both have a stem convolution, or neither")
    if start == 0.0:
        raise ValueError("start_model's stem weight must not be zero")
    factor = unit_step_factor(end_model)
    return StemNorms(start=start, end=end, unit_step_start=None if factor is None else start * factor,
                     unit_step_end=None if factor is None else end * factor)


def initial_weights(trained: "TrainedRun") -> "nn.Module":
    """trained's network (nets.trained_run.TrainedRun) as its run started training (nets.trainer.initial_model),
    leaving the torch, numpy and random global states as they were."""
    import torch

    from nets.trainer import initial_model

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            return initial_model(trained.config, trained.dataset)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
