"""The MLP ResNet variants of the companion papers, built through nets.build_model("mlp_resnet", ...).

=========  ==============================================  ==========================
variant    block (y_{i+1} = ...)                           paper
=========  ==============================================  ==========================
residual   y_i + h (K2 sigma(K1 y_i + b1) + b2)            Zhang & Wynter eq. (7);
                                                           robust ResNet eq. (4), no BN
batchnorm  the residual block with batch normalization     Zhang & Wynter Figs. 6-7
shrinkage  y_i - h (K1^T sigma(K1 y_i + b1) + b2)          Zhang & Wynter eq. (8)
=========  ==============================================  ==========================

h = 1 is the plain ("vanilla") ResNet. With width None the features live in the input space
(y_0 = x), which is what lets the 2-D figures draw every layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from kolmogorov._checks import check_choice

VARIANTS: dict[str, dict[str, object]] = {
    "residual": {"block": "residual", "batch_norm": False},
    "batchnorm": {"block": "residual", "batch_norm": True},
    "shrinkage": {"block": "shrinkage", "batch_norm": False},
}
VARIANT_LABELS = {"residual": "residual block", "batchnorm": "batch norm", "shrinkage": "shrinkage block"}
ACTIVATIONS = ("relu", "tanh")


def check_variant(variant: str) -> str:
    check_choice("variant", variant, VARIANTS)
    return variant


@dataclass(frozen=True)
class NetSpec:
    """An MLP ResNet: `depth` blocks of the given variant and step factor h, on features of size `width`."""

    depth: int = 100
    h: float = 1.0
    variant: str = "residual"
    activation: str = "relu"
    width: int | None = None

    def __post_init__(self) -> None:
        check_variant(self.variant)
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be a positive integer, got {self.depth!r}")
        if not self.h > 0:
            raise ValueError(f"h must be positive, got {self.h!r}")
        check_choice("activation", self.activation, ACTIVATIONS)


def build_net(spec: NetSpec, in_features: int, num_classes: int, seed: int) -> torch.nn.Module:
    """nets.build_model("mlp_resnet", ...) for `spec`, initialized from `seed` without touching torch's global RNG state."""
    from nets import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("mlp_resnet", in_features=in_features, num_classes=num_classes, width=spec.width,
                           depth=spec.depth, h=spec.h, activation=spec.activation, **VARIANTS[spec.variant])
