"""MLP ResNets of the companion papers: residual and shrinkage blocks on feature vectors.

Smooth-propagation paper (Zhang & Wynter):

* residual block, eq. (7):  y_{i+1} = y_i + h (K2 sigma(K1 y_i + b1) + b2);
* shrinkage block, eq. (8): y_{i+1} = y_i - h (K1^T sigma(K1 y_i + b1) + b2), whose Jacobian of
  the residual map, -K1^T diag(sigma') K1, has real eigenvalues <= 0 (Prop. 2).

K1, K2 are width x width. With ``batch_norm=True`` a BatchNorm1d normalizes the hidden
pre-activation, sigma(BN(K1 y + b1)) (the Linear-BN-activation order of batch-normalized ResNets;
b1 is then absorbed by BN's shift). The state y_i stays un-normalized, so the features remain
comparable across layers for the propagation plots, and in eval mode the shrinkage Jacobian is
-K1^T diag(sigma' * gamma / sqrt(var + eps)) K1: Prop. 2 still holds whenever the BN scales
gamma are >= 0 (they start at 1).

Noise (mask after the branch's last layer), stochastic depth and h are those of every residual
family (:class:`nets.models.blocks.ResidualBlock`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from kolmogorov._checks import check_choice
from nets.models.base import ResidualOptions, ResidualSDEModel, check_positive_int
from nets.models.blocks import ResidualBlock
from nets.models.noise import linear_decay_survival

MLP_BLOCKS = ("residual", "shrinkage")
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class MLPResNetConfig(ResidualOptions):
    """An MLP ResNet.

    Attributes:
        in_features: input dimension (2 for the 2-D figures).
        num_classes: number of logits (default 2).
        width: feature dimension; None: width = in_features and y_0 = x (no opening layer),
            otherwise y_0 = W x + b (a linear opening layer).
        depth: number of residual blocks K.
        block: "residual" (eq. 7) or "shrinkage" (eq. 8).
        batch_norm: BatchNorm1d on the hidden pre-activation of every block.
        activation: "relu" or "tanh" (sigma).
    """

    num_classes: int = 2
    in_features: int = 2
    width: int | None = None
    depth: int = 10
    block: str = "residual"
    batch_norm: bool = False
    activation: str = "relu"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "in_features", check_positive_int(self.in_features, "in_features"))
        if self.width is not None:
            object.__setattr__(self, "width", check_positive_int(self.width, "width"))
        object.__setattr__(self, "depth", check_positive_int(self.depth, "depth"))
        check_choice("block", self.block, MLP_BLOCKS)
        if not isinstance(self.batch_norm, (bool, np.bool_)):
            raise ValueError(f"batch_norm must be True or False (a Python or numpy bool); got {self.batch_norm!r}")
        object.__setattr__(self, "batch_norm", bool(self.batch_norm))
        check_choice("activation", self.activation, ACTIVATIONS)

    @property
    def features(self) -> int:
        """The width of the residual flow."""
        return self.in_features if self.width is None else self.width


class ResidualMLPBranch(nn.Module):
    """F(y) = K2 sigma(K1 y + b1) + b2 (eq. 7), BN on K1 y + b1 if asked."""

    def __init__(self, width: int, activation: str, batch_norm: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self.act = ACTIVATIONS[activation]()
        self.linear2 = nn.Linear(width, width)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.act(self.norm(self.linear1(y))))


class ShrinkageMLPBranch(nn.Module):
    """F(y) = -(K1^T sigma(K1 y + b1) + b2) (eq. 8): the transposed weight closes the branch."""

    def __init__(self, width: int, activation: str, batch_norm: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
        self.act = ACTIVATIONS[activation]()
        self.bias2 = nn.Parameter(torch.zeros(width))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.norm(self.linear1(y)))
        return -(F.linear(hidden, self.linear1.weight.t()) + self.bias2)


class MLPResNet(ResidualSDEModel):
    """y_0 = x (or W x + b), y_{i+1} = y_i + h D_i(M_i(F_i(y_i))), logits = fc(y_K).

    ``forward(x, return_features=True)`` also returns the list [y_0, ..., y_K] of (N, width)
    tensors, for the propagation plots of the smooth-propagation paper (its Figs. 2-7).
    """

    def __init__(self, config: MLPResNetConfig) -> None:
        super().__init__(config, num_blocks=config.depth)
        width = config.features
        self.opening = nn.Identity() if config.width is None else nn.Linear(config.in_features, width)
        branch_cls = ResidualMLPBranch if config.block == "residual" else ShrinkageMLPBranch
        survival = linear_decay_survival(config.stochastic_depth, config.depth)
        self.blocks = nn.ModuleList(
            ResidualBlock(branch_cls(width, config.activation, config.batch_norm), nn.Identity(),
                          noise=config.noise_spec, survival=survival[i], h=config.h,
                          stochastic_depth_mode=config.stochastic_depth_mode)
            for i in range(config.depth))
        self.fc = nn.Linear(width, config.num_classes)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits (N, num_classes) of x (N, in_features); with ``return_features`` also [y_0..y_K]."""
        if x.dim() != 2 or x.shape[1] != self.config.in_features:
            raise ValueError(f"x must have shape (N, {self.config.in_features}); got {tuple(x.shape)}")
        y = self.opening(x)
        features = [y]
        for block in self.blocks:
            y = block(y)
            features.append(y)
        logits = self.fc(y)
        return (logits, features) if return_features else logits
