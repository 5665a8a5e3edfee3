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
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=images.device, dtype=dtype)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=images.device, dtype=dtype)
        return images.to(dtype) * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


def random_crop_flip(images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded batch back to its size, and random horizontal flips, in one gather.

    Args:
        images: uint8 (B, C, H, W) on any device.
        pad: zero padding on each side (4 for CIFAR); 0 disables cropping.
        flip: flip each image left-right with probability 1/2.
        generator: CPU generator that draws the offsets (uniform in 0..2*pad per axis) and the flips.

    Returns:
        uint8 (B, C, H, W): out[b, :, i, j] = padded[b, :, dy_b + i, dx_b + (W-1-j if flipped else j)].
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    b, _, h, w = images.shape
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator)
    flips = torch.randint(0, 2, (b,), generator=generator).bool() if flip else torch.zeros(b, dtype=torch.bool)
    if pad == 0 and not flip:
        return images
    device = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad)) if pad else images
    dy, dx, flips = offsets[0].to(device), offsets[1].to(device), flips.to(device)
    ar_h = torch.arange(h, device=device)
    ar_w = torch.arange(w, device=device)
    rows = dy[:, None] + ar_h[None, :]                                                   # (B, H)
    cols = dx[:, None] + torch.where(flips[:, None], (w - 1) - ar_w[None, :], ar_w[None, :])  # (B, W)
    # Gather rows then columns; each index tensor broadcasts over the channel axis.
    c = images.shape[1]
    out = torch.gather(padded, 2, rows[:, None, :, None].expand(b, c, h, padded.shape[3]))
    return torch.gather(out, 3, cols[:, None, None, :].expand(b, c, h, w))


@dataclass
class Augmenter:
    """Seeded train-time augmentation + normalization for batches of uint8 images on the device."""

    normalizer: Normalizer
    pad: int = 4
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(int(self.seed))

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.normalizer(random_crop_flip(images, self.pad, self.flip, self.generator), dtype)

    def permutation(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """A random order of 0..n-1 for one epoch, drawn from the same generator."""
        return torch.randperm(n, generator=self.generator).to(device)

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
