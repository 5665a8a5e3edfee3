"""Where a uniform step factor h goes when every branch is invariant to the scale of its input.

BatchNorm sees the scale of its input only through its eps: BN(c u; eps) = BN(u; eps / c^2) for c > 0, with
batch statistics (training) and with running statistics c mean, c^2 var (evaluation). A branch that applies
BatchNorm to its input, or to a linear map of it, therefore gives F_k(c X) = F_k(X) (a bias before the
BatchNorm scaled with it). Then in X_{k+1} = S_k X_k + h F_k(X_k) (robust-ResNet paper eq. (4); main paper
(3.1) with step factor h; the LM update, linear in its past states, likewise) the rescaled stream Y_k = X_k / h
runs the h = 1 flow, Y_{k+1} = S_k Y_k + F_k(Y_k), and h is carried by the layers before and after the flow:

* pre-activation networks (PreResNet, eq. (4.2) of the main paper; LM-ResNet; shake-shake), whose branches
  and head start with BatchNorm: the stem W becomes W / h, and nothing else;
* MLP ResNets with batch_norm=True (smooth-propagation paper eqs. (7)-(8), BatchNorm on K1 y + b1) and an
  opening layer: the opening's weight and bias and every b1 become / h, the classifier's weight h times.
  Without an opening layer (y_0 = x) the input itself carries h: the h network on x is the h = 1 network,
  b1 / h and classifier h times, on x / h; no parameter can carry that, so unit_step_equivalent refuses it.

The BatchNorm layers whose input carries the factor h get eps / h^2 and running statistics mean / h, var / h^2
(eps stays the same fraction of their input's variance); the layers inside the branches see the same
activations in both networks and are unchanged. The two networks are one function of the same parameters, in
training and in evaluation, noise masks and dropped blocks included (they multiply F_k, which is the same).
Under SGD with momentum and weight decay the identity holds through training: a parameter rescaled to h^e
times itself trains at h^(2e) times the learning rate and h^(-2e) times the weight decay (its momentum buffer
h^(-e) times the original's). docs/models.md, "What a uniform h is when the branches start with BatchNorm";
tests/test_step_factor_equivalent.py.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from nets.models.blocks import PreActBasicBranch, PreActBottleneckBranch, check_h
from nets.models.mlp import MLPResNet
from nets.models.preresnet import PreActNet
from nets.models.shake import ShakeBranches


@dataclass(frozen=True)
class StepFactorRescaling:
    """What the h = 1 network equivalent to a uniform h changes.

    Attributes:
        exponents: parameter name -> e: the parameter is h^e times the original's in the h = 1 network.
        batchnorms: names of the BatchNorm modules whose input carries the factor h (eps / h^2, running
            mean / h, running var / h^2).
    """

    exponents: dict[str, int]
    batchnorms: tuple[str, ...]


def _preact_batchnorms(model: PreActNet) -> list[str]:
    names = []
    for k, block in enumerate(model.blocks):
        branch = block.branch
        if isinstance(branch, (PreActBasicBranch, PreActBottleneckBranch)):
            names.append(f"blocks.{k}.branch.bn1")
        elif isinstance(branch, ShakeBranches):
            names += [f"blocks.{k}.branch.branch1.bn1", f"blocks.{k}.branch.branch2.bn1"]
        else:
            raise ValueError(f"branch must start with BatchNorm (a pre-activation branch); got {type(branch).__name__}")
    return names + ["bn"]


def step_factor_rescaling(model: nn.Module) -> StepFactorRescaling:
    """Which parameters and BatchNorm layers carry h in `model`'s family (module docstring).

    Raises:
        ValueError: a network whose branches are not invariant to the scale of their input (an MLP ResNet
            without batch_norm), an MLP ResNet without an opening layer (there h is the input's own scale),
            or a model of another kind.
    """
    if isinstance(model, PreActNet):
        return StepFactorRescaling({"stem.weight": -1}, tuple(_preact_batchnorms(model)))
    if isinstance(model, MLPResNet):
        if not model.config.batch_norm:
            raise ValueError("batch_norm must be True: without BatchNorm the branches of an MLP ResNet are not "
                             "invariant to the scale of their input, and h changes the flow itself")
        if model.config.width is None:
            raise ValueError("width must be given (an opening layer): without one, h is the scale of the input (the h "
                             "network on x is the h = 1 network on x / h), which no parameter can carry")
        exponents = {"opening.weight": -1, "opening.bias": -1, "fc.weight": 1}
        exponents.update({f"blocks.{k}.branch.linear1.bias": -1 for k in range(len(model.blocks))})
        return StepFactorRescaling(exponents, tuple(f"blocks.{k}.branch.norm" for k in range(len(model.blocks))))
    raise ValueError(f"model must be a pre-activation network (PreResNet, LM-PreResNet, shake-shake) or an MLP "
                     f"ResNet with batch_norm; got {type(model).__name__}")


def rescale_batchnorm_input(norm: nn.modules.batchnorm._BatchNorm, h: float) -> None:
    """Make `norm` compute on u / h what it computed on u: eps / h^2, running mean / h, running var / h^2 (in place)."""
    norm.eps = norm.eps / h**2
    with torch.no_grad():
        norm.running_mean.div_(h)
        norm.running_var.div_(h**2)


def uniform_step_factor(model: nn.Module) -> float:
    """The h shared by every block of `model`.

    Raises:
        ValueError: blocks with different h (the identity needs one h for all).
    """
    steps = {float(block.h) for block in model.blocks}
    if len(steps) != 1:
        raise ValueError(f"every block must have the same step factor h; got {sorted(steps)}")
    return steps.pop()


def unit_step_equivalent(model: nn.Module) -> nn.Module:
    """A copy of `model` with h = 1 that computes the same logits (module docstring); `model` is not changed.

    Raises:
        ValueError: a model the identity does not cover (step_factor_rescaling), or blocks with different h.
    """
    rescaling = step_factor_rescaling(model)
    h = uniform_step_factor(model)
    equivalent = copy.deepcopy(model)
    parameters = dict(equivalent.named_parameters())
    modules = dict(equivalent.named_modules())
    with torch.no_grad():
        for name, exponent in rescaling.exponents.items():
            parameters[name].mul_(h**exponent)
        for name in rescaling.batchnorms:
            rescale_batchnorm_input(modules[name], h)
    for block in equivalent.blocks:
        block.h = 1.0
    equivalent.config = dataclasses.replace(model.config, h=1.0)
    return equivalent


def unit_step_sgd_groups(equivalent: nn.Module, h: float, lr: float, weight_decay: float) -> list[dict]:
    """Parameter groups for torch.optim.SGD that train `equivalent` (from unit_step_equivalent) step for step
    as the h network trains at (lr, weight_decay): a parameter rescaled by h^e at lr h^(2e), decay h^(-2e).

    Raises:
        ValueError: h not a finite float > 0, or a model step_factor_rescaling refuses.
    """
    h = check_h(h)
    exponents = step_factor_rescaling(equivalent).exponents
    groups: dict[int, list[nn.Parameter]] = {}
    for name, parameter in equivalent.named_parameters():
        groups.setdefault(exponents.get(name, 0), []).append(parameter)
    return [{"params": params, "lr": lr * h ** (2 * e), "weight_decay": weight_decay * h ** (-2 * e)}
            for e, params in sorted(groups.items())]
