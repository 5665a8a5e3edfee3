"""Pre-activation ResNet (He et al. 2016) for 32x32 inputs, as a noisy residual flow.

Main paper section 4.2, eq. (4.2) and Fig. 1: stem conv3x3 -> 3 stages of n blocks (widths
16/32/64 times the block's expansion, strides 1/2/2) -> BN-ReLU -> global average pool -> linear.
BasicBlock: depth = 6n + 2; Bottleneck: depth = 9n + 2 (so preresnet164 has n = 18). The
number of residual blocks is K = 3n, the time step of the modified equation eta = 1/K.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import nn

from nets.models.base import ResidualOptions, ResidualSDEModel, check_positive_int
from nets.models.blocks import PreActBasicBranch, PreActBottleneckBranch, ResidualBlock, projection
from nets.models.noise import linear_decay_survival

BLOCKS = {"basic": (PreActBasicBranch, 6), "bottleneck": (PreActBottleneckBranch, 9)}
STAGE_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: object, block: str) -> int:
    """n for depth = 6n + 2 (basic) or 9n + 2 (bottleneck), n >= 1; ValueError otherwise."""
    if not isinstance(block, str) or block not in BLOCKS:
        raise ValueError(f"block must be one of {sorted(BLOCKS)}; got {block!r}")
    step = BLOCKS[block][1]
    if isinstance(depth, bool) or not isinstance(depth, numbers.Integral) or depth < step + 2 or (depth - 2) % step:
        raise ValueError(f"depth must be {step}n+2 with n >= 1 for block={block!r} "
                         f"({', '.join(str(step * n + 2) for n in (1, 2, 3))}, ...); got {depth!r}")
    return int(depth - 2) // step


@dataclass(frozen=True)
class PreResNetConfig(ResidualOptions):
    """A PreResNet: depth and block type on top of :class:`ResidualOptions`.

    Attributes:
        depth: 6n+2 (block="basic") or 9n+2 (block="bottleneck").
        block: "basic" or "bottleneck".
        in_channels: channels of the input images (3 for CIFAR, 1 for MNIST-like data).
    """

    depth: int = 20
    block: str = "basic"
    in_channels: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        blocks_per_stage(self.depth, self.block)
        object.__setattr__(self, "depth", int(self.depth))
        object.__setattr__(self, "in_channels", check_positive_int(self.in_channels, "in_channels"))


def init_weights(model: nn.Module) -> None:
    """He initialization for convolutions, BN at (1, 0), as in bearpaw/pytorch-classification."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class PreActNet(ResidualSDEModel):
    """A ``stem``, a flat ``nn.ModuleList`` ``blocks``, then BN-ReLU, global average pooling and ``fc``.

    The head T of (4.2) shared by :class:`PreResNet` and the shake-shake network; a subclass builds
    ``stem`` and ``blocks``, then calls :meth:`_build_head`.
    """

    def _build_head(self, in_planes: int, num_classes: int) -> None:
        """BN-ReLU, pooling and the linear layer after the last block; then :func:`init_weights`."""
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        init_weights(self)

    def flow(self, x: torch.Tensor) -> torch.Tensor:
        """The residual flow X_0 -> X_K (before the final BN-ReLU)."""
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of images x (N, in_channels, H, W)."""
        out = self.flow(self.stem(x))
        out = self.pool(self.relu(self.bn(out)))
        return self.fc(torch.flatten(out, 1))


class PreResNet(PreActNet):
    """X_0 = S y (stem), X_{k+1} = P_k X_k + h D_k(M_k(F_k(X_k))), logits = T(X_K).

    ``blocks`` is a flat ``nn.ModuleList`` of the K = 3n :class:`ResidualBlock`; ``stem``
    (conv3x3), ``bn`` + ReLU + pooling + ``fc`` form S and T of (4.2).
    """

    def __init__(self, config: PreResNetConfig) -> None:
        branch_cls, _ = BLOCKS[config.block]
        n = blocks_per_stage(config.depth, config.block)
        super().__init__(config, num_blocks=3 * n)
        survival = linear_decay_survival(config.stochastic_depth, self.num_blocks)
        spec = config.noise_spec
        self.stem = nn.Conv2d(config.in_channels, STAGE_WIDTHS[0], kernel_size=3, padding=1, bias=False)
        blocks = []
        in_planes = STAGE_WIDTHS[0]
        for stage, planes in enumerate(STAGE_WIDTHS):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                out_planes = planes * branch_cls.expansion
                blocks.append(ResidualBlock(
                    branch_cls(in_planes, planes, stride), projection(in_planes, out_planes, stride),
                    noise=spec, survival=survival[len(blocks)], h=config.h,
                    stochastic_depth_mode=config.stochastic_depth_mode))
                in_planes = out_planes
        self.blocks = nn.ModuleList(blocks)
        self._build_head(in_planes, config.num_classes)
