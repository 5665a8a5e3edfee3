"""Small 2-D and tabular classification data for the companion papers' CPU experiments.

* `synthetic_binary`: the non-linearly separable binary data of Zhang & Wynter, Fig. 1 (the paper does not
  give its generator; ours is stated exactly below so that its separability can be checked).
* `wine`: scikit-learn's copy of the UCI Wine data (Zhang & Wynter, Fig. 9).
* `moons`: scikit-learn's two moons with Gaussian noise (Zhang et al., robust ResNet, Fig. 7).
* `digits`: scikit-learn's 8x8 digits, flattened to 64 features (our CPU analogue of robust ResNet Figs. 8-9).

Every loader is deterministic in its `seed` and returns a `Dataset` of float32 features and int64 labels.
Tabular features are standardized with the training split's mean and standard deviation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from kolmogorov._checks import check_choice

DATASETS = ("synthetic", "wine", "moons", "digits")


@dataclass(frozen=True)
class Dataset:
    """A train/test split. x_*: (N, d) float32; y_*: (N,) int64 in [0, num_classes)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def in_features(self) -> int:
        return int(self.x_train.shape[1])


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {value!r}")


def sine_boundary(x1: np.ndarray, amplitude: float, frequency: float) -> np.ndarray:
    """The class boundary of `synthetic_binary`: x2 = amplitude * sin(frequency * pi * x1)."""
    return amplitude * np.sin(frequency * np.pi * x1)


def _sample_sine_classes(n: int, rng: np.random.Generator, amplitude: float, frequency: float, margin: float):
    points = np.empty((0, 2))
    while len(points) < n:
        candidates = rng.uniform(-1.0, 1.0, size=(2 * n, 2))
        gap = candidates[:, 1] - sine_boundary(candidates[:, 0], amplitude, frequency)
        points = np.concatenate([points, candidates[np.abs(gap) >= margin / 2]])
    points = points[:n]
    labels = (points[:, 1] > sine_boundary(points[:, 0], amplitude, frequency)).astype(np.int64)
    return points.astype(np.float32), labels


def synthetic_binary(n_train: int = 1000, n_test: int = 500, seed: int = 0, amplitude: float = 0.7,
                     frequency: float = 1.5, margin: float = 0.1) -> Dataset:
    """Non-linearly separable binary data in the square [-1, 1]^2 (Zhang & Wynter, Fig. 1).

    Points are uniform in the square outside a band of width `margin` around the curve
    x2 = amplitude * sin(frequency * pi * x1); the label is 1 above the curve and 0 below. The classes are
    separated by a smooth curve with a gap (so a 2-D flow y' = f(y) can make them linearly separable, as
    the paper's eqs. (5)-(8) require of y_0 = x), while no straight line classifies them all.

    Args:
        n_train, n_test: number of points in each split.
        seed: the split's random seed (train and test are drawn from independent streams).
        amplitude, frequency: shape of the boundary curve.
        margin: width of the empty band around the boundary, in [0, 1).
    """
    _check_positive_int("n_train", n_train)
    _check_positive_int("n_test", n_test)
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must lie in [0, 1), got {margin!r}")
    if not 0.0 <= amplitude <= 0.8:
        raise ValueError(f"amplitude must lie in [0, 0.8] (the curve must stay inside the square), got {amplitude!r}")
    if frequency <= 0:
        raise ValueError(f"frequency must be positive, got {frequency!r}")
    train_rng, test_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x_train, y_train = _sample_sine_classes(n_train, train_rng, amplitude, frequency, margin)
    x_test, y_test = _sample_sine_classes(n_test, test_rng, amplitude, frequency, margin)
    params = dict(n_train=n_train, n_test=n_test, seed=seed, amplitude=amplitude, frequency=frequency, margin=margin)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, 2, params)


def moons(n_train: int = 1000, n_test: int = 500, noise: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's two interleaving half circles with Gaussian noise of std `noise` (robust ResNet, Fig. 7)."""
    from sklearn.datasets import make_moons

    _check_positive_int("n_train", n_train)
    _check_positive_int("n_test", n_test)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    train_seed, test_seed = np.random.SeedSequence(seed).generate_state(2)
    x_train, y_train = make_moons(n_train, noise=noise, random_state=int(train_seed))
    x_test, y_test = make_moons(n_test, noise=noise, random_state=int(test_seed))
    params = dict(n_train=n_train, n_test=n_test, noise=noise, seed=seed)
    return Dataset("moons", x_train.astype(np.float32), y_train.astype(np.int64), x_test.astype(np.float32),
                   y_test.astype(np.int64), 2, params)


def _standardized_split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Dataset:
    from sklearn.model_selection import train_test_split

    _check_fraction("test_fraction", test_fraction)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    params = dict(test_fraction=test_fraction, seed=seed, standardized="train mean and std")
    return Dataset(name, ((x_train - mean) / std).astype(np.float32), y_train.astype(np.int64),
                   ((x_test - mean) / std).astype(np.float32), y_test.astype(np.int64), int(y.max()) + 1, params)


def wine(test_fraction: float = 0.3, seed: int = 0) -> Dataset:
    """UCI Wine (178 samples, 13 features, 3 cultivars; scikit-learn's copy), stratified split (Zhang & Wynter, Fig. 9)."""
    from sklearn.datasets import load_wine

    bunch = load_wine()
    return _standardized_split("wine", bunch.data, bunch.target, test_fraction, seed)


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 samples, 10 classes) flattened to 64 standardized pixels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _standardized_split("digits", bunch.data, bunch.target, test_fraction, seed)


def with_input_noise(data: Dataset, std: float, seed: int = 0) -> Dataset:
    """The same split with i.i.d. N(0, std^2) noise added once to every training feature; the test set stays clean.

    This is robust ResNet's Sec. 4.2 / Appendix 6.5 protocol: Gaussian noise on every normalized pixel of
    the training inputs, test accuracy on clean inputs (its Fig. 8).
    """
    if std < 0:
        raise ValueError(f"std must be >= 0, got {std!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6E6F]))
    noisy = data.x_train + rng.normal(0.0, std, size=data.x_train.shape).astype(np.float32)
    return replace(data, x_train=noisy.astype(np.float32), params={**data.params, "train_noise_std": std, "noise_seed": seed})


def load_dataset(name: str, seed: int = 0, **kwargs: Any) -> Dataset:
    """Load one of DATASETS by name with its keyword arguments."""
    loaders = {"synthetic": synthetic_binary, "wine": wine, "moons": moons, "digits": digits}
    check_choice("dataset", name, DATASETS)
    return loaders[name](seed=seed, **kwargs)
