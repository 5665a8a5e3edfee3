"""One door to every model: ``build_model(name, **options)`` and ``list_models()``.

A name says the family and the depth (``preresnet56``, ``lm_preresnet110``); keyword options
change the rest (noise, p / nu / beta, stochastic_depth, h, num_classes, in_channels, ...).
The generic names ``preresnet`` and ``lm_preresnet`` take ``depth`` (and ``block``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable

from torch import nn

from kolmogorov._checks import check_choice
from nets.models.lm import LMPreResNet, LMPreResNetConfig
from nets.models.mlp import MLPResNet, MLPResNetConfig
from nets.models.preresnet import PreResNet, PreResNetConfig
from nets.models.shake import ShakePreResNet, ShakePreResNetConfig

RESIDUAL_OPTIONS = ("num_classes", "noise", "p", "nu", "beta", "stochastic_depth", "h", "stochastic_depth_mode")


@dataclass(frozen=True)
class ModelEntry:
    """A registered name: its builder, the options it fixes and the options a caller may pass."""

    builder: Callable[..., nn.Module]
    config_cls: type
    fixed: dict[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, entry: ModelEntry) -> None:
    """Add a model name (module-level registration only; names are unique)."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    known = {f.name for f in fields(entry.config_cls)}
    unknown = (set(entry.fixed) | set(entry.options)) - known
    if unknown:
        raise ValueError(f"{name}: options {sorted(unknown)} are not fields of {entry.config_cls.__name__}")
    _REGISTRY[name] = entry


def list_models() -> list[str]:
    """Every name :func:`build_model` accepts, sorted."""
    return sorted(_REGISTRY)


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options ``build_model(name, ...)`` accepts."""
    return _entry(name).options


def _entry(name: str) -> ModelEntry:
    check_choice("name", name, list_models())
    return _REGISTRY[name]


def build_config(name: str, **options: Any):
    """The validated config dataclass of ``build_model(name, **options)``."""
    entry = _entry(name)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; allowed: {', '.join(entry.options)}")
    return entry.config_cls(**entry.fixed, **options)


def build_model(name: str, **options: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :func:`list_models` (preresnet8..164 and preresnet218, lm_preresnet8..164, preresnet,
            lm_preresnet, shake_preresnet26, mlp_resnet).
        **options: the family's options (see :func:`model_options`); every residual family
            takes noise (None, "bernoulli", "gaussian", "uniform") with p / nu / beta,
            stochastic_depth (p_L or None) with stochastic_depth_mode ("sample" or "batch"),
            h (step factor), num_classes.

    Returns:
        The model (training mode), with ``config``, ``num_blocks``, ``epsilon()`` and
        ``lm_coefficients()``.

    Raises:
        ValueError: unknown name or option, or an option out of range; the message names the
            option and its allowed values.
    """
    entry = _entry(name)
    return entry.builder(build_config(name, **options))


_PRERESNET_OPTIONS = RESIDUAL_OPTIONS + ("in_channels",)

register("preresnet", ModelEntry(PreResNet, PreResNetConfig, {}, ("depth", "block") + _PRERESNET_OPTIONS))
# 218 = 6 * 36 + 2 is the depth of the robust-ResNet paper's CIFAR-10 experiments (its Fig. 8).
for _depth in (8, 20, 32, 44, 56, 110, 218):
    register(f"preresnet{_depth}", ModelEntry(PreResNet, PreResNetConfig, {"depth": _depth, "block": "basic"},
                                              _PRERESNET_OPTIONS))
register("preresnet164", ModelEntry(PreResNet, PreResNetConfig, {"depth": 164, "block": "bottleneck"},
                                    _PRERESNET_OPTIONS))

register("mlp_resnet", ModelEntry(MLPResNet, MLPResNetConfig, {},
                                  ("in_features", "width", "depth", "block", "batch_norm", "activation")
                                  + RESIDUAL_OPTIONS))

register("lm_preresnet", ModelEntry(LMPreResNet, LMPreResNetConfig, {},
                                    ("depth", "block", "lm_start") + _PRERESNET_OPTIONS))
for _depth in (8, 20, 32, 44, 56, 110):
    register(f"lm_preresnet{_depth}", ModelEntry(LMPreResNet, LMPreResNetConfig, {"depth": _depth, "block": "basic"},
                                                 ("lm_start",) + _PRERESNET_OPTIONS))
register("lm_preresnet164", ModelEntry(LMPreResNet, LMPreResNetConfig, {"depth": 164, "block": "bottleneck"},
                                       ("lm_start",) + _PRERESNET_OPTIONS))

register("shake_preresnet26", ModelEntry(ShakePreResNet, ShakePreResNetConfig, {"depth": 26, "block": "basic"},
                                         ("width", "shake_backward") + _PRERESNET_OPTIONS))
