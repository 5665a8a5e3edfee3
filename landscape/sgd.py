"""Minibatch SGD on the 1-D landscapes of section 4.1 (main paper, Fig. 5).

Each step draws a minibatch of m samples without replacement and moves f <- f - lr * g, where g is

* mode "smoothed": the exact gradient dJ/df of the chosen objective (J_eps (3.7) "ensemble" or the
  noise-averaged "expected" loss) over the minibatch (landscape.objective.gradient);
* mode "sampled": the gradient of one noisy forward pass per sample, X = y + f + eps |f| Z with a
  fresh Z ~ N(0, 1) each step, as dropout training does (landscape.objective.sample_gradient). Its
  mean is the gradient of the "expected" objective, so this is SGD on that objective with the
  injected noise added to the minibatch noise.

eps = 0 makes both modes plain SGD on J_0 (3.10). The path stores f and the full-data J of the
chosen objective at every iterate.

With n_blocks = K the landscape is the K-block dropout network's own (landscape.network, p = 1/(1 + K eps^2))
instead of the SDE's: "smoothed" descends its exact minibatch gradient, and "sampled" draws each sample's kept
count N ~ Binomial(K, p) afresh every step, which is dropout training of that network. jump = a < 1 puts
two-point masks of the same eps in place of dropout, mask = "uniform" the uniform masks 1 + U(-beta, beta) of
(3.14), and mask = "stochastic_depth" stochastic depth's whole-branch drops (landscape.network.draw_multipliers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from landscape.objective import (
    LOSSES,
    OBJECTIVES,
    check_choice,
    check_eps,
    compute,
    gradient,
    sample_gradient,
)

SGD_MODES = ("smoothed", "sampled")


@dataclass(frozen=True)
class SGDConfig:
    """Settings of one SGD run (section 4.1, Fig. 5: batch size m, learning rate, start f_0)."""

    f0: float
    lr: float = 1.0
    lr_end: float | None = None
    steps: int = 200
    batch_size: int = 1
    seed: int = 0
    mode: str = "smoothed"
    eps: float = 0.0
    loss: str = "l2"
    objective: str = "ensemble"
    n_blocks: int | None = None  # the K-block dropout network's landscape instead of the SDE's
    jump: float | None = None  # with n_blocks: the masks' jump a (None: 1, dropout; landscape.network)
    mask: str | None = None  # with n_blocks: "dropout" (None; two-point masks with a jump), "uniform", "stochastic_depth"

    def learning_rates(self) -> np.ndarray:
        """lr of each step: constant, or geometric from lr down (or up) to lr_end."""
        if self.lr_end is None:
            return np.full(self.steps, float(self.lr))
        return float(self.lr) * (self.lr_end / self.lr) ** (np.arange(self.steps) / max(1, self.steps - 1))

    def __post_init__(self):
        for name in ("f0", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.lr_end is not None and (isinstance(self.lr_end, bool) or not math.isfinite(self.lr_end) or self.lr_end <= 0):
            raise ValueError(f"lr_end must be a finite number > 0 or None, got {self.lr_end!r}")
        for name, low in (("steps", 1), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        check_choice("mode", self.mode, SGD_MODES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("objective", self.objective, OBJECTIVES)
        check_eps(self.eps)
        if self.n_blocks is not None and (isinstance(self.n_blocks, bool) or not isinstance(self.n_blocks, (int, np.integer))
                                          or self.n_blocks < 1):
            raise ValueError(f"n_blocks must be an integer >= 1 or None, got {self.n_blocks!r}")
        from landscape.network import check_network_masks, refuse_network_masks

        if self.n_blocks is None:
            refuse_network_masks(self.jump, self.mask, "n_blocks (the network's landscape)")
        else:
            # the network's masks with their defaults filled in (None: dropout, jump 1), checked once here
            object.__setattr__(self, "n_blocks", int(self.n_blocks))
            mask, jump = check_network_masks(self.mask, self.jump, (self.eps,), self.n_blocks)
            object.__setattr__(self, "mask", mask)
            object.__setattr__(self, "jump", jump)


@dataclass(frozen=True)
class SGDPath:
    """Iterates f_0 ... f_steps, (steps + 1,), and the full-data objective J at each of them."""

    config: SGDConfig
    f: np.ndarray
    J: np.ndarray

    @property
    def final_f(self) -> float:
        return float(self.f[-1])


def run_sgd(config: SGDConfig, y, label) -> SGDPath:
    """Run SGD as described by `config` on the samples (y, label); see the module docstring."""
    from landscape.datasets import check_samples

    y, label = check_samples(y, label, "data")
    if config.batch_size > y.size:
        raise ValueError(f"batch_size must be between 1 and the number of samples ({y.size}), got {config.batch_size}")
    path = _iterate(config, y, label)
    if config.n_blocks is None:
        J = compute(path, y, label, config.eps, config.loss, "closed", config.objective)
    else:
        J = compute(path, y, label, config.eps, config.loss, "network", config.objective, n_blocks=config.n_blocks,
                    jump=config.jump, mask=config.mask)
    return SGDPath(config, path, J)


def _iterate(config: SGDConfig, y: np.ndarray, label: np.ndarray) -> np.ndarray:
    # separate streams: the minibatches are the same in both modes for the same seed
    batches = np.random.default_rng(config.seed)
    noise = np.random.default_rng([config.seed, 1])
    rates = config.learning_rates()
    path = np.empty(config.steps + 1)
    path[0] = f = float(config.f0)
    network, jump, mask = config.n_blocks, config.jump, config.mask
    if network is not None:
        from landscape.network import draw_multipliers, network_gradient, network_sample_gradient
    for step in range(config.steps):
        batch = batches.choice(y.size, size=config.batch_size, replace=False)
        if config.mode == "sampled" and network is not None:
            multipliers = draw_multipliers(noise, config.eps, network, config.batch_size, jump, mask)
            g = network_sample_gradient(f, y[batch], label[batch], config.loss, multipliers)
        elif config.mode == "sampled":
            z = noise.standard_normal(config.batch_size)
            g = sample_gradient(f, y[batch], label[batch], config.eps, config.loss, z)
        elif network is not None:
            g = float(network_gradient(np.array([f]), y[batch], label[batch], config.eps, config.loss,
                                       config.objective, network, jump, mask)[0])
        else:
            g = float(gradient(np.array([f]), y[batch], label[batch], config.eps, config.loss, config.objective)[0])
        f = f - rates[step] * g
        if not math.isfinite(f):
            raise ValueError(f"SGD diverged at step {step + 1} (f = {f}); lower lr (now {config.lr})")
        path[step + 1] = f
    return path


def sgd(
    y,
    label,
    eps: float,
    *,
    f0: float,
    lr: float = 1.0,
    steps: int = 200,
    batch_size: int = 1,
    lr_end: float | None = None,
    seed: int = 0,
    mode: str = "smoothed",
    loss: str = "l2",
    objective: str = "ensemble",
    n_blocks: int | None = None,
    jump: float | None = None,
    mask: str | None = None,
) -> SGDPath:
    """Minibatch SGD on J from f0; returns the path of f and J (see the module docstring).

    Args:
        y, label: the data set, (n,) each.
        eps: noise level >= 0 of (3.4); 0 gives SGD on J_0 (3.10).
        f0: start; lr: learning rate > 0; steps >= 1; batch_size m in [1, n]; lr_end: if given, the
            rate decays geometrically from lr to lr_end over the steps; seed of the minibatches and
            of the injected noise.
        mode: "smoothed" or "sampled".
        loss: "l1", "l2" or "ce"; objective: "ensemble" (J_eps (3.7)) or "expected" (the one whose
            gradient "sampled" estimates).
        n_blocks: K for the K-block dropout network's landscape (landscape.network) instead of the SDE's.
        jump: with n_blocks, the masks' jump a in [sqrt(K eps^2), 1] (1 or None: dropout; less: two-point masks).
        mask: with n_blocks, "dropout" (None), "uniform" (1 + U(-beta, beta), beta = eps sqrt(3K) < 1) or
            "stochastic_depth" (the linear decay at the rms level eps, K <= 16).
    """
    config = SGDConfig(f0=f0, lr=lr, lr_end=lr_end, steps=steps, batch_size=batch_size, seed=seed, mode=mode, eps=eps,
                       loss=loss, objective=objective, n_blocks=n_blocks, jump=jump, mask=mask)
    return run_sgd(config, y, label)
