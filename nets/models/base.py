"""What every residual model shares: its options and the SDE view (eps, number of blocks).

A network with K residual blocks and a mask of variance s^2 on each branch is a weak
approximation of dX = f dt + eps g dW on [0, 1] with eta = 1/K and eps = s sqrt(eta)
(main paper (3.2)-(3.4), (3.13), (3.14)); :meth:`ResidualSDEModel.epsilon` returns that eps
through :func:`kolmogorov.epsilon`.
"""
from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

import torch
from torch import nn

import kolmogorov
from nets.models.blocks import check_h
from nets.models.noise import NoiseSpec, check_survival, noise_spec
from nets.stochastic_depth import STOCHASTIC_DEPTH_MODES, check_stochastic_depth_mode


def check_positive_int(value: object, option: str) -> int:
    """Validate an option that must be a positive integer (numpy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{option} must be a positive integer; got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ResidualOptions:
    """Options shared by every residual family.

    Attributes:
        num_classes: number of logits.
        noise: None, "bernoulli", "gaussian" or "uniform": the mask after each branch's last
            layer (Fig. 1; (3.1), (3.13), (3.14)).
        p: Bernoulli survival probability in (0, 1] (noise="bernoulli" only).
        nu: Gaussian mask std >= 0 (noise="gaussian" only).
        beta: uniform mask half-width in [0, 1) (noise="uniform" only).
        stochastic_depth: None, or the survival probability p_L in (0, 1] of the last block
            under the linear decay rule (LM-ResNet paper, section 3.2).
        h: step factor > 0, X + h F(X) (robust-ResNet paper eq. (4)).
        stochastic_depth_mode: "sample" (default: drop a block's branch per sample, timm style) or
            "batch" (drop the whole block for the whole mini-batch, one draw per block and training
            forward, without computing its branch: Huang et al. 2016 and the LM-ResNet reference code).
            "batch" needs stochastic_depth, as p needs noise="bernoulli"; "sample", the default, is
            accepted without it (it changes nothing then).
    """

    num_classes: int = 10
    noise: str | None = None
    p: float | None = None
    nu: float | None = None
    beta: float | None = None
    stochastic_depth: float | None = None
    h: float = 1.0
    stochastic_depth_mode: str = "sample"

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_classes", check_positive_int(self.num_classes, "num_classes"))
        spec = noise_spec(self.noise, p=self.p, nu=self.nu, beta=self.beta)
        if spec is not None:
            object.__setattr__(self, spec.parameter, spec.value)
        object.__setattr__(self, "stochastic_depth", check_survival(self.stochastic_depth))
        object.__setattr__(self, "h", check_h(self.h))
        check_stochastic_depth_mode(self.stochastic_depth_mode)
        if self.stochastic_depth_mode != "sample" and self.stochastic_depth is None:
            raise ValueError(f"stochastic_depth_mode={self.stochastic_depth_mode!r} needs the option stochastic_depth "
                             f"(p_L in (0, 1]); modes: {', '.join(STOCHASTIC_DEPTH_MODES)}")

    @property
    def noise_spec(self) -> NoiseSpec | None:
        """The validated injection, or None."""
        return noise_spec(self.noise, p=self.p, nu=self.nu, beta=self.beta)

    def to_dict(self) -> dict:
        """The options as a plain dict (None kept), e.g. for HDF5 attributes."""
        return asdict(self)


class ResidualSDEModel(nn.Module):
    """Base of every model: ``num_blocks``, ``epsilon()``, ``noise_epsilon()``, ``lm_coefficients()``, ``config``."""

    config: ResidualOptions

    def __init__(self, config: ResidualOptions, num_blocks: int) -> None:
        super().__init__()
        self.config = config
        self.num_blocks = int(num_blocks)

    def epsilon(self) -> float:
        """eps of the model's stochastic modified equation (3.4); see :meth:`noise_epsilon`.

        Equal to :meth:`noise_epsilon` except for shake-shake, whose own noise (3.15) counts.

        This is the eps of the Euler scheme X_{k+1} = X_k + F(X_k) m_k behind (3.4). For the LM-ResNet
        (:class:`nets.models.lm.LMPreResNet`) it is returned unchanged, but it is NOT the noise level of
        the two-step LM scheme, whose modified equation (LM-ResNet paper eq. (3)),
        (1 + k_n) u' + (1 - k_n)(dt/2) u'' = f, rescales the drift and adds a second-order term: read it
        as the mask's Euler-scheme eps only.
        """
        return self.noise_epsilon()

    def noise_epsilon(self) -> float:
        """eps of the mask option (noise / p / nu / beta), K = ``num_blocks``; 0.0 without one.

        Bernoulli sqrt((1-p)/(pK)) (3.2); Gaussian nu/sqrt(K) (3.13); uniform beta/sqrt(3K)
        (3.14). The step factor h rescales f and g together and leaves eps unchanged.
        Stochastic depth is not counted: its survival probability varies over the blocks, so its
        eps varies over time; :meth:`stochastic_depth_epsilon` gives its rms level.
        """
        spec = self.config.noise_spec
        if spec is None:
            return 0.0
        return kolmogorov.epsilon(spec.kind, self.num_blocks, **{spec.parameter: spec.value})

    def stochastic_depth_epsilon(self) -> float:
        """The rms noise level of the model's stochastic depth; 0.0 without it.

        Block l keeps its branch with probability p_l = 1 - (l/K)(1 - p_L) and scales it by 1/p_l: an
        Euler-Maruyama step of dX = f dt + eps(t) f dW with eps_l^2 = (1 - p_l)/(p_l K) (LM-ResNet paper
        section 3.2; (3.2) at p = p_l). Returned: eps_rms, eps_rms^2 = (1/K) sum_l eps_l^2, the constant
        level with the same integrated diffusion (kolmogorov.stochastic_depth_epsilon), K = ``num_blocks``.
        Its diffusion is rank one (g = f, one draw for the whole branch), dropout's diagonal (g = diag f).
        """
        p_L = self.config.stochastic_depth
        return 0.0 if p_L is None else kolmogorov.stochastic_depth_epsilon(p_L, self.num_blocks)

    def lm_coefficients(self) -> torch.Tensor | None:
        """The LM-architecture's k_n (LM models only); None for every other model."""
        return None
