"""In a pre-activation network a uniform step factor h is the scale of the stem, nothing else.

The pre-activation networks here (PreResNet, eq. (4.2) of the main paper; the LM-ResNet, eq. (1) of its paper;
shake-shake, eq. (3.15)) compute X_0 = W y (the stem, a convolution without bias), then
X_{k+1} = S_k X_k + h F_k(X_k) (or the LM update, linear in the past states), then T(X_K). Every branch F_k
and the head T start with BatchNorm, and BatchNorm sees the scale of its input only through its eps:
BN(c x; eps) = BN(x; eps / c^2) for c > 0, with batch statistics (training) and with running statistics
c mean and c^2 var (evaluation). With Y_k = X_k / h the flow becomes

    Y_0 = (W / h) y,    Y_{k+1} = S_k Y_k + F_k(Y_k),    logits = T(Y_K),

the h = 1 network whose stem is W / h and whose BatchNorm layers that see the stream (each branch's first
and the head's) have eps / h^2 and running statistics mean / h, var / h^2. The layers inside the branches see
the same activations in both and are unchanged. So the two are one function of the same parameters, in
training and in evaluation, noise masks and dropped blocks included (they multiply F_k, which is the same).

Under SGD with momentum mu and weight decay lambda (the trainer's optimizer) the identity holds through
training: the h network's stem W is W' = W / h of the h = 1 network trained at learning rate lr / h^2 and
weight decay lambda h^2 (its momentum buffer h times W's), every other parameter as before. A uniform h is
therefore the stem's initial scale and learning rate: larger h shrinks the stem's share of block 0's step,
X_0 against h F_0(X_0), and leaves the later blocks' relative steps ||h F_k|| / ||S_k X_k|| to training.
docs/models.md, "What a uniform h is in a pre-activation network"; tests/test_step_factor_stem_scale.py.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from nets.models.blocks import PreActBasicBranch, PreActBottleneckBranch, ResidualBlock, check_h
from nets.models.preresnet import PreActNet
from nets.models.shake import ShakeBranches


def stream_batchnorms(model: PreActNet) -> list[nn.BatchNorm2d]:
    """The BatchNorm layers whose input is the stream X_k: each branch's first, then the head's.

    Raises:
        ValueError: a model that is not a pre-activation network, or a branch of another kind.
    """
    if not isinstance(model, PreActNet):
        raise ValueError(f"model must be a pre-activation network (PreResNet, LM-PreResNet, shake-shake); "
                         f"got {type(model).__name__}")
    norms: list[nn.BatchNorm2d] = []
    for block in model.blocks:
        branch = block.branch
        if isinstance(branch, (PreActBasicBranch, PreActBottleneckBranch)):
            norms.append(branch.bn1)
        elif isinstance(branch, ShakeBranches):
            norms.extend([branch.branch1.bn1, branch.branch2.bn1])
        else:
            raise ValueError(f"branch must start with BatchNorm (a pre-activation branch); got {type(branch).__name__}")
    return norms + [model.bn]


def uniform_step_factor(model: PreActNet) -> float:
    """The h shared by every block of `model`.

    Raises:
        ValueError: blocks with different h (the identity of this module needs one h for all).
    """
    steps = {float(block.h) for block in model.blocks if isinstance(block, ResidualBlock)}
    if len(steps) != 1:
        raise ValueError(f"every block must have the same step factor h; got {sorted(steps)}")
    return steps.pop()


def unit_step_equivalent(model: PreActNet) -> PreActNet:
    """A copy of `model` with h = 1 that computes the same logits: stem W / h, and the stream's BatchNorm layers
    at eps / h^2 with running mean / h and running var / h^2 (module docstring). `model` is not changed.

    Raises:
        ValueError: not a pre-activation network, or blocks with different h.
    """
    stream_batchnorms(model)  # refuses a network the identity does not hold for
    h = uniform_step_factor(model)
    equivalent = copy.deepcopy(model)
    with torch.no_grad():
        equivalent.stem.weight.div_(h)
        for norm in stream_batchnorms(equivalent):
            norm.eps = norm.eps / h**2
            norm.running_mean.div_(h)
            norm.running_var.div_(h**2)
    for block in equivalent.blocks:
        block.h = 1.0
    equivalent.config = dataclasses.replace(model.config, h=1.0)
    return equivalent


def unit_step_sgd_groups(equivalent: PreActNet, h: float, lr: float, weight_decay: float) -> list[dict]:
    """Parameter groups for torch.optim.SGD that train `equivalent` (from unit_step_equivalent) step for step
    as the h network trains at (lr, weight_decay): the stem at lr / h^2 and weight decay weight_decay * h^2.

    Raises:
        ValueError: h not a finite float > 0.
    """
    h = check_h(h)
    stem = equivalent.stem.weight
    return [{"params": [p for p in equivalent.parameters() if p is not stem], "lr": lr, "weight_decay": weight_decay},
            {"params": [stem], "lr": lr / h**2, "weight_decay": weight_decay * h**2}]
