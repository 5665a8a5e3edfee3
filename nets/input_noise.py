"""Training on noisy inputs: a fixed Gaussian-corrupted copy of the training images (robust-ResNet paper, Fig. 8).

Zhang et al., "Towards robust ResNet: a small step but a giant leap", section 4.2 ("Real-world data for
noise filtering", Figure 8) and Appendix 6.5 (Figure 17): ResNets with step factor h = 1.0 and h = 0.1 are
trained on CIFAR-10 whose training inputs carry "Gaussian noise at every normalized pixel with zero mean and
a different standard deviation" (noise levels 0.0, 0.1, 0.3, 0.5, 0.8) and tested on clean data.

Here the noise level sigma is the standard deviation in normalized units, x_norm = (x / 255 - mean_c) / std_c
(the trainer's nets.augment.Normalizer, with the clean training set's per-channel statistics), so on the
uint8 scale channel c receives N(0, (sigma * std_c * 255)^2) noise. The noisy values are rounded and clipped
back to uint8, so the trainer's uint8 pipeline (on-device crop, flip, normalization) is unchanged; rounding
adds a variance of 1/12 in uint8 units (uniform quantization error), clipping only acts near 0 and 255.

The noise is drawn ONCE per run from a generator seeded by the run's seed: every epoch sees the same
corrupted images (like noise in the data collection, not a fresh augmentation each epoch), a resumed run
rebuilds the identical copy, and the test set stays clean.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

#: Second word of the noise generator's seed, so that the noise stream differs from any other use of the run's seed.
NOISE_STREAM = 0x1A9017
_CHUNK = 4096  # images per block of drawn noise (bounds the float32 temporary: ~50 MB for CIFAR)


def check_input_noise(sigma: float) -> float:
    """sigma as a float; ValueError naming `input_noise` unless it is a finite number >= 0."""
    if isinstance(sigma, bool):
        raise ValueError(f"input_noise must be a finite number >= 0; got {sigma!r}")
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"input_noise must be a finite number >= 0; got {sigma!r}") from None
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"input_noise must be a finite number >= 0; got {sigma!r}")
    return value


def noise_generator(seed: int) -> np.random.Generator:
    """The generator of a run's input noise: numpy's PCG64 seeded by (seed, NOISE_STREAM)."""
    return np.random.default_rng([int(seed), NOISE_STREAM])


def add_input_noise(images: np.ndarray, sigma: float, std: Sequence[float], seed: int) -> np.ndarray:
    """A copy of `images` with Gaussian noise of standard deviation `sigma` at every normalized pixel.

    Robust-ResNet paper, section 4.2 / Fig. 8 and Appendix 6.5: x_norm + sigma * z, z ~ N(0, 1) per pixel and
    channel, with x_norm = (x / 255 - mean_c) / std_c. On the uint8 scale this is
    x + sigma * std_c * 255 * z, rounded to the nearest integer and clipped to [0, 255].

    Args:
        images: uint8 (N, C, H, W), the clean training images.
        sigma: noise standard deviation in normalized units (>= 0; 0 returns `images` itself, uncopied).
        std: per-channel standard deviations std_c of the [0, 1]-scaled clean images (length C), the ones
            the trainer normalizes with (nets.data.Dataset.channel_stats()[1]).
        seed: the run's seed; the same seed gives the same noisy copy (noise_generator).

    Returns:
        uint8 (N, C, H, W): the corrupted copy (`images` itself when sigma == 0). z is exactly
        noise_generator(seed).standard_normal(images.shape, dtype=float32), drawn in blocks of images
        (the same numbers as one draw), so the copy depends on the seed only, not on the block size.
    """
    sigma = check_input_noise(sigma)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be a uint8 array (N, C, H, W); got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if std.shape != (images.shape[1],) or not np.all(np.isfinite(std) & (std > 0)):
        raise ValueError(f"std must hold {images.shape[1]} finite values > 0 (one per channel); got {std.tolist()}")
    if sigma == 0.0:
        return images
    scale = (sigma * 255.0 * std).astype(np.float32).reshape(1, -1, 1, 1)  # uint8 units per channel
    generator = noise_generator(seed)
    out = np.empty_like(images)
    for start in range(0, images.shape[0], _CHUNK):
        block = images[start:start + _CHUNK]
        noise = generator.standard_normal(block.shape, dtype=np.float32)
        noise *= scale
        noise += block
        np.rint(noise, out=noise)
        np.clip(noise, 0.0, 255.0, out=noise)
        out[start:start + _CHUNK] = noise.astype(np.uint8)
    return out


def noisy_training_set(dataset, sigma: float, seed: int):
    """`dataset` (nets.data.Dataset) with its training images corrupted by add_input_noise; test set untouched.

    The noise scale uses the clean training set's channel statistics, the same ones the trainer's
    normalizer uses (so sigma is exactly the noise standard deviation the network sees). sigma == 0
    returns `dataset` itself.
    """
    sigma = check_input_noise(sigma)
    if sigma == 0.0:
        return dataset
    _, std = dataset.channel_stats()
    return dataclasses.replace(dataset, train_images=add_input_noise(dataset.train_images, sigma, std, seed))


def argument_type(text: str) -> float:
    """argparse `type` of --input-noise: a finite number >= 0, else argparse's one-line error naming the flag."""
    from kolmogorov._cli import checked_type

    return checked_type(float, check_input_noise, "a finite number >= 0 (noise std in normalized units)")(text)
