"""The stochastic-depth modes, without torch: the models (nets.models.noise.DropPath), the trainer's
configuration, the sweep and both command lines share this one definition and its check.

"sample" (the default, timm style) drops a block's branch per sample; "batch" drops the whole block for the
whole mini-batch (Huang et al. 2016, the LM-ResNet reference code; docs/models.md).
"""
from __future__ import annotations

from kolmogorov._checks import check_choice

STOCHASTIC_DEPTH_MODES = ("sample", "batch")


def check_stochastic_depth_mode(mode: object, option: str = "stochastic_depth_mode") -> str:
    """mode if it is one of STOCHASTIC_DEPTH_MODES, else a ValueError naming `option` and the allowed values."""
    check_choice(option, mode, STOCHASTIC_DEPTH_MODES)
    return mode
