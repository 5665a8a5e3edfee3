"""The noise level eps of the stochastic modified equation (3.4) for each noise injection.

A residual network with K blocks and multiplicative noise m_k on each residual branch,
X_{k+1} = X_k + F(X_k) m_k, is a weak approximation of dX = f dt + eps g dW on t in [0, 1]
with time step eta = 1/K (main paper, section 3). Matching the variance of the increment gives:

=========  =====================  ====================  ===================
noise      mask m_k               eps                   paper
=========  =====================  ====================  ===================
bernoulli  gamma/p, gamma~Bern(p)  sqrt((1-p)/(p K))     (3.2)-(3.4)
gaussian   N(1, nu^2)             nu / sqrt(K)          (3.13)
uniform    1 + U(-beta, beta)     beta / sqrt(3 K)      (3.14)
shake      alpha ~ U(0, 1)        1 / sqrt(3 K)         (3.15)
=========  =====================  ====================  ===================
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping

import numpy as np
from kolmogorov._checks import check_blocks, check_choice

NOISE_KINDS = ("bernoulli", "gaussian", "uniform", "shake")

#: The name of each mask's parameter, read-only, in the order bernoulli, gaussian, uniform (messages list
#: the kinds in this order): the survival probability p of eqs. (3.1)-(3.2), the Gaussian std nu of (3.13)
#: and the uniform half-width beta of (3.14) of the main paper. The one copy: nets.sweep, nets.models.noise
#: and figures.noise_kinds import it. Shake-shake (3.15) has no parameter and is not in it.
PARAMETER_OF: Mapping[str, str] = MappingProxyType({"bernoulli": "p", "gaussian": "nu", "uniform": "beta"})
#: The allowed values of each parameter, in words (check_noise_parameter enforces them; messages quote them).
RANGE_OF: Mapping[str, str] = MappingProxyType({"bernoulli": "p in (0, 1]", "gaussian": "nu >= 0",
                                                "uniform": "beta in [0, 1)", "shake": ""})


def _as_real(name: str, value, requirement: str) -> float:
    """float(value), or a one-line ValueError `NAME must be REQUIREMENT[, not a bool], got VALUE`: a bool is
    refused (float(True) = 1, and nu=False would silently mean no noise)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be {requirement}, not a bool, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {requirement}, got {value!r}") from None


def _check_kind(noise: str) -> str:
    check_choice("noise", noise, NOISE_KINDS)
    return noise


def check_noise_parameter(noise: str, value: float) -> float:
    """Validate the parameter of one injection; returns it as float.

    p in (0, 1] (Bernoulli survival probability), nu >= 0 (Gaussian std), beta in [0, 1)
    (uniform half-width: beta >= 1 would let the mask change sign).
    """
    _check_kind(noise)
    name = PARAMETER_OF.get(noise)
    if name is None:  # shake
        return float("nan")
    value = _as_real(name, value, f"a real number ({RANGE_OF[noise]})")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if noise == "bernoulli" and not 0.0 < value <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {value!r}")
    if noise == "gaussian" and value < 0.0:
        raise ValueError(f"nu must be >= 0, got {value!r}")
    if noise == "uniform" and not 0.0 <= value < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {value!r}")
    return value


def _single_parameter(noise: str, params: dict) -> float | None:
    name = PARAMETER_OF.get(noise)  # None for shake
    extra = set(params) - ({name} if name else set())
    if extra:
        allowed = name or "no parameter"
        raise ValueError(f"unexpected parameter(s) {sorted(extra)} for noise={noise!r}; allowed: {allowed}")
    if name is None:
        return None
    if name not in params:
        raise ValueError(f"noise={noise!r} needs the parameter {name}")
    return check_noise_parameter(noise, params[name])


def epsilon(noise: str, n_blocks: int, **params: float) -> float:
    """Noise level eps of the stochastic modified equation (3.4) for K = n_blocks blocks.

    Args:
        noise: "bernoulli" (p), "gaussian" (nu), "uniform" (beta) or "shake" (no parameter).
        n_blocks: K, the number of residual blocks; the time step is eta = 1/K.
        **params: the injection's parameter, by name: p, nu or beta.

    Returns:
        eps >= 0: Bernoulli eps^2 = (1-p)/(pK) (3.2); Gaussian eps = nu/sqrt(K) (3.13);
        uniform eps = beta/sqrt(3K) (3.14); shake-shake eps = 1/sqrt(3K) (3.15).
    """
    _check_kind(noise)
    k = check_blocks(n_blocks)
    value = _single_parameter(noise, params)
    if noise == "bernoulli":
        # sqrt of each factor: (1-p)/(pK) itself overflows for p below ~1e-308 (eps 1e154 came out inf)
        return math.sqrt(1.0 - value) / math.sqrt(value) / math.sqrt(k)
    if noise == "gaussian":
        return value / math.sqrt(k)
    if noise == "uniform":
        return value / math.sqrt(3.0 * k)
    return 1.0 / math.sqrt(3.0 * k)


def noise_parameter_for(noise: str, n_blocks: int, eps: float) -> float:
    """Inverse of :func:`epsilon`: the injection parameter that gives noise level eps.

    Bernoulli p = 1/(1 + K eps^2); Gaussian nu = eps sqrt(K); uniform beta = eps sqrt(3K)
    (which must come out below 1). Shake-shake has no free parameter and is refused.
    """
    _check_kind(noise)
    k = check_blocks(n_blocks)
    eps = _as_real("eps", eps, "a finite number >= 0")
    if not math.isfinite(eps) or eps < 0.0:
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    if noise == "shake":
        raise ValueError("noise='shake' has no free parameter: its eps is 1/sqrt(3K)")
    if noise == "bernoulli":
        # p = 1/(1 + K eps^2), written so that K eps^2 cannot overflow; a p that underflows to 0 (or to a
        # subnormal, where 1/p no longer gives back eps) is outside (0, 1] and refused, not returned
        p = 1.0 / (1.0 + k * eps * eps) if eps < 1e100 else (1.0 / eps) / eps / k
        if not p >= 2.2250738585072014e-308:
            raise ValueError(f"eps={eps!r} with n_blocks={k} needs a survival probability p = 1/(1 + K eps^2) "
                             f"below the smallest normal double; eps must be at most {1.0 / math.sqrt(k * 2.2250738585072014e-308):.6g}")
        return p
    if noise == "gaussian":
        return eps * math.sqrt(k)
    beta = eps * math.sqrt(3.0 * k)
    return check_noise_parameter("uniform", beta)


# ---- stochastic depth: a whole-branch Bernoulli mask whose survival probability falls with depth ----------

#: the name of stochastic depth where it stands beside the mask kinds (nets.sweep --noise, figures.noise_kinds,
#: nets.noise_response)
STOCHASTIC_DEPTH = "stochastic_depth"


def _check_p_last(p_L: float) -> float:
    value = _as_real("p_L", p_L, "a survival probability in (0, 1]")
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"p_L must be a survival probability in (0, 1], got {p_L!r}")
    return value


def stochastic_depth_survival(p_L: float, n_blocks: int) -> np.ndarray:
    """Survival probabilities p_l = 1 - (l / L)(1 - p_L), l = 1..L, of the linear decay rule.

    Huang et al. (2016) eq. (4), the rule of the LM-ResNet paper's section 3.2: the first block is almost
    always kept, the last survives with probability p_L. The one copy of the rule: nets builds its
    networks' DropPath probabilities from it.
    """
    p_L = _check_p_last(p_L)
    k = check_blocks(n_blocks)
    return np.array([1.0 - (l / k) * (1.0 - p_L) for l in range(1, k + 1)])


def stochastic_depth_epsilons(p_L: float, n_blocks: int) -> np.ndarray:
    """The noise level eps_l of each block under stochastic depth, l = 1..L: eps_l^2 = (1 - p_l) / (p_l L).

    Block l keeps its branch with probability p_l and scales a kept branch by 1/p_l:
    X_{l+1} = X_l + (eta_l / p_l) F(X_l), eta_l ~ Bern(p_l), one eta_l per sample. With F = f / L this is an
    Euler-Maruyama step of dX = f dt + eps(t) f dW on [0, 1], one scalar Brownian motion W per sample (the
    LM-ResNet paper, section 3.1: dX = p(t) f dt + sqrt(p(t)(1 - p(t))) f dB before the 1/p scaling), with
    eps(t) = eps_l on block l's step: the Bernoulli level (3.2) at p = p_l. Dropout's mask is drawn per unit
    (g = diag(f) in (3.4)); here one draw scales the whole branch (g = f, a rank-one diffusion g g^T = f f^T).
    """
    return np.array([epsilon("bernoulli", n_blocks, p=p) for p in stochastic_depth_survival(p_L, n_blocks)])


def stochastic_depth_epsilon(p_L: float, n_blocks: int) -> float:
    """The constant noise level with the same integrated diffusion as stochastic depth: eps_rms with
    eps_rms^2 = int_0^1 eps(t)^2 dt = (1/L) sum_l eps_l^2 (see :func:`stochastic_depth_epsilons`).

    For a constant velocity f the SDE's X_1 = x + f + f int eps dW is normal with variance f^2 eps_rms^2, so
    eps_rms is the level at which a uniform mask of (3.4) gives the same law of X_1; it is the eps at which
    stochastic depth is compared with dropout of a single p (figures.noise_kinds). 0 for p_L = 1.
    """
    eps = stochastic_depth_epsilons(p_L, n_blocks)
    return float(math.sqrt(np.mean(eps * eps)))


def stochastic_depth_survival_for(eps: float, n_blocks: int) -> float:
    """Inverse of :func:`stochastic_depth_epsilon`: the p_L in (0, 1] whose rms noise level is eps.

    eps_rms falls strictly from infinity (p_L -> 0, the last block's (1 - p_L)/p_L) to 0 (p_L = 1), so every
    eps >= 0 has exactly one p_L; found by bracketing (scipy's brentq) to a relative 1e-15 in p_L. eps = 0
    gives 1. In float64 the rule reaches neither end: an eps so small that p_L would lie between the largest
    float below 1 and 1, or so large that p_L would lie below 1e-12 (where 1 - (l / L)(1 - p_L) loses p_L's
    digits), is refused. Near p_L = 1 the float spacing of p_L (1.1e-16) limits how well eps_rms(p_L) can
    match eps: to about 1e-3 relative at eps = 1e-7 with 3 blocks, 1e-11 at eps = 1e-3.
    """
    from scipy.optimize import brentq

    k = check_blocks(n_blocks)
    eps = _as_real("eps", eps, "a finite number >= 0")
    if not math.isfinite(eps) or eps < 0.0:
        raise ValueError(f"eps must be finite and >= 0, got {eps!r}")
    if eps == 0.0:
        return 1.0

    def excess(p_L: float) -> float:  # a ratio of levels, not of their squares: eps * eps may underflow
        return stochastic_depth_epsilon(p_L, k) / eps - 1.0

    below_one = math.nextafter(1.0, 0.0)
    if excess(below_one) > 0.0:
        raise ValueError(f"eps must be 0 or at least {stochastic_depth_epsilon(below_one, k):.3g} for stochastic "
                         f"depth with n_blocks={k} (a p_L nearer 1 is not a float64); got {eps!r}")
    low = 0.5
    while excess(low) < 0.0:  # eps_rms(low) below eps: move towards p_L = 0, where eps_rms grows without bound
        low /= 2.0
        if low < 1e-12:
            raise ValueError(f"eps must be at most {stochastic_depth_epsilon(low * 2.0, k):.3g} for stochastic "
                             f"depth with n_blocks={k} (a smaller p_L than 1e-12 is out of reach); got {eps!r}")
    return float(brentq(excess, low, 1.0, xtol=1e-300, rtol=1e-15))
