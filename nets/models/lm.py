"""LM-ResNet: the linear multi-step architecture on the PreResNet (LM-ResNet paper, eq. (1)).

    u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + h D_n(M_n(F_n(u_n))),

one trainable scalar k_n per block, initialised from U[-0.1, 0] (paper, section 2.2). It is a
two-step method for u_t = f(u); its modified equation (paper eq. (3)) is
(1 + k_n) u' + (1 - k_n)(dt/2) u'' = f. Noise, stochastic depth (paper section 3.2:
X_{n+1} = (2 + g_n) X_n - (1 + g_n) X_{n-1} + eta_n f(X_n)) and h act on the branch exactly as
in the Euler blocks; with every k_n = 0 the network is the plain PreResNet. A block dropped by
"batch"-mode stochastic depth (eta_n = 0 for the whole mini-batch) keeps the two-step part,
u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} (through S at a transition), and its branch is not computed.

Differences from the LM-ResNet reference code (the paper states neither): there, block 0 and every
downsampling block are plain Euler steps u_{n+1} = S u_n + F_n(u_n); here every block, the first
(with u_{-1} from ``lm_start``) and the stage transitions included, is the two-step update.

Stage transitions (downsampling). At a block with projection shortcut S (a strided 1x1
convolution, linear), both past states are carried through the same S:

    u_{n+1} = S((1 - k_n) u_n + k_n u_{n-1}) + F_n(u_n),   and the next block sees
    u_n <- S u_n as its previous state,

so every two-step update combines states of one resolution, the identity blocks are untouched,
and k_n = 0 reduces each block to the plain S u_n + F_n(u_n).

Starting value u_{-1} (option ``lm_start``): "zero" (default) takes u_{-1} = 0, so the first
block is u_1 = (1 - k_0) u_0 + F_0(u_0) and k_0 learns the scale of the first skip; "rest" takes
u_{-1} = u_0 (zero initial velocity, the first step is forward Euler), which leaves k_0 without
any effect (its gradient is identically zero).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nets.lm_start import check_lm_start
from nets.models.preresnet import PreResNet, PreResNetConfig


@dataclass(frozen=True)
class LMPreResNetConfig(PreResNetConfig):
    """A PreResNet config plus ``lm_start`` ("zero": u_{-1} = 0, "rest": u_{-1} = u_0)."""

    lm_start: str = "zero"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_lm_start(self.lm_start)


class LMPreResNet(PreResNet):
    """PreResNet whose blocks are the two-step LM update (1); ``lm_k`` holds k_0..k_{K-1}.

    Parameter names are those of :class:`PreResNet` plus ``lm_k``, so a plain network's
    state_dict loads with ``strict=False`` (only ``lm_k`` missing).
    """

    def __init__(self, config: LMPreResNetConfig) -> None:
        super().__init__(config)
        self.lm_k = nn.Parameter(torch.empty(self.num_blocks).uniform_(-0.1, 0.0))

    def epsilon(self) -> float:
        """The Euler-scheme eps of (3.4) of the mask option (as for :class:`PreResNet`; 0.0 without one).

        Not the noise level of this two-step scheme: its modified equation (LM-ResNet paper eq. (3)),
        (1 + k_n) u' + (1 - k_n)(dt/2) u'' = f, changes the drift's scale and adds a second-order term,
        so the eps of (3.4) is not the diffusion coefficient of the LM flow; it is kept for comparison
        with the Euler networks of the same mask (docs/models.md).
        """
        return super().epsilon()

    def lm_coefficients(self) -> torch.Tensor:
        """Detached copy of (k_0, ..., k_{K-1}), shape (num_blocks,)."""
        return self.lm_k.detach().clone()

    def flow(self, x: torch.Tensor) -> torch.Tensor:
        """u_0 -> u_K by eq. (1), past states carried through each stage's projection."""
        current = x
        previous = torch.zeros_like(x) if self.config.lm_start == "zero" else x
        for n, block in enumerate(self.blocks):
            k = self.lm_k[n]
            increment = block.increment(current)  # None: a "batch"-mode stochastic-depth drop, eta_n = 0
            mixed = (1.0 - k) * current + k * previous
            previous = block.shortcut(current)
            current = block.shortcut(mixed) if increment is None else block.shortcut(mixed) + increment
        return current
