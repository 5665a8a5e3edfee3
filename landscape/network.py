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

With jump = a < 1 the dropout masks are replaced by the two-point masks of kolmogorov.two_point (values 1 - a and
1 + v/a, v = K eps^2, mean 1 and the same variance): the same SDE model at every a, and a finite law again
(two_point_law, a number of steps down N ~ Binomial(K, v / (a^2 + v))). a = 1 is dropout; a = sqrt(v), the
smallest, a fair coin of small moves. So at one eps the landscape can be compared across jump sizes, the 1-D
form of the question nets.two_point_masks asks of trained networks: does only eps shape the landscape?

With mask = "uniform" the masks are the main paper's uniform ones, 1 + U(-beta, beta) with beta = eps sqrt(3K)
(3.14), which the nets train with too: X_K = y + f (1 - beta + 2 beta Ubar), Ubar the mean of K U(0, 1), whose
Irwin-Hall law kolmogorov.uniform_sum turns into a Gauss-Legendre quadrature law, exact to 1e-16 for the f range
at hand; beta < 1 (a mask that keeps its sign) bounds eps below 1 / sqrt(3K). Gaussian masks need no law of
their own: with them the K-block network is the SDE exactly (kolmogorov.flow), at every K.

With mask = "stochastic_depth" each block keeps its whole branch with its own probability p_l = 1 - (l/K)(1 - p_L)
(linear decay, the LM-ResNet paper's section 3.2) and scales it by 1/p_l: X_K = y + (f/K) sum_l eta_l / p_l, whose
variance f^2 eps_rms^2 is the SDE's at p_L = kolmogorov.stochastic_depth_survival_for(eps, K). Its law has 2^K
atoms (kolmogorov.flow.stochastic_depth_law), so K <= 16. K = 1 is dropout at p = p_L.
"""
from __future__ import annotations

import math

import numpy as np

from kolmogorov.noise_level import STOCHASTIC_DEPTH

#: elements (f points x samples x atoms) per chunk of the sums
_CHUNK_ELEMENTS = 1 << 21


def survival_probability(eps: float, n_blocks: int) -> float:
    """p = 1 / (1 + K eps^2): the survival probability that puts K dropout blocks at noise level eps (3.2)
    (kolmogorov.noise_parameter_for, which refuses an eps whose p underflows)."""
    from kolmogorov import noise_parameter_for

    return noise_parameter_for("bernoulli", n_blocks, eps)


DROPOUT_JUMP = 1.0
#: the network's masks: dropout (or, with a jump < 1, two-point masks of the same eps), the uniform masks (3.14) and
#: stochastic depth's linear decay at the same (rms) eps
MASKS = ("dropout", "uniform", STOCHASTIC_DEPTH)
DEFAULT_MASK = "dropout"


def stochastic_depth_blocks(n_blocks: int) -> int:
    """K when the stochastic-depth network's exact law (2^K atoms) is within reach, else ValueError naming the mask."""
    from kolmogorov.flow import EXACT_STOCHASTIC_DEPTH_BLOCKS

    if n_blocks > EXACT_STOCHASTIC_DEPTH_BLOCKS:
        raise ValueError(f"mask '{STOCHASTIC_DEPTH}' with K = {n_blocks}: its exact law has 2^K atoms, so K must be "
                         f"<= {EXACT_STOCHASTIC_DEPTH_BLOCKS}")
    return n_blocks


def uniform_half_width(eps: float, n_blocks: int) -> float:
    """beta = eps sqrt(3K), the half-width of the uniform masks 1 + U(-beta, beta) that put K blocks at noise level
    eps (3.14); ValueError naming the mask, eps and K unless beta < 1."""
    from kolmogorov import noise_parameter_for

    try:
        return noise_parameter_for("uniform", n_blocks, eps)
    except ValueError:
        k = int(n_blocks)
        raise ValueError(f"mask 'uniform' at eps = {eps:g} with K = {k}: its half-width beta = eps sqrt(3K) = "
                         f"{eps * math.sqrt(3.0 * k):.4g} must be < 1 (a mask that keeps its sign), so eps < "
                         f"{1.0 / math.sqrt(3.0 * k):.4g}") from None


def network_law(eps: float, n_blocks: int, jump: float = DROPOUT_JUMP, mask: str = DEFAULT_MASK, reach: float = 0.0):
    """The finite law (kolmogorov.flow.SumLaw) of X_K = y + f m for K blocks at noise level eps: dropout at
    p = 1/(1 + K eps^2) when jump = 1, else two-point masks of jump a; with mask "uniform" the quadrature law of the
    uniform masks, exact to 1e-16 for |f| <= reach (module docstring); with mask "stochastic_depth" the 2^K atoms of
    the linear decay at the p_L whose rms level is eps; eps = 0 is m = 1.

    Raises:
        ValueError: n_blocks not an integer >= 1; with jump < 1, K eps^2 > 1 or jump outside [sqrt(K eps^2), 1];
            with mask "uniform", eps sqrt(3K) >= 1 or a reach too large for the quadrature (kolmogorov.uniform_sum);
            with mask "stochastic_depth", K > 16.
    """
    from kolmogorov.flow import SumLaw, check_blocks, dropout_law
    from kolmogorov.two_point import two_point_law

    k = check_blocks(n_blocks)
    if eps == 0.0:  # p = 1, beta = 0, no jump: every mask is 1
        return SumLaw(np.ones(1), np.ones(1))
    if mask == STOCHASTIC_DEPTH:
        from kolmogorov import stochastic_depth_survival_for
        from kolmogorov.flow import stochastic_depth_law

        return stochastic_depth_law(stochastic_depth_blocks(k), stochastic_depth_survival_for(eps, k))
    if mask == "uniform":
        from kolmogorov.uniform_sum import uniform_mask_law

        beta = uniform_half_width(eps, k)
        try:
            return uniform_mask_law(k, beta, reach)
        except ValueError:
            largest = 150.0 * k / beta
            raise ValueError(f"mask 'uniform' at eps = {eps:g} with K = {k}: the quadrature of its law "
                             f"(kolmogorov.uniform_sum) reaches |f| beta / K of about 150, |f| <= {largest:.4g}; "
                             f"got |f| up to {reach:g} (narrow the f range)") from None
    if jump == DROPOUT_JUMP:
        return dropout_law(k, survival_probability(eps, k))
    return two_point_law(k, eps, jump)


def refuse_network_masks(jump: object, mask: object, only: str) -> None:
    """One ValueError naming jump or mask when either is given where no network is drawn: they go with `only`."""
    if jump is not None:
        raise ValueError(f"jump: the masks' jump a goes with {only} only")
    if mask is not None:
        raise ValueError(f"mask: the network's masks go with {only} only")


def check_network_masks(mask: object, jump: object, eps_values, n_blocks: int) -> tuple[str, float]:
    """(mask, jump) with the defaults filled in (None: dropout, jump 1) when the network's masks exist at every
    eps of eps_values, else one ValueError naming mask or jump (check_network_jump, uniform_half_width)."""
    from kolmogorov._checks import check_choice

    mask = check_choice("mask", DEFAULT_MASK if mask is None else mask, MASKS)
    if mask != DEFAULT_MASK and jump is not None and jump != DROPOUT_JUMP:
        raise ValueError(f"jump: the masks' jump a goes with mask 'dropout' only ({mask} masks have no jump size)")
    if mask == "uniform":
        for eps in eps_values:
            uniform_half_width(eps, n_blocks)
        return mask, DROPOUT_JUMP
    if mask == STOCHASTIC_DEPTH:
        from kolmogorov import stochastic_depth_survival_for

        stochastic_depth_blocks(n_blocks)
        for eps in eps_values:
            stochastic_depth_survival_for(eps, n_blocks)
        return mask, DROPOUT_JUMP
    return mask, check_network_jump(DROPOUT_JUMP if jump is None else jump, eps_values, n_blocks)


def check_network_jump(jump: object, eps_values, n_blocks: int) -> float:
    """jump as a float when the two-point law exists at every eps > 0 of eps_values (K eps^2 <= 1 and
    sqrt(K eps^2) <= jump <= 1), else one ValueError naming jump, the eps and the allowed interval."""
    from kolmogorov.two_point import check_jump, check_level

    if isinstance(jump, bool) or not isinstance(jump, (int, float, np.floating)) or not 0.0 < float(jump) <= 1.0:
        raise ValueError(f"jump must be a number in (0, 1] (1: dropout); got {jump!r}")
    jump = float(jump)
    if jump == DROPOUT_JUMP:
        return jump
    for eps in eps_values:
        if eps > 0:
            try:
                k, eps = check_level(n_blocks, eps)
                check_jump(jump, k * eps * eps)
            except ValueError as error:
                raise ValueError(f"jump {jump:g} at eps = {eps:g} with K = {n_blocks}: {error}") from None
    return jump


def _chunk_rows(y: np.ndarray, atoms: np.ndarray) -> int:
    """f points per chunk of the sums: at most _CHUNK_ELEMENTS end points, at least one f point."""
    return max(1, _CHUNK_ELEMENTS // (y.size * atoms.size))


def _end_points(f: np.ndarray, y: np.ndarray, atoms: np.ndarray):
    """(slice of f, X) per chunk of the grid f: X[i, j, n] = y_j + f_i m_n, chunks of at most _CHUNK_ELEMENTS."""
    rows = _chunk_rows(y, atoms)
    for start in range(0, f.size, rows):
        chunk = slice(start, start + rows)
        yield chunk, y[None, :, None] + f[chunk, None, None] * atoms[None, None, :]


def network_landscape(f: np.ndarray, y: np.ndarray, label: np.ndarray, eps: float, loss: str, objective: str,
                      n_blocks: int, jump: float = DROPOUT_JUMP, mask: str = DEFAULT_MASK) -> np.ndarray:
    """J(f) of the K-block dropout (jump = 1), two-point-mask, uniform-mask or stochastic-depth network at noise
    level eps (module docstring), exact; arguments already checked by landscape.objective.evaluate (f, y, label float
    arrays, label in {0, 1}, check_network_masks)."""
    from scipy.special import expit, logsumexp
    from tqdm import tqdm

    from landscape.objective import loss_of_prediction

    law = network_law(eps, n_blocks, jump, mask, reach=float(np.max(np.abs(f))))
    atoms, probs = law.multipliers, law.probabilities
    log_probs = np.log(probs)
    h = label[None, :]
    J = np.empty(f.size)
    chunks = -(-f.size // _chunk_rows(y, atoms))  # a bar (on a terminal) where the sums take long: many atoms or samples
    for chunk, x in tqdm(_end_points(f, y, atoms), total=chunks, desc=f"network K={n_blocks}", unit="chunk",
                         disable=None if chunks > 20 else True, leave=False):
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
                     n_blocks: int, jump: float = DROPOUT_JUMP, mask: str = DEFAULT_MASK) -> np.ndarray:
    """dJ/df of network_landscape on the grid f, exactly: X_K = y + f m_N, so dX_K/df = m_N.

    expected: sum_n P(n) (loss o sigma)'(X_n) m_n. ensemble: loss'(u) sum_n P(n) sigma'(X_n) m_n, u = E[sigma(X_K)];
    for ce the two ratios sum_n P(n) sigma'(X_n) m_n / u and / (1 - u) are taken with log-domain weights
    P(n) sigma(+-X_n) / E[sigma(+-X_K)] (each of u, 1 - u underflows far out in f)."""
    from scipy.special import expit, softmax

    from landscape.objective import loss_derivative

    law = network_law(eps, n_blocks, jump, mask, reach=float(np.max(np.abs(f))))
    atoms, probs = law.multipliers, law.probabilities
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


def draw_multipliers(rng: np.random.Generator, eps: float, n_blocks: int, size: int,
                     jump: float = DROPOUT_JUMP, mask: str = DEFAULT_MASK) -> np.ndarray:
    """size draws of the end point's multiplier m (X_K = y + f m), one network pass each: dropout's N / (pK) with
    N ~ Binomial(K, p) kept blocks when jump = 1, else the two-point masks' 1 + ((K - N) v/a - N a) / K with
    N ~ Binomial(K, q) steps down; with mask "uniform" the mean of K masks 1 + U(-beta, beta); with mask
    "stochastic_depth" (1/K) sum_l eta_l / p_l, eta_l ~ Bern(p_l)."""
    if eps == 0.0:  # every mask is 1
        return np.ones(size)
    if mask == STOCHASTIC_DEPTH:
        from kolmogorov import stochastic_depth_survival, stochastic_depth_survival_for

        survival = stochastic_depth_survival(stochastic_depth_survival_for(eps, n_blocks), n_blocks)
        return ((rng.random((size, n_blocks)) < survival) / survival).mean(axis=1)
    if mask == "uniform":
        beta = uniform_half_width(eps, n_blocks)
        return 1.0 + beta * rng.uniform(-1.0, 1.0, size=(size, n_blocks)).mean(axis=1)
    if jump == DROPOUT_JUMP:
        p = survival_probability(eps, n_blocks)
        return rng.binomial(n_blocks, p, size=size) / (p * n_blocks)
    from kolmogorov.two_point import TwoPointMask

    mask = TwoPointMask.at_level(n_blocks, eps, jump)
    return mask.block_mean(n_blocks, rng.binomial(n_blocks, mask.down_probability, size=size))


def network_sample_gradient(f: float, y: np.ndarray, label: np.ndarray, loss: str, multipliers: np.ndarray) -> float:
    """The gradient of one network pass per sample, d/df loss(sigma(y + f m), h) = (loss o sigma)'(X) m, averaged
    over the samples (multipliers: one m per sample, draw_multipliers). Its mean over m is network_gradient's
    "expected" one: SGD with it is dropout training of the K-block network (two-point-mask training for jump < 1)."""
    multipliers = np.asarray(multipliers, dtype=float)
    x = y + f * multipliers
    return float(np.mean(_per_atom_slope(x, label, loss) * multipliers))
