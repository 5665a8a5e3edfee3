"""E[sigma(X_K)] of the discrete noisy residual flow, the network side of the modified equation (3.4).

For constant velocity f the 1-D form of the noisy residual flows (3.1), (3.13), (3.14), (3.15) is

    X_{k+1} = X_k + (f / K) m_k,   X_0 = x,   k = 0..K-1,

so X_K = x + (f / K) sum_k m_k depends on the masks only through their sum:

==========  ==========================  =======================================  ==============
noise       mask m_k                    law of X_K                               evaluation
==========  ==========================  =======================================  ==============
bernoulli   gamma_k / p, Bern(p)        x + f N / (p K), N ~ Binomial(K, p)      exact (3.1)
gaussian    N(1, nu^2)                  x + f + f (nu / sqrt K) Z                exact (3.13)
uniform     1 + U(-beta, beta)          x + f + (f / K) sum U_k                  exact (3.14)
shake       f1 alpha_k + f2 (1-alpha_k)  x + (f1 A + f2 (K - A)) / K, A = sum alpha_k   exact (3.15)
==========  ==========================  =======================================  ==============

The Gaussian flow is exactly the SDE (3.4) with eps = nu / sqrt(K) for constant f (its
Euler-Maruyama scheme is exact here), so its mean is u_sigmoid(x, f, nu / sqrt(K)). The
Bernoulli flow matches the SDE with eps^2 = (1-p)/(pK) in mean and variance; the remaining gap
is of order 1/K^2 (third cumulant), while its gap to the noise-free transport solution
sigma(x + f) of (3.9) is of order 1/K. The uniform and shake-shake flows end at an affine function of the
mean of K uniforms, whose Irwin-Hall law kolmogorov.uniform_sum turns into a Gauss-Legendre quadrature law,
exact to 1e-16: every noise kind's mean is a finite sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from kolmogorov._checks import check_blocks, check_choice, check_int
from kolmogorov.closed_form import u_sigmoid
from kolmogorov.noise_level import NOISE_KINDS, check_noise_parameter

_POINT_CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class FlowMean:
    """E[sigma(X_K)] with its Monte Carlo standard error (zeros where the value is exact)."""

    mean: np.ndarray
    stderr: np.ndarray
    exact: bool


def _expit(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


def _check_params(noise: str, p, nu, beta, f2) -> dict:
    check_choice("noise", noise, NOISE_KINDS)
    given = {"p": p, "nu": nu, "beta": beta, "f2": f2}
    needed = {"bernoulli": "p", "gaussian": "nu", "uniform": "beta", "shake": "f2"}[noise]
    extra = sorted(k for k, v in given.items() if v is not None and k != needed)
    if extra:
        raise ValueError(f"unexpected parameter(s) {extra} for noise={noise!r}; it takes {needed}")
    if given[needed] is None:
        raise ValueError(f"noise={noise!r} needs the parameter {needed}")
    if noise == "shake":
        f2 = np.asarray(f2, dtype=float)
        if not np.all(np.isfinite(f2)):
            raise ValueError("f2 must be finite")
        return {"f2": f2}
    return {needed: check_noise_parameter(noise, given[needed])}


def _mc_mean(offset: np.ndarray, scale: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over samples S of sigma(offset + scale S), per point."""
    offset, scale = offset.ravel(), scale.ravel()
    n = samples.size
    mean = np.empty(offset.size)
    stderr = np.empty(offset.size)
    rows = max(1, _POINT_CHUNK_ELEMENTS // n)
    for start in range(0, offset.size, rows):
        sl = slice(start, start + rows)
        values = _expit(offset[sl, None] + scale[sl, None] * samples[None, :])
        mean[sl] = values.mean(axis=1)
        stderr[sl] = values.std(axis=1, ddof=1) / math.sqrt(n)
    return mean, stderr


def residual_flow_mean(
    x: ArrayLike,
    f: ArrayLike,
    n_blocks: int,
    noise: str,
    *,
    p: float | None = None,
    nu: float | None = None,
    beta: float | None = None,
    f2: ArrayLike | None = None,
) -> FlowMean:
    """E[sigma(X_K)] for X_{k+1} = X_k + (f/K) m_k, X_0 = x: eqs. (3.1), (3.13), (3.14), (3.15) in 1-D.

    Args:
        x: inputs X_0 (S = id, section 4.1).
        f: constant velocities (for "shake", the first branch f1); broadcasts with x (and f2).
        n_blocks: K >= 1, the number of residual blocks (time step 1/K).
        noise: "bernoulli" (p in (0, 1], dropout (3.1)), "gaussian" (nu >= 0, (3.13)),
            "uniform" (beta in [0, 1), (3.14)) or "shake" (f2, the second branch, (3.15)).
        p, nu, beta, f2: the injection's parameter; exactly the one `noise` needs.

    Returns:
        FlowMean(mean, stderr, exact) with the broadcast shape, exact for every kind (stderr zero): bernoulli by
        its binomial law, gaussian in closed form (u_sigmoid with eps = nu/sqrt(K)), uniform and shake by the
        quadrature law of the mean of K uniforms (kolmogorov.uniform_sum, to 1e-16).

    Raises:
        ValueError: unknown noise, missing or extra parameter, p outside (0, 1], nu < 0,
            beta outside [0, 1), n_blocks < 1, non-finite x, f or f2, or a uniform / shake flow whose
            2 |f| beta / K or |f1 - f2| / K exceeds about 300 (kolmogorov.uniform_sum.nodes_for).
    """
    k = check_blocks(n_blocks)
    params = _check_params(noise, p, nu, beta, f2)
    x = np.asarray(x, dtype=float)
    f = np.asarray(f, dtype=float)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise ValueError("x and f must be finite")
    if noise == "gaussian":
        mean = np.asarray(u_sigmoid(x, f, params["nu"] / math.sqrt(k)))
        return FlowMean(mean, np.zeros_like(mean), True)
    if noise == "bernoulli":
        return law_flow_mean(x, f, dropout_law(k, params["p"]))
    from kolmogorov.uniform_sum import uniform_mask_law, uniform_mean_law

    if noise == "uniform":
        return law_flow_mean(x, f, uniform_mask_law(k, params["beta"], float(np.max(np.abs(f), initial=0.0))))
    # X_K = x + f2 + (f1 - f2) Ubar, Ubar = (alpha_1 + ... + alpha_K) / K
    x, f1, f2v = np.broadcast_arrays(x, f, params["f2"])
    ubar = uniform_mean_law(k, float(np.max(np.abs(f1 - f2v), initial=0.0)))
    return law_flow_mean(x + f2v, f1 - f2v, ubar)


@dataclass(frozen=True)
class SumLaw:
    """A finite law of the flow's end point: X_K = x + f multipliers[j] with probability probabilities[j]."""

    multipliers: np.ndarray
    probabilities: np.ndarray


def binomial_law(n_blocks: int, probability: float, multipliers: ArrayLike) -> SumLaw:
    """The law X_K = x + f multipliers[N], N ~ Binomial(K, probability): flows whose masks take two values.

    The Bernoulli flow (3.1) (N blocks kept, multipliers[n] = n/(pK), dropout_law) and the two-point masks of
    kolmogorov.two_point (N steps down). Atoms of probability below 1e-300 are dropped (far under the rounding
    of any sum over the law)."""
    from scipy.stats import binom

    k = check_blocks(n_blocks)
    multipliers = np.asarray(multipliers, dtype=float)
    if multipliers.shape != (k + 1,):
        raise ValueError(f"multipliers must have K + 1 = {k + 1} entries; got shape {multipliers.shape}")
    pmf = binom.pmf(np.arange(k + 1), k, probability)
    keep = pmf > 1e-300
    return SumLaw(multipliers[keep], pmf[keep])


def dropout_law(n_blocks: int, p: float) -> SumLaw:
    """The law of X_K = x + (f/K) sum_k gamma_k / p, gamma_k ~ Bern(p): K dropout blocks (3.1), p in (0, 1]."""
    k = check_blocks(n_blocks)
    p = check_noise_parameter("bernoulli", p)
    return binomial_law(k, p, np.arange(k + 1) / (p * k))


def law_flow_mean(x: ArrayLike, f: ArrayLike, law: SumLaw) -> FlowMean:
    """Exact E[sigma(X_K)] = sum_j probabilities[j] sigma(x + f multipliers[j]), with the broadcast shape of x, f."""
    x, f = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(f, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise ValueError("x and f must be finite")
    flat_x, flat_f = x.ravel(), f.ravel()
    mean = np.empty(flat_x.size)
    rows = max(1, _POINT_CHUNK_ELEMENTS // law.probabilities.size)
    for start in range(0, flat_x.size, rows):
        sl = slice(start, start + rows)
        mean[sl] = _expit(flat_x[sl, None] + flat_f[sl, None] * law.multipliers[None, :]) @ law.probabilities
    # the probabilities sum to 1 only to rounding: clamp to [0, 1] (1 + 2.2e-16 came out where sigma is 1)
    mean = np.clip(mean, 0.0, 1.0).reshape(x.shape)
    return FlowMean(mean, np.zeros_like(mean), True)


#: stochastic_depth_flow_mean is exact (2^K atoms) up to this many blocks, Monte Carlo beyond
EXACT_STOCHASTIC_DEPTH_BLOCKS = 16


def _drop_sum_law(survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atoms and probabilities of S = sum_l eta_l / p_l, eta_l ~ Bern(p_l) independent (2^K atoms at most)."""
    values, probs = np.zeros(1), np.ones(1)
    for p in survival:
        if p == 1.0:
            values = values + 1.0
            continue
        values = np.concatenate([values, values + 1.0 / p])
        probs = np.concatenate([probs * (1.0 - p), probs * p])
    return values, probs


def stochastic_depth_law(n_blocks: int, p_L: float) -> SumLaw:
    """The exact law of X_L = x + (f/L) sum_l eta_l / p_l, eta_l ~ Bern(p_l) with the linear decay p_l of
    kolmogorov.noise_level.stochastic_depth_survival (the LM-ResNet paper's section 3.2): up to 2^L atoms, mean 1
    and variance eps_rms^2 = stochastic_depth_epsilon(p_L, L) of the multiplier. Atoms of probability below 1e-300
    are dropped, as in binomial_law.

    Raises:
        ValueError: L not an integer in [1, EXACT_STOCHASTIC_DEPTH_BLOCKS], p_L outside (0, 1].
    """
    from kolmogorov.noise_level import stochastic_depth_survival

    k = check_blocks(n_blocks)
    if k > EXACT_STOCHASTIC_DEPTH_BLOCKS:
        raise ValueError(f"n_blocks must be <= {EXACT_STOCHASTIC_DEPTH_BLOCKS} for the exact stochastic-depth law "
                         f"(2^K atoms), got {k}")
    values, probs = _drop_sum_law(stochastic_depth_survival(p_L, k))
    keep = probs > 1e-300
    return SumLaw(values[keep] / k, probs[keep])


def stochastic_depth_flow_mean(
    x: ArrayLike,
    f: ArrayLike,
    n_blocks: int,
    p_L: float,
    *,
    n_samples: int = 100_000,
    seed: int = 0,
) -> FlowMean:
    """E[sigma(X_L)] for X_{l+1} = X_l + (f/L)(eta_l / p_l), X_0 = x: stochastic depth in 1-D.

    Block l (1..L) keeps its branch with probability p_l = 1 - (l/L)(1 - p_L) (linear decay, the LM-ResNet
    paper's section 3.2) and scales a kept branch by 1/p_l, so X_L = x + (f/L) S with S = sum_l eta_l / p_l.
    X_L has the mean x + f and the variance f^2 eps_rms^2 of the SDE dX = f dt + eps(t) f dW at
    eps_rms = kolmogorov.noise_level.stochastic_depth_epsilon(p_L, L), whose mean E[sigma(X_1)] is
    u_sigmoid(x, f, eps_rms); what remains is the third cumulant, of order 1/L^2.

    Args:
        x: inputs X_0; f: constant velocities (broadcast with x).
        n_blocks: L >= 1.
        p_L: the last block's survival probability, in (0, 1].
        n_samples, seed: Monte Carlo samples and seed, used only beyond EXACT_STOCHASTIC_DEPTH_BLOCKS blocks.

    Returns:
        FlowMean with the broadcast shape: exact (the finite sum over the 2^L atoms of S, stderr zero) for
        L <= EXACT_STOCHASTIC_DEPTH_BLOCKS, Monte Carlo with its standard error beyond.
    """
    from kolmogorov.noise_level import stochastic_depth_survival

    k = check_blocks(n_blocks)
    survival = stochastic_depth_survival(p_L, k)
    x, f = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(f, dtype=float))
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(f))):
        raise ValueError("x and f must be finite")
    shape = x.shape
    if k <= EXACT_STOCHASTIC_DEPTH_BLOCKS:
        return law_flow_mean(x, f, stochastic_depth_law(k, p_L))
    n_samples = check_int("n_samples", n_samples, 2)
    rng = np.random.default_rng(seed)
    samples = np.zeros(n_samples)
    for p in survival:
        samples += (rng.random(n_samples) < p) / p
    mean, stderr = _mc_mean(x, f / k, samples)
    return FlowMean(mean.reshape(shape), stderr.reshape(shape), False)
