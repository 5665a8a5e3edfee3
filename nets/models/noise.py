"""Noise injections of the residual branch: multiplicative masks and stochastic depth.

Main paper (Sun, Tao, Du), section 3: a residual block with a multiplicative mask m_k on its
branch, X_{k+1} = X_k + F(X_k) * m_k, is one Euler-Maruyama step of dX = f dt + eps g dW.

=========  ==========================  ================  =========  =============
noise      mask m_k (element-wise)     variance of m_k   parameter  paper
=========  ==========================  ================  =========  =============
bernoulli  gamma / p, gamma ~ Bern(p)  (1 - p) / p       p in (0,1]  (3.1), (3.2)
gaussian   N(1, nu^2)                  nu^2              nu >= 0     (3.13)
uniform    1 + U(-beta, beta)          beta^2 / 3        beta in     (3.14)
                                                         [0, 1)
=========  ==========================  ================  =========  =============

Every mask has mean 1, so the eval-mode network (masks replaced by their mean, i.e. the
identity) is the ensemble prediction of section 3.2. Masks are drawn fresh at every forward
pass from torch's global generator (seed it with ``torch.manual_seed``).

Stochastic depth (Huang et al. 2016; LM-ResNet paper section 3.2) drops a whole residual
branch: :class:`DropPath`, composed into blocks, with the linear decay rule
:func:`linear_decay_survival`. Two modes (:data:`STOCHASTIC_DEPTH_MODES`): "sample" (the default,
timm style) draws one Bernoulli per sample; "batch" (Huang et al. and the LM-ResNet reference code)
draws one per block per training forward for the whole mini-batch, and a dropped block's branch is
not computed at all (so its BatchNorm statistics are not updated either).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

import kolmogorov
from kolmogorov.noise_level import PARAMETER_OF, RANGE_OF, check_noise_parameter  # PARAMETER_OF re-exported
from nets.stochastic_depth import STOCHASTIC_DEPTH_MODES, check_stochastic_depth_mode  # noqa: F401 (re-exported)

NOISES = ("bernoulli", "gaussian", "uniform")
_TRIVIAL_VALUE = {"bernoulli": 1.0, "gaussian": 0.0, "uniform": 0.0}
_HALF = (torch.float16, torch.bfloat16)


def draw_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype random multipliers are drawn and applied in for data of ``dtype``: float32 for half
    precision (bf16 rounds 1/p and biases torch.rand, see apply_mask), else ``dtype`` itself."""
    return torch.float32 if dtype in _HALF else dtype


@dataclass(frozen=True)
class NoiseSpec:
    """One multiplicative injection: its kind and its parameter (p, nu or beta).

    Attributes:
        kind: "bernoulli", "gaussian" or "uniform".
        value: p (survival probability, (3.1)), nu (Gaussian std, (3.13)) or beta (uniform
            half-width, (3.14)).
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in NOISES:
            raise ValueError(f"noise must be one of None, {', '.join(map(repr, NOISES))}; got {self.kind!r}")
        object.__setattr__(self, "value", check_noise_parameter(self.kind, self.value))

    @property
    def parameter(self) -> str:
        """Name of the parameter: "p", "nu" or "beta"."""
        return PARAMETER_OF[self.kind]

    @property
    def trivial(self) -> bool:
        """True when the mask is identically 1 (p = 1, nu = 0, beta = 0)."""
        return self.value == _TRIVIAL_VALUE[self.kind]

    @property
    def variance(self) -> float:
        """Variance of one mask entry: (1-p)/p, nu^2 or beta^2/3."""
        if self.kind == "bernoulli":
            return (1.0 - self.value) / self.value
        if self.kind == "gaussian":
            return self.value**2
        return self.value**2 / 3.0


def noise_spec(noise: str | None, p: float | None = None, nu: float | None = None,
               beta: float | None = None) -> NoiseSpec | None:
    """Build the :class:`NoiseSpec` of the user options noise / p / nu / beta.

    The parameter matching ``noise`` is required and the others must be left out, so that a
    misspelt sweep never runs silently without noise.

    Raises:
        ValueError: naming the option and its allowed values.
    """
    given = {name: value for name, value in (("p", p), ("nu", nu), ("beta", beta)) if value is not None}
    if noise is None:
        if given:
            raise ValueError(f"{sorted(given)[0]} needs noise in {list(NOISES)} (the mask it parameterizes); "
                             "got noise=None")
        return None
    if noise not in NOISES:
        raise ValueError(f"noise must be one of None, {', '.join(map(repr, NOISES))}; got {noise!r}")
    name = PARAMETER_OF[noise]
    extra = sorted(set(given) - {name})
    if extra:
        raise ValueError(f"{extra[0]} does not apply to noise={noise!r}; its parameter is {name}")
    if name not in given:
        raise ValueError(f"{name} is needed by noise={noise!r} ({RANGE_OF[noise]})")
    return NoiseSpec(noise, given[name])


def sample_mask(spec: NoiseSpec, shape: tuple[int, ...] | torch.Size, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Draw one element-wise mask m_k of the given shape (mean 1, variance ``spec.variance``).

    Bernoulli: gamma/p with gamma ~ Bern(p) (3.1); Gaussian: 1 + nu N(0, 1) (3.13);
    uniform: 1 + beta U(-1, 1) (3.14).

    Raises:
        ValueError: for a half-precision ``dtype``: in bfloat16 1/p is rounded (1/0.9 -> 1.109375), so
            the mask would not have mean 1; draw in float32 and apply it with :func:`apply_mask`.
    """
    if dtype in _HALF:
        raise ValueError(f"dtype must be torch.float32 or torch.float64 (draw in float32 and apply the mask with "
                         f"apply_mask, which multiplies in float32); got {dtype}")
    if spec.kind == "bernoulli":
        # U < p is Bern(p) and, on CPU, about 1.5x faster than Tensor.bernoulli_
        keep = torch.rand(shape, dtype=dtype, device=device) < spec.value
        return keep.to(dtype).div_(spec.value)
    if spec.kind == "gaussian":
        return torch.randn(shape, dtype=dtype, device=device).mul_(spec.value).add_(1.0)
    return torch.rand(shape, dtype=dtype, device=device).mul_(2.0 * spec.value).add_(1.0 - spec.value)


def mask_like(spec: NoiseSpec, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A mask of x's shape, device and memory format (channels_last stays channels_last), in dtype
    (default x's). A half-precision dtype gives a mask drawn in float32, then cast, whose mean is NOT 1: in
    bfloat16 the Bernoulli value 1/p is rounded (1/0.9 -> 1.109375, mean 0.9984). For the mean of (3.1)
    pass dtype=torch.float32 and apply the mask with apply_mask, which multiplies in float32 (as
    MultiplicativeNoise does)."""
    dtype = dtype or x.dtype
    drawn = draw_dtype(dtype)
    if spec.kind == "gaussian":
        mask = torch.randn_like(x, dtype=drawn).mul_(spec.value).add_(1.0)
    else:
        mask = torch.rand_like(x, dtype=drawn)
        if spec.kind == "bernoulli":
            mask = (mask < spec.value).to(drawn).div_(spec.value)
        else:
            mask.mul_(2.0 * spec.value).add_(1.0 - spec.value)
    return mask.to(dtype)


def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x * mask in x's dtype. A half-precision x is multiplied by a float32 mask in float32 and rounded
    once, so the 1/p of (3.1) is exact and only the product is rounded, without bias on average: a
    bfloat16 mask would scale every branch by round(1/p) p instead of 1 (0.998 at p = 0.9, 1.003 at 0.85)."""
    if x.dtype in _HALF:
        return (x * mask.float()).to(x.dtype)
    return x * mask


class MultiplicativeNoise(nn.Module):
    """The noise layer of Fig. 1: x -> x * m_k in training, identity in eval mode.

    Placed after the last convolution of each residual branch (eqs. (3.1), (4.2)). A fresh
    element-wise mask is drawn at every forward pass; no parameters, no buffers, so a plain
    network's state_dict loads into the noisy one.
    """

    def __init__(self, spec: NoiseSpec | None) -> None:
        super().__init__()
        self.spec = spec

    def draw_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The mask m_k a training forward multiplies x by: x's shape, drawn in draw_dtype(x.dtype) (mask_like)."""
        return mask_like(self.spec, x, dtype=draw_dtype(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.spec is None or self.spec.trivial:
            return x
        return apply_mask(x, self.draw_mask(x))

    def extra_repr(self) -> str:
        if self.spec is None:
            return "noise=None"
        return f"noise={self.spec.kind!r}, {self.spec.parameter}={self.spec.value:g}"


_SURVIVAL_MEANING = "the survival probability p_L of the last block; leave it unset for no stochastic depth"


def check_survival(p_L: float | None, option: str = "stochastic_depth", meaning: str = _SURVIVAL_MEANING
                   ) -> float | None:
    """Validate the stochastic-depth option: None (no stochastic depth) or a survival probability p_L in (0, 1].

    The ValueError reads "OPTION must be in (0, 1] (MEANING); got VALUE": it names ``option`` first and does
    not mention None, which means nothing on a command line (nets.train turns "stochastic_depth must ..."
    into "--stochastic-depth must ...").
    """
    if p_L is None:
        return None
    message = f"{option} must be in (0, 1] ({meaning}); got {p_L!r}"
    if isinstance(p_L, bool):
        raise ValueError(message)
    try:
        value = float(p_L)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(message)
    return value


def linear_decay_survival(p_L: float | None, n_blocks: int) -> list[float]:
    """Survival probabilities p_l = 1 - (l / L)(1 - p_L), l = 1..L, of the linear decay rule.

    Huang et al. (2016) eq. (4), used for the LM-ResNet in its paper's section 3.2: the first
    block is almost always kept and the last one survives with probability p_L. None gives
    all ones (no stochastic depth). The rule itself is kolmogorov.stochastic_depth_survival.
    """
    p_L = check_survival(p_L)
    if p_L is None:
        return [1.0] * n_blocks
    return [float(p) for p in kolmogorov.stochastic_depth_survival(p_L, n_blocks)]


class DropPath(nn.Module):
    """Stochastic depth of one residual branch, per sample ("sample") or per mini-batch ("batch").

    "sample" (default): in training, each sample's branch is multiplied by eta / p with eta ~ Bern(p),
    drawn per sample (timm style).

    "batch": one eta ~ Bern(p) per training forward for the whole mini-batch (Huang et al. 2016 and the
    LM-ResNet reference code): the branch is multiplied by 1/p (kept) or by 0 (dropped).
    :class:`nets.models.blocks.ResidualBlock` draws first (:meth:`draw_keep`) and skips the branch of a
    dropped block entirely (no compute, no BatchNorm statistics update); :meth:`forward` on a branch
    output that was already computed zeroes it instead.

    Both modes draw from the generator of the data's device (torch's global CPU generator, or the CUDA
    generator of that device) and scale a kept branch by 1/p at training time (inverted), so that the eval
    network, the identity here, is the expectation; in eval mode and for p = 1 DropPath is the identity
    and draws nothing. This is the eta_n f(X_n) of the LM-ResNet paper, section 3.2, with the 1/p
    scaling moved to training time (the paper and Huang et al. train with eta_n f and test with p_n f).
    """

    def __init__(self, survival: float = 1.0, mode: str = "sample") -> None:
        super().__init__()
        self.survival = check_survival(survival, "survival", "the probability that the branch is kept; 1 for no drop")
        self.mode = check_stochastic_depth_mode(mode, "mode")

    @property
    def active(self) -> bool:
        """Whether this forward drops anything: training mode and p < 1."""
        return self.training and self.survival is not None and self.survival != 1.0

    @property
    def drops_blocks(self) -> bool:
        """Whether the block is dropped as a whole in this forward ("batch" mode, active)."""
        return self.mode == "batch" and self.active

    def draw_keep(self, like: torch.Tensor) -> bool:
        """One eta ~ Bern(p) for the whole mini-batch ("batch" mode), drawn on like's device: True = keep.

        On CUDA, reading the draw on the host synchronises with the device once per block and forward.
        """
        eta = torch.empty((), dtype=draw_dtype(like.dtype), device=like.device).bernoulli_(self.survival)
        return bool(eta.item())

    def scale_kept(self, x: torch.Tensor) -> torch.Tensor:
        """x / p: a kept branch in "batch" mode (half precision multiplied in float32, rounded once)."""
        factor = 1.0 / self.survival
        if x.dtype in _HALF:
            return (x.float() * factor).to(x.dtype)
        return x * factor

    def draw_mask(self, x: torch.Tensor) -> torch.Tensor:
        """eta / p as a mask broadcastable to x, in draw_dtype(x.dtype) on x's device: one per sample ("sample"),
        shape (N, 1, ...), or one for the whole batch ("batch"), shape (1, 1, ...)."""
        shape = ((x.shape[0],) if self.mode == "sample" else (1,)) + (1,) * (x.dim() - 1)
        keep = torch.empty(shape, dtype=draw_dtype(x.dtype), device=x.device).bernoulli_(self.survival)
        return keep.div_(self.survival)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        if self.mode == "batch":
            return self.scale_kept(x) if self.draw_keep(x) else torch.zeros_like(x)
        return apply_mask(x, self.draw_mask(x))

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4g}" + (f", mode={self.mode!r}" if self.mode != "sample" else "")
