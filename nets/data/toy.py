"""Small data sets that need no files: deterministic CIFAR-shaped `synthetic` data and sklearn's `digits`."""
from __future__ import annotations

import numpy as np

from .base import Dataset, DataError

SYNTHETIC_TRAIN = 2048
SYNTHETIC_TEST = 512
SYNTHETIC_MAX = 200_000  # images per split: 600 MB at 3x32x32, four CIFAR-10 training sets


def make_synthetic(n_train: int = SYNTHETIC_TRAIN, n_test: int = SYNTHETIC_TEST, num_classes: int = 10,
                   size: int = 32, channels: int = 3, noise: float = 48.0, seed: int = 0) -> Dataset:
    """Deterministic CIFAR-shaped classification data that a small ResNet learns in a few epochs.

    Class k has a smooth template (a mean colour plus a few low-frequency cosines per channel); an image
    is its class template, circularly shifted by up to 4 pixels, plus i.i.d. Gaussian pixel noise of
    standard deviation `noise` (on the 0..255 scale), rounded and clipped to uint8. The same arguments
    always give the same arrays.
    """
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if not 1 <= value <= SYNTHETIC_MAX:
            raise ValueError(f"{name} must be an integer in [1, {SYNTHETIC_MAX}], got {value}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    rng = np.random.default_rng(seed)
    grid = np.arange(size) * (2 * np.pi / size)
    templates = np.empty((num_classes, channels, size, size))
    for k in range(num_classes):
        for c in range(channels):
            field = np.full((size, size), rng.uniform(70.0, 185.0))
            for _ in range(3):
                fy, fx = rng.integers(0, 3, size=2)
                phase = rng.uniform(0, 2 * np.pi)
                field += rng.uniform(20.0, 40.0) * np.cos(fy * grid[:, None] + fx * grid[None, :] + phase)
            templates[k, c] = field

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n, dtype=np.int64) % num_classes
        rng.shuffle(labels)
        shifts = rng.integers(-4, 5, size=(n, 2))
        images = np.empty((n, channels, size, size), dtype=np.uint8)
        for i in range(n):
            img = np.roll(templates[labels[i]], shift=tuple(shifts[i]), axis=(1, 2))
            img = img + noise * rng.standard_normal(img.shape)
            images[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return images, labels

    train_images, train_labels = draw(n_train)
    test_images, test_labels = draw(n_test)
    return Dataset(name="synthetic", classes=tuple(f"class{k}" for k in range(num_classes)),
                   train_images=train_images, train_labels=train_labels, test_images=test_images,
                   test_labels=test_labels, source=f"make_synthetic(n_train={n_train}, n_test={n_test}, seed={seed})")


def parse_synthetic(spec: str) -> Dataset:
    """`synthetic`, `synthetic:N_TRAIN` or `synthetic:N_TRAIN:N_TEST` -> make_synthetic(...)."""
    parts = spec.split(":")
    try:
        sizes = [int(p) for p in parts[1:]]
    except ValueError:
        sizes = []
        parts = ["bad"] * 4
    if parts[0] != "synthetic" or len(parts) > 3 or any(not 1 <= s <= SYNTHETIC_MAX for s in sizes):
        raise DataError(f"data: {spec!r} is not 'synthetic', 'synthetic:N_TRAIN' or 'synthetic:N_TRAIN:N_TEST' "
                        f"with integers in [1, {SYNTHETIC_MAX}]")
    n_train = sizes[0] if sizes else SYNTHETIC_TRAIN
    n_test = sizes[1] if len(sizes) > 1 else max(1, min(SYNTHETIC_TEST, n_train // 4))
    return make_synthetic(n_train, n_test)


def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 1 channel) as uint8, split 1437 train / 360 test.

    Pixel values 0..16 are scaled to 0..255. The split is a fixed permutation (numpy seed 0). Flips do not
    preserve digit labels, so the augmentation is a 1-pixel random crop only.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(labels.size)
    train, test = order[:1437], order[1437:]
    return Dataset(name="digits", classes=tuple(str(d) for d in range(10)), train_images=images[train],
                   train_labels=labels[train], test_images=images[test], test_labels=labels[test],
                   source="sklearn.datasets.load_digits", pad=1, flip=False)
