"""The LM-ResNet starting values u_{-1}, without torch: the model (nets.models.lm), the trainer's
configuration, the sweep and both command lines share this one definition and its check.

"zero" (the default) takes u_{-1} = 0, so the first block u_1 = (1 - k_0) u_0 + F_0(u_0) learns the scale of
its skip; "rest" takes u_{-1} = u_0 (zero initial velocity): the first step is forward Euler, as in the
LM-ResNet reference code, and k_0 has no effect (docs/models.md).
"""
from __future__ import annotations

from kolmogorov._checks import check_choice

LM_STARTS = ("zero", "rest")


def is_lm_model(model: str) -> bool:
    """Whether `model` is an LM-ResNet, by the registry's naming (lm_preresnet8, lm_preresnet, ...), without
    importing torch; the registry (nets.models.build_config) is what finally accepts or refuses lm_start."""
    return model.startswith("lm_")


def check_lm_start(start: object, option: str = "lm_start") -> str:
    """start if it is one of LM_STARTS, else a ValueError naming `option` and the allowed values."""
    check_choice(option, start, LM_STARTS)
    return start
