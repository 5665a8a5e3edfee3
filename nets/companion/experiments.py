"""Single-network experiments: feature propagation (Zhang & Wynter Figs. 2-7, robust ResNet Fig. 7) and
per-layer gradient and weight norms during training (robust ResNet Fig. 2).

Each experiment is a frozen config in, a result dataclass out; figures plot results and never train.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np
import torch

from kolmogorov._checks import check_choice
from nets.companion.datasets import Dataset, digits, moons, synthetic_binary, wine
from nets.companion.models import NetSpec, build_net
from nets.companion.propagation import (layer_features, linear_probe_accuracy, perturbation_growth,
                                        shown_layers, step_lengths)
from nets.companion.trainer import TrainConfig, TrainResult, train

PROPAGATION_DATASETS = ("synthetic", "moons")


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with torch limited to n intra-op threads (small networks are fastest on one), then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class PropagationConfig:
    """Train one MLP ResNet on 2-D data and follow its test features through the layers.

    dataset: "synthetic" (Zhang & Wynter Fig. 1) or "moons" (robust ResNet Fig. 7, Gaussian noise `noise`).
    layers: the layers whose features are kept (None: the papers' choice, propagation.shown_layers).
    perturbation_std: when set, also measure noise amplification per layer (robust ResNet eqs. (11)-(12)).
    """

    net: NetSpec = NetSpec()
    train: TrainConfig = TrainConfig()
    dataset: str = "synthetic"
    n_train: int = 1000
    n_test: int = 500
    noise: float = 0.2
    data_seed: int = 0
    model_seed: int = 0
    perturbation_std: float | None = None
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, PROPAGATION_DATASETS)
        if self.layers is not None and any(not 0 <= k <= self.net.depth for k in self.layers):
            raise ValueError(f"layers must lie in [0, {self.net.depth}], got {self.layers!r}")

    def data(self) -> Dataset:
        if self.dataset == "synthetic":
            return synthetic_binary(self.n_train, self.n_test, seed=self.data_seed)
        return moons(self.n_train, self.n_test, noise=self.noise, seed=self.data_seed)


@dataclass
class PropagationResult:
    """Test features at the shown layers, with separability, smoothness and noise amplification along depth.

    features: (len(layers), N_test, width); probe_accuracy: (len(layers),) linear-probe test accuracy;
    step_lengths: (depth,) mean ||y_{i+1} - y_i||; perturbation_growth: (depth + 1,) or None.
    """

    config: PropagationConfig
    layers: list[int]
    features: np.ndarray
    labels: np.ndarray
    probe_accuracy: np.ndarray
    step_lengths: np.ndarray
    feature_scale: np.ndarray
    training: TrainResult
    perturbation_growth: np.ndarray | None = None

    @property
    def test_accuracy(self) -> float:
        return self.training.test_accuracy


def run_propagation(config: PropagationConfig, progress: bool = False) -> PropagationResult:
    """Train config.net on config.data() and extract the propagation of the test set (see PropagationResult)."""
    data = config.data()
    with torch_threads(1):
        model = build_net(config.net, data.in_features, data.num_classes, seed=config.model_seed)
        training = train(model, data, config.train, progress=progress)
        all_test = layer_features(model, data.x_test)
        all_train = layer_features(model, data.x_train)
        growth = (perturbation_growth(model, data.x_test, config.perturbation_std, seed=config.data_seed)
                  if config.perturbation_std is not None else None)
    layers = list(config.layers) if config.layers is not None else shown_layers(len(all_test) - 1)
    with np.errstate(all="ignore"):
        scale = np.abs(all_test).max(axis=(1, 2))
        steps = step_lengths(all_test)
    return PropagationResult(
        config=config,
        layers=layers,
        features=all_test[layers],
        labels=data.y_test,
        probe_accuracy=linear_probe_accuracy(all_train[layers], data.y_train, all_test[layers], data.y_test),
        step_lengths=steps,
        feature_scale=scale,
        training=training,
        perturbation_growth=growth,
    )


GRADIENT_DATASETS = {"digits": digits, "wine": wine}


@dataclass(frozen=True)
class GradientNormConfig:
    """Train the same network for each (lr, h) and record per-layer gradient and weight norms at every iteration.

    Robust ResNet Fig. 2 uses ResNet-218 with batch norm, SGD momentum 0.9, lr 0.1 on CIFAR-10; ours is the
    CPU analogue: an MLP ResNet with batch norm on digits with the same optimizer. `lrs` repeats the
    comparison at other learning rates (None: only train.lr), e.g. one at which h = 1 does not diverge.
    """

    net: NetSpec = NetSpec(depth=50, variant="batchnorm")
    h_values: tuple[float, ...] = (1.0, 0.1)
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=0.1, optimizer="sgd", record_norms=True)
    dataset: str = "digits"
    data_seed: int = 0
    model_seed: int = 0
    lrs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, GRADIENT_DATASETS)
        if not self.h_values:
            raise ValueError("h_values must name at least one step factor")
        if self.lrs is not None and (not self.lrs or any(not lr > 0 for lr in self.lrs)):
            raise ValueError(f"lrs must be None or positive learning rates, got {self.lrs!r}")

    @property
    def learning_rates(self) -> tuple[float, ...]:
        return self.lrs if self.lrs is not None else (self.train.lr,)


@dataclass
class GradientNormResult:
    """One TrainResult (grad_norms / weight_norms of shape (iterations, layers)) per (lr, h)."""

    config: GradientNormConfig
    runs: dict[tuple[float, float], TrainResult] = field(default_factory=dict)

    @property
    def block_names(self) -> list[str]:
        """Layer names of the residual blocks (indexed groups), in depth order."""
        first = next(iter(self.runs.values()))
        return [name for name in first.layer_names if name.rsplit(".", 1)[-1].isdigit()]


def run_gradient_norms(config: GradientNormConfig, progress: bool = False) -> GradientNormResult:
    """Train config.net once per (lr, h) (same initialization seed and batch order for all)."""
    data = GRADIENT_DATASETS[config.dataset](seed=config.data_seed)
    result = GradientNormResult(config=config)
    with torch_threads(1):
        for lr in config.learning_rates:
            training = replace(config.train, lr=lr, record_norms=True)
            for h in config.h_values:
                model = build_net(replace(config.net, h=h), data.in_features, data.num_classes,
                                  seed=config.model_seed)
                result.runs[(lr, h)] = train(model, data, training, progress=progress)
    return result
