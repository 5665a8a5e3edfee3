"""Pre-activation residual blocks with the noise layer, stochastic depth and step factor h.

One block is one step of the noisy residual flow (main paper (3.1), (4.2); robust-ResNet
paper eq. (4)):

    X_{k+1} = S X_k + h * D_k( M_k( F(X_k) ) ),

with F the residual branch (BN-ReLU-conv-BN-ReLU-conv, or the 1x1-3x3-1x1 bottleneck), M_k the
multiplicative noise layer after the branch's last convolution (Fig. 1), D_k stochastic depth
(per sample, or, in "batch" mode, the whole block for the whole mini-batch: a dropped block is
X_{k+1} = S X_k and its branch is not computed) and S the shortcut: the identity, or a 1x1 strided convolution (no bias, no BN; the projection
shortcut of bearpaw/pytorch-classification) at stage transitions. The regularizers are
composed into :class:`ResidualBlock`; there is no forked block class per regularizer.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nets.models.noise import DropPath, MultiplicativeNoise, NoiseSpec


def check_h(h: float, option: str = "h") -> float:
    """Validate the step factor h > 0 (robust-ResNet paper eq. (4)): a real number, not a bool or a string."""
    if isinstance(h, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{option} must be a finite float > 0; got {h!r}")
    try:
        value = float(h)
    except (TypeError, ValueError):
        raise ValueError(f"{option} must be a finite float > 0; got {h!r}") from None
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{option} must be a finite float > 0; got {h!r}")
    return value


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBasicBranch(nn.Module):
    """F(x) = conv2(relu(bn2(conv1(relu(bn1(x)))))): the branch of (4.2), w2 a(w1 a(x))."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(out)))


class PreActBottleneckBranch(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3 (strided), BN-ReLU-1x1 to 4 planes."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return self.conv3(self.relu(self.bn3(out)))


def projection(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Shortcut S: identity when shapes agree, else a strided 1x1 convolution (linear, no bias)."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ResidualBlock(nn.Module):
    """X_{k+1} = S X_k + h D_k(M_k(F(X_k))): one noisy Euler step, (3.1) with step factor h.

    Args:
        branch: the residual mapping F.
        shortcut: S (``nn.Identity`` or a projection).
        noise: the injection M_k after the branch's last convolution, or None.
        survival: stochastic-depth survival probability of this block (1.0: off).
        h: step factor (robust-ResNet paper eq. (4)); h = 1 is the plain ResNet.
        stochastic_depth_mode: "sample" (drop the branch per sample) or "batch" (drop the whole block
            for the whole mini-batch, without computing its branch); see :class:`DropPath`.
    """

    def __init__(self, branch: nn.Module, shortcut: nn.Module, noise: NoiseSpec | None = None,
                 survival: float = 1.0, h: float = 1.0, stochastic_depth_mode: str = "sample") -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.noise = MultiplicativeNoise(noise)
        self.drop_path = DropPath(survival, stochastic_depth_mode)
        self.h = check_h(h)

    def increment(self, x: torch.Tensor) -> torch.Tensor | None:
        """h D_k(M_k(F(x))): the noisy increment of the step, without the shortcut.

        None when "batch"-mode stochastic depth drops the block in this forward: the branch (its noise
        layer and BatchNorm layers included) is then not called at all, and the step is X_{k+1} = S X_k.
        The Bernoulli draw comes before the branch's own draws (noise mask, shake-shake alpha).
        """
        if self.drop_path.drops_blocks:
            if not self.drop_path.draw_keep(x):
                return None
            return self.h * self.drop_path.scale_kept(self.noise(self.branch(x)))
        return self.h * self.drop_path(self.noise(self.branch(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The shortcut first: autograd sums the gradients of x's consumers in the order they were used, so
        # calling it after the branch changed shake-shake gradients in the last bits (and bit-identical
        # reproduction of earlier runs); the shortcut draws no random numbers, so the draw order is unchanged.
        shortcut = self.shortcut(x)
        increment = self.increment(x)
        return shortcut if increment is None else shortcut + increment

    def extra_repr(self) -> str:
        return f"h={self.h:g}"
