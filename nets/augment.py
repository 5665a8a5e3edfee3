"""Batched data augmentation on the device: random crop with zero padding, horizontal flip, normalization.

The "standard data augmentation" of the main paper's section 4.2.1 (4-pixel zero padding, random 32x32
crop, random horizontal flip), done for a whole batch with two gathers instead of per image in
DataLoader workers. Random numbers come from a CPU torch.Generator and are moved to the device, so a
seed gives the same crops and flips on CPU and CUDA and the generator state is one small CPU tensor
to checkpoint. Whole data sets stay on the device as uint8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Normalizer:
    """Maps uint8 images to float: x -> (x / 255 - mean) / std per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"mean and std must have equal length and std > 0, got {self.mean}, {self.std}")

    @classmethod
    def from_stats(cls, mean: np.ndarray, std: np.ndarray) -> "Normalizer":
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 (B, C, H, W) -> normalized `dtype` (B, C, H, W) on the same device."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != len(self.mean):
            raise ValueError(f"images must be uint8 (B, {len(self.mean)}, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        scale, shift = self._constants(images.device, dtype)
        return images.to(dtype) * scale + shift

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 / (255 std), -mean / std) as (1, C, 1, 1) tensors, made once per device and dtype."""
        cache = self.__dict__.setdefault("_cache", {})
        key = (str(device), dtype)
        if key not in cache:
            scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], dtype=torch.float64)
            shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], dtype=torch.float64)
            cache[key] = (scale.to(device, dtype).view(1, -1, 1, 1), shift.to(device, dtype).view(1, -1, 1, 1))
        return cache[key]


def crop_flip(images: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Crop each zero-padded image at (dy_b, dx_b) back to its size and flip it where flips_b, in two gathers.

    Args:
        images: uint8 (B, C, H, W) on any device.
        pad: zero padding on each side (4 for CIFAR).
        dy, dx: int64 (B,) offsets in 0..2*pad, on the images' device.
        flips: bool (B,), on the images' device.

    Returns:
        uint8 (B, C, H, W): out[b, :, i, j] = padded[b, :, dy_b + i, dx_b + (W-1-j if flips_b else j)].
    """
    b, c, h, w = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad)) if pad else images
    ar_h = torch.arange(h, device=device)
    ar_w = torch.arange(w, device=device)
    rows = dy[:, None] + ar_h[None, :]                                                        # (B, H)
    cols = dx[:, None] + torch.where(flips[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # (B, W)
    out = torch.gather(padded, 2, rows[:, None, :, None].expand(b, c, h, padded.shape[3]))
    return torch.gather(out, 3, cols[:, None, None, :].expand(b, c, h, w))


def draw_crop_flip(n: int, pad: int, flip: bool, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(dy, dx, flips) for n images from a CPU generator: offsets uniform in 0..2*pad, flips with probability 1/2."""
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool() if flip else torch.zeros(n, dtype=torch.bool)
    return offsets[0], offsets[1], flips


def random_crop_flip(images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded batch back to its size, and random horizontal flips (see crop_flip).

    Args:
        images: uint8 (B, C, H, W) on any device.
        pad: zero padding on each side (4 for CIFAR); 0 disables cropping.
        flip: flip each image left-right with probability 1/2.
        generator: CPU generator that draws the offsets and the flips (draw_crop_flip).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    dy, dx, flips = draw_crop_flip(images.shape[0], pad, flip, generator)
    if pad == 0 and not flip:
        return images
    return crop_flip(images, pad, dy.to(images.device), dx.to(images.device), flips.to(images.device))


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's random choices, drawn at once and moved to the device in one transfer.

    order: permutation of the n training images; dy, dx, flips: the augmentation of the image at
    each position of `order` (so batch k uses slice [k*B, (k+1)*B) of every field).
    """

    order: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    flips: torch.Tensor


@dataclass
class Augmenter:
    """Seeded train-time augmentation + normalization for batches of uint8 images on the device.

    All random numbers come from one CPU generator (so CPU and CUDA runs with the same seed see the same
    batches and crops, and the state is one small tensor to checkpoint); `plan_epoch` draws a whole
    epoch's worth at once so that a GPU never waits for a host-to-device copy inside the epoch.
    """

    normalizer: Normalizer
    pad: int = 4
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        self.generator = torch.Generator().manual_seed(int(self.seed))

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Augment and normalize one batch, drawing its random numbers now."""
        return self.normalizer(random_crop_flip(images, self.pad, self.flip, self.generator), dtype)

    def plan_epoch(self, n: int, device: torch.device | str = "cpu") -> EpochPlan:
        """Draw an epoch's order and augmentation (permutation first, then offsets and flips)."""
        order = torch.randperm(n, generator=self.generator)
        dy, dx, flips = draw_crop_flip(n, self.pad, self.flip, self.generator)
        packed = torch.stack([order, dy, dx, flips.long()])
        if torch.device(device).type == "cuda":
            packed = packed.pin_memory().to(device, non_blocking=True)
        else:
            packed = packed.to(device)
        return EpochPlan(order=packed[0], dy=packed[1], dx=packed[2], flips=packed[3].bool())

    def apply(self, images: torch.Tensor, plan: EpochPlan, start: int, stop: int,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The augmented, normalized batch of positions start..stop-1 of `plan` (images: the whole set)."""
        x = images[plan.order[start:stop]]
        if self.pad or self.flip:
            x = crop_flip(x, self.pad, plan.dy[start:stop], plan.dx[start:stop], plan.flips[start:stop])
        return self.normalizer(x, dtype)

    def permutation(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """A random order of 0..n-1, drawn from the same generator."""
        return torch.randperm(n, generator=self.generator).to(device)

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
