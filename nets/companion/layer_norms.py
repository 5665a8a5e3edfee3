"""Per-layer parameter groups of a network and the norms of their weights and gradients.

Robust ResNet's Fig. 2 (and Appendix Figs. 10-11) follows the weights and gradients of single layers
over training; their eq. (9) and Proposition 1 bound the back-propagated gradient by
(1 - h + h (1 + W)^D), so a large h lets gradients of shallow layers grow with depth D.

A "layer" here is a residual block: parameters whose dotted name contains an integer index (the position
in an nn.ModuleList / nn.Sequential, e.g. ``blocks.3.fc1.weight``) are grouped by the name up to and
including the first index; every other parameter is grouped under its top-level module (stem, head).
Groups are ordered as the parameters appear in the model.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict

import torch

_INDEXED = re.compile(r"^(.*?\.\d+)\.")


def group_name(parameter_name: str) -> str:
    """The layer a parameter belongs to: ``blocks.3.fc1.weight`` -> ``blocks.3``, ``head.weight`` -> ``head``."""
    match = _INDEXED.match(parameter_name)
    if match:
        return match.group(1)
    return parameter_name.split(".", 1)[0]


def layer_groups(model: torch.nn.Module) -> "OrderedDict[str, list[torch.nn.Parameter]]":
    """Trainable parameters of `model` grouped per layer (see the module docstring), in model order."""
    groups: "OrderedDict[str, list[torch.nn.Parameter]]" = OrderedDict()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault(group_name(name), []).append(parameter)
    return groups


def _norm(tensors: list[torch.Tensor]) -> float:
    if not tensors:
        return 0.0
    return math.sqrt(sum(float(t.detach().double().pow(2).sum()) for t in tensors))


def weight_norms(groups: "OrderedDict[str, list[torch.nn.Parameter]]") -> list[float]:
    """Frobenius norm of all parameters of each layer, concatenated: sqrt(sum ||p||_F^2)."""
    return [_norm(list(params)) for params in groups.values()]


def gradient_norms(groups: "OrderedDict[str, list[torch.nn.Parameter]]") -> list[float]:
    """Frobenius norm of the current gradient of each layer's parameters (0 for a layer with no gradient)."""
    return [_norm([p.grad for p in params if p.grad is not None]) for params in groups.values()]
