"""The loss landscapes J_0 (3.10) and J_eps (3.7) of section 4.1 over a grid of constant velocities f.

For S = id, T = sigma and constant f, the network started at a sample y ends at
X_1 = y + f + eps |f| Z (the SDE (3.4) with g = f, solved exactly), and

* objective "ensemble" (the paper's J_eps, (3.7)): J = mean_i loss(u(y_i, 0), h_i), where
  u(y, 0) = E[sigma(X_1)] solves the backward Kolmogorov equation (3.6)/(4.1): the loss of the
  averaged (ensemble) prediction that the network makes at test time.
* objective "expected": J = mean_i E[loss(sigma(X_1), h_i)], the loss averaged over the injected
  noise, which is what dropout training minimises (each step sees one noisy forward pass).

eps = 0 gives J_0 (3.10) for both. Losses of a prediction u in [0, 1] against h in {0, 1}:
"l1" |u - h|, "l2" (u - h)^2 (the quadratic loss of Fig. 3), "ce" -h log u - (1-h) log(1-u).
For l1 the two objectives coincide (|sigma - h| is linear in sigma for h in {0, 1}); for l2 they
differ by the variance of sigma(X_1): J_expected = J_ensemble + mean_i Var[sigma(X_1)].

Solvers: "closed" (kolmogorov.u_sigmoid for the ensemble; 1-D Gauss quadrature over Z for the
expected objective, landscape.quadrature), "fd" (the backward equation (4.1) solved by finite
differences, kolmogorov.solve_backward_batched, with terminal sigma, or the loss of sigma for the
expected objective), "mc" (Monte Carlo over Z with a standard error). "network" is not the SDE but the
network it models: K dropout blocks with survival probability p = 1 / (1 + K eps^2), exactly
(landscape.network; n_blocks = K).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kolmogorov._checks import check_choice
from landscape._sigmoid import sigmoid as expit
from landscape.quadrature import TERMINALS, gaussian_expectation

LOSSES = ("l1", "l2", "ce")
#: a lower bound of every loss in LOSSES, hence of J_0 and J_eps (their means): the `floor` of
#: landscape.statistics.landscape_statistics, which keeps coarse-grid refinement from reporting J < 0
LOSS_FLOOR = 0.0
SOLVERS = ("closed", "fd", "mc", "network")
OBJECTIVES = ("ensemble", "expected")
_TINY = 1e-300
_MC_CHUNK = 1 << 21
_MC_MAX_DRAWS = 50_000_000


@dataclass(frozen=True)
class Landscape:
    """J over the grid f (both (n_f,)), with the standard error of a Monte Carlo solver (zeros otherwise)."""

    f: np.ndarray
    J: np.ndarray
    stderr: np.ndarray
    eps: float
    loss: str
    solver: str
    objective: str
    n_blocks: int | None = None
    jump: float | None = None  # solver "network": the masks' jump a (1: dropout; landscape.network)
    mask: str | None = None  # solver "network": "dropout" (two-point masks when jump < 1), "uniform", "stochastic_depth"


def check_eps(eps: float) -> float:
    """eps as a float; ValueError unless finite and >= 0."""
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}") from None
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return value


def check_f(f) -> np.ndarray:
    """The f grid as a 1-D float array; ValueError if empty or not finite."""
    f = np.atleast_1d(np.asarray(f, dtype=float))
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"f must be a non-empty 1-D grid, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("f must be finite (no nan or inf)")
    return f


def _check_data(y, label) -> tuple[np.ndarray, np.ndarray]:
    from landscape.datasets import check_samples

    return check_samples(y, label, "data", min_samples=1)


def loss_of_prediction(u: np.ndarray, h: np.ndarray, loss: str, u_bar: np.ndarray | None = None) -> np.ndarray:
    """Loss of predictions u in [0, 1] against labels h (broadcasting); u_bar = 1 - u to full precision (ce)."""
    if loss == "l1":
        return np.abs(u - h)
    if loss == "l2":
        return (u - h) ** 2
    u_bar = 1.0 - u if u_bar is None else u_bar
    return -h * np.log(np.maximum(u, _TINY)) - (1.0 - h) * np.log(np.maximum(u_bar, _TINY))


def loss_derivative(u: np.ndarray, h: np.ndarray, loss: str, u_bar: np.ndarray | None = None) -> np.ndarray:
    """d loss / d u for u strictly inside (0, 1)."""
    if loss == "l1":
        return np.broadcast_to(1.0 - 2.0 * h, np.broadcast_shapes(np.shape(u), np.shape(h)))
    if loss == "l2":
        return 2.0 * (u - h)
    u_bar = 1.0 - u if u_bar is None else u_bar
    return -h / np.maximum(u, _TINY) + (1.0 - h) / np.maximum(u_bar, _TINY)


def _ensemble_predictions(f: np.ndarray, y: np.ndarray, eps: float, need_u_bar: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """u(y_i, 0) and 1 - u(y_i, 0) on the grid, (n_f, n) each, from kolmogorov.u_sigmoid.

    1 - u = E[sigma(-X_1)] = u_sigmoid(-y, -f, eps) (Z and -Z have the same law), which keeps the
    cross-entropy accurate where u is close to 1 (computed only when need_u_bar; else 1 - u).
    """
    from kolmogorov import u_sigmoid

    u = u_sigmoid(y[None, :], f[:, None], eps)
    u_bar = u_sigmoid(-y[None, :], -f[:, None], eps) if need_u_bar else 1.0 - u
    return u, u_bar


def _ensemble_ce(f: np.ndarray, y: np.ndarray, label: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """J_eps (3.7) under cross-entropy and its f-derivative, (n_f,) each, with relative accuracy in the tails.

    The loss of label 1 is -log U(m, s), of label 0 -log (1 - U(m, s)) = -log U(-m, s), with m = y + f,
    s = eps |f| (U(m, s) = E[sigma(m + s Z)] = u(y, 0)). -log of u_sigmoid would inherit its absolute
    (not relative) accuracy and its clipping of |m| > 600: J_0 at y + f = -700 came out 600, and at
    eps |f| = 5, y + f = -200 the loss 567 instead of 188. kolmogorov.closed_form.log_sigmoid_normal_moments
    gives log U, U_m / U and U_mm / U to full relative accuracy, and d/df U(+-m, s) = +-U_m + eps^2 f U_mm.
    """
    from kolmogorov.closed_form import _prepare, log_sigmoid_normal_moments

    m, s, *_ = _prepare(y[None, :], f[:, None], eps, 0.0)  # refuses m or s beyond float64, as u_sigmoid does
    sign = np.where(label == 1.0, 1.0, -1.0)[None, :]
    m = sign * m
    log_u, r1, r2 = (a.reshape(m.shape) for a in log_sigmoid_normal_moments(m, s))
    # eps^2 f U_mm / U = s^2 (U_mm / U) / f (0 at f = 0): eps^2 alone overflows for eps > 1.3e154
    fc = np.broadcast_to(f[:, None], m.shape)
    eps_term = np.divide(s * (s * r2), fc, out=np.zeros(m.shape), where=fc != 0.0)
    return (-log_u).mean(axis=1), (-(sign * r1 + eps_term)).mean(axis=1)


def _signed_means(f: np.ndarray, y: np.ndarray, label: np.ndarray) -> np.ndarray:
    """m = y + f for label 0 and -(y + f) for label 1: the loss of label 1 at x is the label-0 loss at -x."""
    m = y[None, :] + f[:, None]
    return np.where(label[None, :] == 1.0, -m, m)


def _expected_closed(f: np.ndarray, y: np.ndarray, label: np.ndarray, eps: float, loss: str) -> np.ndarray:
    g, _, _ = TERMINALS[loss]
    m = _signed_means(f, y, label)
    s = np.broadcast_to(eps * np.abs(f)[:, None], m.shape)
    return gaussian_expectation(g, m, s).mean(axis=1)


def _mc(f, y, label, eps, loss, objective, n_samples, seed) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo over Z ~ N(0, 1): X_1 = y + f + eps |f| Z, n_samples draws shared by every f and y.

    Returns J and its standard error. For the ensemble the error is the delta-method one,
    std over draws of (1/n) sum_i loss'(u_i, h_i) (sigma(X_1,i) - u_i), divided by sqrt(n_samples).
    """
    from scipy.special import expit as sigmoid_c  # one C pass: faster than the numpy sigmoid on big arrays

    from tqdm import tqdm

    n = y.size
    if n * n_samples > _MC_MAX_DRAWS:
        raise ValueError(f"n_samples x samples must be at most {_MC_MAX_DRAWS:.0e} (memory), got {n_samples} x {n}")
    z = np.random.default_rng(seed).standard_normal(n_samples)
    J = np.empty(f.size)
    err = np.empty(f.size)
    rows = max(1, _MC_CHUNK // (n * n_samples))
    starts = range(0, f.size, rows)
    for start in tqdm(starts, desc="Monte Carlo", unit="chunk", disable=None if len(starts) > 20 else True, leave=False):
        fc = f[start : start + rows]
        m = y[None, :, None] + fc[:, None, None]
        x = m + eps * np.abs(fc)[:, None, None] * z[None, None, :]
        sig = sigmoid_c(x)
        h = label[None, :, None]
        if objective == "expected":
            if loss == "ce":
                per = np.where(h == 1.0, np.logaddexp(0.0, -x), np.logaddexp(0.0, x))
            else:
                per = loss_of_prediction(sig, h, loss)
            draws = per.mean(axis=1)
            J[start : start + rows] = draws.mean(axis=1)
        elif loss == "ce":
            # log of the Monte Carlo means in the log domain: u = mean sigma(x) underflows to 0 for
            # y + f below ~-745 (J_0 was capped at -log 1e-300 = 690.8 per sample, with stderr 0)
            from scipy.special import logsumexp

            log_sig, log_bar = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
            log_u = logsumexp(log_sig, axis=2) - math.log(n_samples)
            log_bar_u = logsumexp(log_bar, axis=2) - math.log(n_samples)
            h = label[None, :]
            J[start : start + rows] = (-h * log_u - (1.0 - h) * log_bar_u).mean(axis=1)
            # delta method: loss'(u) (sigma - u) = -h (sigma/u - 1) - (1-h) ((1-sigma)/(1-u) - 1)
            draws = (-h[:, :, None] * np.expm1(log_sig - log_u[:, :, None])
                     - (1.0 - h[:, :, None]) * np.expm1(log_bar - log_bar_u[:, :, None])).mean(axis=1)
        else:
            u = sig.mean(axis=2)
            u_bar = 1.0 - u
            J[start : start + rows] = loss_of_prediction(u, label[None, :], loss, u_bar).mean(axis=1)
            slope = loss_derivative(u, label[None, :], loss, u_bar)
            draws = (slope[:, :, None] * (sig - u[:, :, None])).mean(axis=1)
        err[start : start + rows] = draws.std(axis=1, ddof=1) / math.sqrt(n_samples)
    return J, err


def _fd(f, y, label, eps, loss, objective) -> np.ndarray:
    from landscape.fd import fd_terminal_expectations

    if objective == "ensemble":
        u = fd_terminal_expectations(f, y, eps, terminal=expit)
        u_bar = fd_terminal_expectations(-f, -y, eps, terminal=expit)
        return loss_of_prediction(u, label[None, :], loss, u_bar).mean(axis=1)
    g = TERMINALS[loss][0].g
    per = np.where(
        label[None, :] == 1.0,
        fd_terminal_expectations(-f, -y, eps, terminal=g),
        fd_terminal_expectations(f, y, eps, terminal=g),
    )
    return per.mean(axis=1)


def evaluate(
    f,
    y,
    label,
    eps: float,
    loss: str = "l2",
    solver: str = "closed",
    objective: str = "ensemble",
    *,
    n_samples: int = 20_000,
    seed: int = 0,
    n_blocks: int | None = None,
    jump: float | None = None,
    mask: str | None = None,
) -> Landscape:
    """J over the grid f with its standard error (non-zero for solver "mc" only); see :func:`compute`."""
    loss = check_choice("loss", loss, LOSSES)
    solver = check_choice("solver", solver, SOLVERS)
    objective = check_choice("objective", objective, OBJECTIVES)
    eps = check_eps(eps)
    f = check_f(f)
    y, label = _check_data(y, label)
    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if (solver == "network") != (n_blocks is not None):
        raise ValueError("n_blocks: give the number of dropout blocks K with solver 'network', and only there")
    from landscape.network import check_network_masks, network_landscape, refuse_network_masks

    if solver != "network":
        refuse_network_masks(jump, mask, "solver 'network'")
    stderr = np.zeros(f.size)
    if solver == "network":
        mask, jump = check_network_masks(mask, jump, (eps,), n_blocks)
        J = network_landscape(f, y, label, eps, loss, objective, n_blocks, jump, mask)
    elif solver == "mc":
        J, stderr = _mc(f, y, label, eps, loss, objective, int(n_samples), seed)
    elif solver == "fd":
        J = _fd(f, y, label, eps, loss, objective)
    elif objective == "expected":
        J = _expected_closed(f, y, label, eps, loss)
    elif loss == "ce":
        J = _ensemble_ce(f, y, label, eps)[0]
    else:
        u, u_bar = _ensemble_predictions(f, y, eps, need_u_bar=False)
        J = loss_of_prediction(u, label[None, :], loss, u_bar).mean(axis=1)
    return Landscape(f, J, stderr, eps, loss, solver, objective, n_blocks, jump, mask)


def compute(
    f,
    y,
    label,
    eps: float,
    loss: str = "l2",
    solver: str = "closed",
    objective: str = "ensemble",
    **solver_options,
) -> np.ndarray:
    """The loss landscape J(f) of the 1-D task of section 4.1, one value per grid point.

    objective "ensemble" is J_eps of (3.7) with u(y, 0) from (4.1); "expected" is the noise-averaged
    loss that dropout training minimises; eps = 0 gives J_0 of (3.10) for both.

    Args:
        f: grid of constant velocities, (n_f,).
        y: samples, (n,); label: their labels in {0, 1}, (n,).
        eps: noise level >= 0 of (3.4).
        loss: "l1", "l2" or "ce".
        solver: "closed", "fd", "mc" (the SDE) or "network" (K dropout blocks at p = 1 / (1 + K eps^2)).
        objective: "ensemble" or "expected".
        **solver_options: n_samples (default 20000) and seed (default 0) for "mc"; n_blocks (K), jump
            (a, default 1: dropout; a < 1: two-point masks of the same eps) and mask ("dropout", the default, or
            "uniform": 1 + U(-beta, beta), beta = eps sqrt(3K) < 1, or "stochastic_depth": the linear decay at the
            rms level eps, K <= 16) for "network".

    Returns:
        J, (n_f,). :func:`evaluate` also returns the Monte Carlo standard error.
    """
    return evaluate(f, y, label, eps, loss, solver, objective, **solver_options).J


def gradient(f, y, label, eps: float, loss: str = "l2", objective: str = "ensemble") -> np.ndarray:
    """dJ/df in closed form on the grid f, (n_f,).

    ensemble: mean_i loss'(u_i, h_i) du/df with du/df from kolmogorov.du_sigmoid_df.
    expected: with G(m, s) = E[g(m + s Z)], s = eps |f| and G_s = s G_mm (heat equation),
    d/df G(y + f, eps |f|) = E[g'(X_1)] + eps^2 f E[g''(X_1)]; label 1 uses g(-x).
    """
    loss = check_choice("loss", loss, LOSSES)
    objective = check_choice("objective", objective, OBJECTIVES)
    eps = check_eps(eps)
    f = check_f(f)
    y, label = _check_data(y, label)
    if objective == "ensemble" and loss == "ce":
        return _ensemble_ce(f, y, label, eps)[1]
    if objective == "ensemble":
        from kolmogorov import du_sigmoid_df

        u, u_bar = _ensemble_predictions(f, y, eps, need_u_bar=loss == "ce")
        du = du_sigmoid_df(y[None, :], f[:, None], eps)
        return (loss_derivative(u, label[None, :], loss, u_bar) * du).mean(axis=1)
    _, g1, g2 = TERMINALS[loss]
    m = _signed_means(f, y, label)
    s = np.broadcast_to(eps * np.abs(f)[:, None], m.shape)
    sign = np.where(label[None, :] == 1.0, -1.0, 1.0)
    per = sign * gaussian_expectation(g1, m, s) + eps * eps * f[:, None] * gaussian_expectation(g2, m, s)
    return per.mean(axis=1)


def sample_gradient(f: float, y: np.ndarray, label: np.ndarray, eps: float, loss: str, z: np.ndarray):
    """Gradient of the loss of one noisy forward pass per sample, X = y + f + eps |f| z.

    d/df loss(sigma(y + f + eps |f| z), h) = (loss o sigma)'(X) (1 + eps sign(f) z), averaged over the
    samples (the last axis of z, one draw per sample); its mean over z is the gradient of the
    "expected" objective, so SGD with it is dropout training (section 4.1, Fig. 5).

    Args:
        z: (n,) for one minibatch gradient (returns a float), or (k, n) for k independent ones.
    """
    _, g1, _ = TERMINALS[loss]
    z = np.asarray(z, dtype=float)
    x = y + f + eps * abs(f) * z
    slope = np.where(label == 1.0, -g1.g(-x), g1.g(x))
    out = np.mean(slope * (1.0 + eps * np.sign(f) * z), axis=-1)
    return float(out) if out.ndim == 0 else out


def fit_accuracy(f: float, y, label) -> float:
    """Training accuracy of the network at test time (eps = 0, section 3.2): label 1 iff sigma(y + f) > 1/2.

    Used to show over-damping (Fig. 4b): the minimiser of J_eps for a large eps no longer fits the data.
    """
    y, label = _check_data(y, label)
    return float(np.mean((y + float(f) > 0.0) == (label == 1.0)))
