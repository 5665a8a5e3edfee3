"""The in-memory image data set every loader returns, and the error every loader raises.

Images are uint8 in NCHW order (what the networks take); labels are int64. Normalization statistics
are computed from the training images, never hard-coded, so CIFAR-10, CIFAR-100, their JPEG
re-encodings and the toy sets all get their own.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """Missing, corrupt, unverifiable or malformed data; the message names the file."""


@dataclass(frozen=True)
class Dataset:
    """A labelled image classification data set held in memory.

    Attributes:
        name: short identifier ("cifar10", "cifar100", "imagefolder", "synthetic", "digits").
        classes: class names; label k names classes[k].
        train_images, test_images: uint8 arrays of shape (N, C, H, W).
        train_labels, test_labels: int64 arrays of shape (N,), values in [0, len(classes)).
        source: where the data came from (a path or a generator description).
        pad: zero padding of the random-crop augmentation (4 for CIFAR, as in section 4.2.1 of the
            main paper; smaller for tiny images).
        flip: whether horizontal flips are label-preserving for this data set.
    """

    name: str
    classes: tuple[str, ...]
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    pad: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if len(set(self.classes)) != len(self.classes) or "" in self.classes:
            raise DataError(f"{self.source}: class names must be distinct and non-empty (label k names classes[k]); "
                            f"got {list(self.classes)}")
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DataError(f"{self.source}: {split} images must be uint8 (N, C, H, W), "
                                f"got {images.dtype} {images.shape}")
            if 0 in images.shape[1:]:
                raise DataError(f"{self.source}: {split} images must have at least one channel and one pixel, "
                                f"got shape {images.shape}")
            if labels.shape != (images.shape[0],):
                raise DataError(f"{self.source}: {split} has {images.shape[0]} images but labels of shape "
                                f"{labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise DataError(f"{self.source}: {split} labels must lie in [0, {len(self.classes)}), got "
                                f"[{labels.min()}, {labels.max()}]")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"{self.source}: train images {self.train_images.shape[1:]} and test images "
                            f"{self.test_images.shape[1:]} differ in shape")
        if self.train_images.shape[0] == 0 or self.test_images.shape[0] == 0:
            raise DataError(f"{self.source}: the train and test splits must both be non-empty")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation of the training images, on the [0, 1] scale."""
        x = self.train_images
        total = np.zeros(x.shape[1])
        total_sq = np.zeros(x.shape[1])
        for start in range(0, x.shape[0], 4096):
            chunk = x[start:start + 4096].astype(np.float64) / 255.0
            total += chunk.sum(axis=(0, 2, 3))
            total_sq += (chunk * chunk).sum(axis=(0, 2, 3))
        count = x.shape[0] * x.shape[2] * x.shape[3]
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
        return mean, np.where(std > 0, std, 1.0)

    def fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over what defines the data, not where it was read from.

        Hashed: the class names, the shape, dtype and bytes of the four arrays (labels as int64), pad
        and flip; not `name` or `source`, so a moved or renamed file keeps its fingerprint and two different files with the
        same name (cifar10/train.h5, cifar100/train.h5) get different ones.
        """
        return self._digest(pixels=True)

    def layout_fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over everything fingerprint() hashes except the pixel values.

        Hashed: the class names, pad, flip, the shape and dtype of the four arrays and the label values
        (as int64). Two decodings of the same JPEG data by different decoders (or a re-encoding of the same
        images) share it while their fingerprint() differs; other labels, splits or classes do not.
        """
        return self._digest(pixels=False)

    def fingerprints(self) -> tuple[str, str]:
        """(fingerprint(), layout_fingerprint()): what a run records of its data and compares on resume."""
        return self.fingerprint(), self.layout_fingerprint()

    def _digest(self, pixels: bool) -> str:
        """The digest of fingerprint() (pixels) or layout_fingerprint() (no pixel bytes; "layout" in the header)."""
        digest = hashlib.sha256()
        header = {"classes": list(self.classes), "pad": int(self.pad), "flip": bool(self.flip)}
        if not pixels:
            header["layout"] = 1
        digest.update(json.dumps(header, sort_keys=True).encode())
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            array = getattr(self, key)
            labels = key.endswith("labels")
            if labels:
                array = array.astype(np.int64, copy=False)
            digest.update(f"{key}:{array.dtype.str}:{list(array.shape)};".encode())
            if labels or pixels:
                digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """One line: name, sizes, shape, classes and source."""
        c, h, w = self.train_images.shape[1:]
        return (f"{self.name}: {self.train_images.shape[0]} train / {self.test_images.shape[0]} test images "
                f"{c}x{h}x{w}, {self.num_classes} classes, from {self.source}")
