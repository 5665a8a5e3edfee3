"""The landscape of the dropout network itself: K residual blocks with Bernoulli masks, exactly.

The SDE (3.4) is the network's model only in the weak-approximation limit. For the 1-D task of section 4.1
(S = id, T = sigma, constant f) the network with K blocks, dropout after each block's branch with survival
probability p and the 1/p scaling of (3.1), ends at

    X_K = y + (f / K) sum_k gamma_k / p = y + f N / (p K),    N ~ Binomial(K, p),

so its objectives are finite sums over the K + 1 values of N (kolmogorov.flow.dropout_law): the ensemble
loss(E[sigma(X_K)], h) and the expected E[loss(sigma(X_K), h)], the network's counterparts of (3.7) and of the
noise-averaged loss. At the noise level eps the network has p = 1 / (1 + K eps^2), eps^2 = (1 - p)/(pK) of
(3.2)-(3.4); eps = 0 is p = 1, where X_K = y + f and the landscape is J_0 (3.10) exactly.

The law of f N / (pK) has the SDE's mean f and variance f^2 eps^2 but is not normal: at fixed p it tends to the
SDE's as K grows (weak order 2 for the Bernoulli flow, kolmogorov.flow), while at fixed eps and growing K, p falls
like 1 / (K eps^2) and N tends to a Poisson law of mean 1 / eps^2: a jump process, not the diffusion, unless eps
is small too.
"""
from __future__ import annotations

import numpy as np

#: elements (f points x samples x atoms) per chunk of the sums
_CHUNK_ELEMENTS = 1 << 21


def survival_probability(eps: float, n_blocks: int) -> float:
    """p = 1 / (1 + K eps^2): the survival probability that puts K dropout blocks at noise level eps (3.2)
    (kolmogorov.noise_parameter_for, which refuses an eps whose p underflows)."""
    from kolmogorov import noise_parameter_for

    return noise_parameter_for("bernoulli", n_blocks, eps)


def _law(eps: float, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """(multipliers m_n, probabilities P(n)) of X_K = y + f m_N for K dropout blocks at noise level eps."""
    from kolmogorov.flow import check_blocks, dropout_law

    k = check_blocks(n_blocks)
    law = dropout_law(k, survival_probability(eps, k))
    return law.multipliers, law.probabilities


def _end_points(f: np.ndarray, y: np.ndarray, atoms: np.ndarray):
    """(slice of f, X) per chunk of the grid f: X[i, j, n] = y_j + f_i m_n, chunks of at most _CHUNK_ELEMENTS."""
    rows = max(1, _CHUNK_ELEMENTS // (y.size * atoms.size))
    for start in range(0, f.size, rows):
        chunk = slice(start, start + rows)
        yield chunk, y[None, :, None] + f[chunk, None, None] * atoms[None, None, :]


def network_landscape(f: np.ndarray, y: np.ndarray, label: np.ndarray, eps: float, loss: str, objective: str,
                      n_blocks: int) -> np.ndarray:
    """J(f) of the K-block dropout network at noise level eps (module docstring), exact; arguments already checked
    by landscape.objective.evaluate (f, y, label float arrays, label in {0, 1})."""
    from scipy.special import expit, logsumexp

    from landscape.objective import loss_of_prediction

    atoms, probs = _law(eps, n_blocks)
    log_probs = np.log(probs)
    h = label[None, :]
    J = np.empty(f.size)
    for chunk, x in _end_points(f, y, atoms):
        if objective == "expected":
            if loss == "ce":
                per = np.where(h[:, :, None] == 1.0, np.logaddexp(0.0, -x), np.logaddexp(0.0, x))
            else:
                per = loss_of_prediction(expit(x), h[:, :, None], loss, expit(-x))
            J[chunk] = (per @ probs).mean(axis=1)
        elif loss == "ce":
            # log E[sigma(X)] and log E[1 - sigma(X)] in the log domain: each underflows far out in f
            log_u = logsumexp(-np.logaddexp(0.0, -x) + log_probs, axis=2)
            log_bar = logsumexp(-np.logaddexp(0.0, x) + log_probs, axis=2)
            J[chunk] = (-h * log_u - (1.0 - h) * log_bar).mean(axis=1)
        else:
            u, u_bar = expit(x) @ probs, expit(-x) @ probs
            J[chunk] = loss_of_prediction(u, h, loss, u_bar).mean(axis=1)
    return J


def _per_atom_slope(x: np.ndarray, h: np.ndarray, loss: str) -> np.ndarray:
    """d/dx loss(sigma(x), h) (label 1 through the mirror x -> -x of landscape.quadrature.TERMINALS)."""
    from landscape.quadrature import TERMINALS

    g1 = TERMINALS[loss][1]
    return np.where(h == 1.0, -g1.g(-x), g1.g(x))


def network_gradient(f: np.ndarray, y: np.ndarray, label: np.ndarray, eps: float, loss: str, objective: str,
                     n_blocks: int) -> np.ndarray:
    """dJ/df of network_landscape on the grid f, exactly: X_K = y + f m_N, so dX_K/df = m_N.

    expected: sum_n P(n) (loss o sigma)'(X_n) m_n. ensemble: loss'(u) sum_n P(n) sigma'(X_n) m_n, u = E[sigma(X_K)];
    for ce the two ratios sum_n P(n) sigma'(X_n) m_n / u and / (1 - u) are taken with log-domain weights
    P(n) sigma(+-X_n) / E[sigma(+-X_K)] (each of u, 1 - u underflows far out in f)."""
    from scipy.special import expit, softmax

    from landscape.objective import loss_derivative

    atoms, probs = _law(eps, n_blocks)
    log_probs = np.log(probs)
    h = label[None, :]
    out = np.empty(f.size)
    for chunk, x in _end_points(f, y, atoms):
        if objective == "expected":
            per = (_per_atom_slope(x, h[:, :, None], loss) * atoms) @ probs
        elif loss == "ce":
            up = softmax(-np.logaddexp(0.0, -x) + log_probs, axis=2)  # P(n) sigma(X_n) / u
            down = softmax(-np.logaddexp(0.0, x) + log_probs, axis=2)  # P(n) sigma(-X_n) / (1 - u)
            per = (-h * ((up * expit(-x)) @ atoms) + (1.0 - h) * ((down * expit(x)) @ atoms))
        else:
            u, u_bar = expit(x) @ probs, expit(-x) @ probs
            du = (expit(x) * expit(-x) * atoms) @ probs
            per = loss_derivative(u, h, loss, u_bar) * du
        out[chunk] = per.mean(axis=1)
    return out


def draw_kept(rng: np.random.Generator, eps: float, n_blocks: int, size: int) -> np.ndarray:
    """size draws of the kept count N ~ Binomial(K, p), p = survival_probability(eps, K): one network pass each."""
    return rng.binomial(n_blocks, survival_probability(eps, n_blocks), size=size)


def network_sample_gradient(f: float, y: np.ndarray, label: np.ndarray, eps: float, loss: str, kept: np.ndarray,
                            n_blocks: int) -> float:
    """The gradient of one dropout pass per sample, d/df loss(sigma(y + f N/(pK)), h) = (loss o sigma)'(X) N/(pK),
    averaged over the samples (kept: one N per sample). Its mean over N is network_gradient's "expected" one:
    SGD with it is dropout training of the K-block network."""
    multiplier = np.asarray(kept, dtype=float) / (survival_probability(eps, n_blocks) * n_blocks)
    x = y + f * multiplier
    return float(np.mean(_per_atom_slope(x, label, loss) * multiplier))
