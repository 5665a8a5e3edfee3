"""Shake-shake PreResNet-26 (Gastaldi 2017) as the noisy flow of the main paper, eq. (3.15).

    X_{k+1} = S X_k + alpha_k F1(X_k) + (1 - alpha_k) F2(X_k)
            = S X_k + (F1 + F2)/2 + (F1 - F2)/2 (2 alpha_k - 1),

alpha_k ~ U(0, 1) drawn per sample at every training forward, alpha = 1/2 at test (the
expectation, section 3.2): a weak approximation of (3.4) with eps = 1/sqrt(3K), K = 12 blocks.
Branches are pre-activation BasicBlock branches (BN-ReLU-conv-BN-ReLU-conv); depth 26 = 6 * 4 + 2,
stem 16 channels, stage widths (w, 2w, 4w) with w = ``width`` (default 32: "26 2x32d").
Shortcuts are the PreResNet's strided 1x1 projections (Gastaldi uses two average-pooled 1x1
paths; the projection keeps S linear and the family uniform).

``shake_backward``: "same" (default; the exact gradient of the sampled forward pass, the process
the SDE analysis describes) or "independent" (Gastaldi's Shake-Shake: the backward pass uses its
own beta ~ U(0, 1) per sample). The optional noise mask of the other families multiplies the
combined branch, X_{k+1} = S X_k + h D_k(M_k(alpha F1 + (1 - alpha) F2)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import kolmogorov
from nets.models.base import check_positive_int
from nets.models.blocks import PreActBasicBranch, ResidualBlock, projection
from nets.models.noise import draw_dtype, linear_decay_survival
from nets.models.preresnet import PreActNet, PreResNetConfig, blocks_per_stage

SHAKE_BACKWARDS = ("same", "independent")


def _mix(x1: torch.Tensor, x2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """alpha x1 + (1 - alpha) x2, in float32 for half-precision inputs and rounded once to their dtype."""
    dtype = torch.promote_types(x1.dtype, x2.dtype)
    if draw_dtype(dtype) != dtype:
        return (alpha * x1.float() + (1.0 - alpha) * x2.float()).to(dtype)
    return alpha * x1 + (1.0 - alpha) * x2


class _ShakeFunction(torch.autograd.Function):
    """alpha x1 + (1 - alpha) x2 forward; beta g, (1 - beta) g backward (in float32 for half g)."""

    @staticmethod
    def forward(ctx, x1: torch.Tensor, x2: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(beta)
        ctx.dtypes = (x1.dtype, x2.dtype)
        return _mix(x1, x2, alpha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (beta,) = ctx.saved_tensors
        g = grad.to(draw_dtype(grad.dtype))
        return (beta * g).to(ctx.dtypes[0]), ((1.0 - beta) * g).to(ctx.dtypes[1]), None, None


def shake(x1: torch.Tensor, x2: torch.Tensor, training: bool, backward: str = "same") -> torch.Tensor:
    """Combine two branch outputs by (3.15): per-sample alpha ~ U(0, 1) in training, 1/2 at test.

    For half-precision inputs (bf16 autocast) alpha and beta are drawn in float32 and the branches
    are combined in float32, rounded once to the input dtype: torch.rand in bfloat16 has mean
    0.498, not 1/2, which would weight F2 more in training than the 1/2 of test time.
    """
    if not training:
        return 0.5 * x1 + 0.5 * x2
    shape = (x1.shape[0],) + (1,) * (x1.dim() - 1)
    drawn = draw_dtype(x1.dtype)
    alpha = torch.rand(shape, dtype=drawn, device=x1.device)
    if backward == "same":
        return _mix(x1, x2, alpha)
    beta = torch.rand(shape, dtype=drawn, device=x1.device)
    return _ShakeFunction.apply(x1, x2, alpha, beta)


class ShakeBranches(nn.Module):
    """The residual map of a shake-shake block: two BasicBlock branches mixed by :func:`shake`."""

    def __init__(self, in_planes: int, planes: int, stride: int, backward: str) -> None:
        super().__init__()
        self.branch1 = PreActBasicBranch(in_planes, planes, stride)
        self.branch2 = PreActBasicBranch(in_planes, planes, stride)
        self.backward_mode = backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shake(self.branch1(x), self.branch2(x), self.training, self.backward_mode)


@dataclass(frozen=True)
class ShakePreResNetConfig(PreResNetConfig):
    """PreResNet options plus the base ``width`` and ``shake_backward`` ("same" | "independent")."""

    depth: int = 26
    width: int = 32
    shake_backward: str = "same"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "width", check_positive_int(self.width, "width"))
        if self.shake_backward not in SHAKE_BACKWARDS:
            raise ValueError(f"shake_backward must be one of {', '.join(SHAKE_BACKWARDS)}; "
                             f"got {self.shake_backward!r}")
        if self.block != "basic":
            raise ValueError(f"block must be 'basic' for shake-shake; got {self.block!r}")


class ShakePreResNet(PreActNet):
    """Shake-shake PreResNet: stem, 3 stages of n two-branch blocks, BN-ReLU, pool, linear."""

    def __init__(self, config: ShakePreResNetConfig) -> None:
        n = blocks_per_stage(config.depth, "basic")
        super().__init__(config, num_blocks=3 * n)
        survival = linear_decay_survival(config.stochastic_depth, self.num_blocks)
        self.stem = nn.Conv2d(config.in_channels, 16, kernel_size=3, padding=1, bias=False)
        blocks = []
        in_planes = 16
        for stage in range(3):
            planes = config.width * 2**stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(ResidualBlock(
                    ShakeBranches(in_planes, planes, stride, config.shake_backward),
                    projection(in_planes, planes, stride), noise=config.noise_spec,
                    survival=survival[len(blocks)], h=config.h,
                    stochastic_depth_mode=config.stochastic_depth_mode))
                in_planes = planes
        self.blocks = nn.ModuleList(blocks)
        self._build_head(in_planes, config.num_classes)

    def epsilon(self) -> float:
        """eps = 1/sqrt(3K) of shake-shake (3.15), g = diag((F1 - F2) / (2 eta)).

        An extra mask (option ``noise``) adds a second diffusion term with its own g (that of
        (3.2)-(3.14), g = F-bar / eta); its eps is :meth:`noise_epsilon`.
        """
        return kolmogorov.epsilon("shake", self.num_blocks)
