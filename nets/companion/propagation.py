"""Feature propagation through the layers of a trained MLP ResNet (Zhang & Wynter Figs. 2-7; robust ResNet Fig. 7).

For y_{i+1} = y_i + h f(y_i) (eq. (5)/(7)) the features y_0, ..., y_D of a test set are the trajectory of
an explicit Euler scheme. We extract them, and measure three things along the depth:

* linear separability: test accuracy of a logistic-regression probe fitted on the training set's features
  of the same layer (1.0 when the layer's features are linearly separable and generalize);
* smoothness: the mean step length ||y_{i+1} - y_i|| of the trajectory (robust ResNet Sec. 3.3);
* noise amplification: ||y_i(x + delta) - y_i(x)|| / ||delta|| for Gaussian input perturbations delta,
  the quantity bounded by robust ResNet's eqs. (11)-(12).
"""
from __future__ import annotations

import numpy as np
import torch


def shown_layers(depth: int) -> list[int]:
    """The layers the papers draw: 0, 5 and every tenth of the depth (100 -> 0,5,10,...,100; 500 -> 0,5,50,...,500)."""
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, got {depth!r}")
    step = max(1, depth // 10)
    return sorted({0, min(5, depth), *range(step, depth + 1, step), depth})


@torch.no_grad()
def layer_features(model: torch.nn.Module, x: np.ndarray, layers: list[int] | None = None) -> np.ndarray:
    """Features y_k of the rows of x at the given layers (all when None): array (len(layers), N, width), eval mode."""
    was_training = model.training
    model.eval()
    _, features = model(torch.as_tensor(x, dtype=torch.float32), return_features=True)
    model.train(was_training)
    depth = len(features) - 1
    layers = list(range(depth + 1)) if layers is None else list(layers)
    for k in layers:
        if not 0 <= k <= depth:
            raise ValueError(f"layers must lie in [0, {depth}], got {k}")
    return np.stack([features[k].detach().cpu().numpy() for k in layers]).astype(np.float64)


def linear_probe_accuracy(train_features: np.ndarray, y_train: np.ndarray, test_features: np.ndarray,
                          y_test: np.ndarray, C: float = 1e3) -> np.ndarray:
    """Per layer, test accuracy of a standardized logistic regression fitted on that layer's training features.

    train_features: (L, N_train, d), test_features: (L, N_test, d). A layer whose features are not all finite
    (a diverged network) gets NaN.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if train_features.shape[0] != test_features.shape[0]:
        raise ValueError("train_features and test_features must have the same number of layers")
    accuracies = np.full(train_features.shape[0], np.nan)
    for k, (f_train, f_test) in enumerate(zip(train_features, test_features)):
        if not (np.isfinite(f_train).all() and np.isfinite(f_test).all()):
            continue
        if len(np.unique(y_train)) < 2:
            raise ValueError("y_train must contain at least two classes")
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        probe.fit(f_train, y_train)
        accuracies[k] = probe.score(f_test, y_test)
    return accuracies


def step_lengths(features: np.ndarray) -> np.ndarray:
    """Mean over points of ||y_{i+1} - y_i|| for consecutive layers: features (D+1, N, d) -> (D,)."""
    if features.ndim != 3 or features.shape[0] < 2:
        raise ValueError("features must have shape (layers >= 2, N, d)")
    return np.linalg.norm(np.diff(features, axis=0), axis=2).mean(axis=1)


def perturbation_growth(model: torch.nn.Module, x: np.ndarray, std: float, seed: int = 0) -> np.ndarray:
    """Per layer k = 0..D, the mean over rows of ||y_k(x + delta) - y_k(x)|| / ||delta||, delta ~ N(0, std^2 I).

    Layer 0 is 1 when the network has width None (y_0 = x); robust ResNet's eq. (12) bounds the growth by 1 + h D W / eps.
    """
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")
    rng = np.random.default_rng(seed)
    delta = rng.normal(0.0, std, size=np.shape(x))
    clean = layer_features(model, x)
    noisy = layer_features(model, np.asarray(x, dtype=np.float64) + delta)
    return (np.linalg.norm(noisy - clean, axis=2) / np.linalg.norm(delta, axis=1)).mean(axis=1)
