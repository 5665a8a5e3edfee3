"""A small seeded trainer for the MLP ResNets of the companion experiments (CPU, in-memory data).

Full data in tensors, shuffled by a seeded torch.Generator, cross-entropy loss, SGD with momentum or Adam.
Optionally records, at every iteration, each layer's gradient norm (before the update) and weight norm
(after it), as robust ResNet's Fig. 2 does for its layer #2. A run whose loss stops being finite is marked
`diverged` and stops; the trained network is then evaluated as it is (non-finite logits count as errors).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from kolmogorov._checks import check_choice
from nets.companion.datasets import Dataset
from nets.companion.layer_norms import gradient_norms, layer_groups, weight_norms

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters. Defaults are Adam with its usual lr 1e-3: our choice, Zhang & Wynter do not
    state their optimizer (they used Keras). lr_scales: (parameter name, factor) pairs: those parameters train
    at factor * lr (their weight decay unchanged), e.g. (("fc.weight", 100.0),)."""

    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    record_norms: bool = False
    lr_scales: tuple[tuple[str, float], ...] = ()

    def describe(self) -> str:
        """The recipe in a few words, e.g. "Adam lr 0.01, 20 epochs, batch 100" (a figure title's)."""
        name = {"adam": "Adam", "sgd": "SGD"}.get(self.optimizer, self.optimizer)
        return f"{name} lr {self.lr:g}, {self.epochs} epochs, batch {self.batch_size}"

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        pairs_valid = isinstance(self.lr_scales, tuple) and all(_is_lr_scale(pair) for pair in self.lr_scales)
        if not pairs_valid or len({name for name, _ in self.lr_scales}) != len(self.lr_scales):
            raise ValueError(f"lr_scales must be a tuple of (parameter name, factor > 0) pairs with distinct names, "
                             f"got {self.lr_scales!r}")


def _is_lr_scale(pair: object) -> bool:
    """Whether `pair` is (parameter name, factor > 0), the factor a real number and not a bool."""
    return (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and not isinstance(pair[1], bool)
            and isinstance(pair[1], (int, float)) and pair[1] > 0)


@dataclass
class TrainResult:
    """What a run produced. Norm arrays are (iterations, layers), or None when not recorded."""

    config: TrainConfig
    train_loss: np.ndarray
    train_accuracy: float
    test_accuracy: float
    diverged: bool
    iterations: int
    seconds: float
    layer_names: list[str] = field(default_factory=list)
    grad_norms: np.ndarray | None = None
    weight_norms: np.ndarray | None = None


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by config.optimizer over model's parameters.

    The fused implementation is used where torch has one for the parameters' device (on CPU it makes a
    step of a 100-block network ten times cheaper than the per-tensor loop); otherwise the foreach one.
    config.lr_scales puts each named parameter in a group of its own at factor * lr.

    Raises:
        ValueError: lr_scales naming a parameter the model does not have.
    """
    params: list = list(model.parameters())
    if config.lr_scales:
        named = dict(model.named_parameters())
        scales = dict(config.lr_scales)
        unknown = sorted(set(scales) - set(named))
        if unknown:
            raise ValueError(f"lr_scales names parameters the model does not have: {unknown}")
        params = [{"params": [p for name, p in named.items() if name not in scales]}]
        params += [{"params": [named[name]], "lr": config.lr * factor} for name, factor in config.lr_scales]
    if config.optimizer == "adam":
        build = lambda **impl: torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, **impl)
    else:
        build = lambda **impl: torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                               weight_decay=config.weight_decay, **impl)
    try:
        return build(fused=True)
    except (RuntimeError, TypeError, ValueError):
        return build(foreach=True)


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
             batch_size: int = 4096) -> float:
    """Fraction of rows whose arg-max logit is the label, in eval mode; rows with non-finite logits count as wrong."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        finite = torch.isfinite(logits).all(dim=1)
        correct += int(((logits.argmax(dim=1) == y[start:start + batch_size]) & finite).sum())
    model.train(was_training)
    return correct / max(len(x), 1)


def train(model: torch.nn.Module, data: Dataset, config: TrainConfig, progress: bool = False) -> TrainResult:
    """Train `model` on data.x_train / data.y_train with `config`; returns losses, accuracies and norms.

    The shuffling order depends only on config.seed; the model's initialization is the caller's (build it
    under torch.manual_seed). `progress` shows a tqdm bar over epochs.
    """
    from tqdm.auto import tqdm

    start_time = time.perf_counter()
    x = torch.as_tensor(data.x_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.int64)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    loss_fn = torch.nn.CrossEntropyLoss()
    groups = layer_groups(model) if config.record_norms else None
    grads: list[list[float]] = []
    weights: list[list[float]] = []
    epoch_losses: list[float] = []
    diverged = False
    iterations = 0
    has_batch_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model.train()
    for _ in tqdm(range(config.epochs), desc=f"train {data.name}", disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x), config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2 and has_batch_norm:
                continue  # batch norm needs two samples; drop a last batch of one
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[index]), y[index])
            if not torch.isfinite(loss):
                diverged = True
                break
            loss.backward()
            if groups is not None:
                grads.append(gradient_norms(groups))
            optimizer.step()
            if groups is not None:
                weights.append(weight_norms(groups))
            iterations += 1
            total += float(loss.detach()) * len(index)
            count += len(index)
        epoch_losses.append(total / count if count else float("nan"))
        if diverged:
            break
    return TrainResult(
        config=config,
        train_loss=np.asarray(epoch_losses),
        train_accuracy=accuracy(model, data.x_train, data.y_train),
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        diverged=diverged,
        iterations=iterations,
        seconds=time.perf_counter() - start_time,
        layer_names=list(groups) if groups is not None else [],
        grad_norms=np.asarray(grads) if groups is not None else None,
        weight_norms=np.asarray(weights) if groups is not None else None,
    )
