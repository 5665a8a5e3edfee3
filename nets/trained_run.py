"""A trained run read back for measurement: its configuration, weights and data (nets.flow_steps,
nets.noise_response)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainedRun:
    """run_dir/checkpoint.pt (loaded with weights_only=True), the TrainConfig it records, and its data."""

    run: Path
    config: Any  # nets.trainer.TrainConfig
    checkpoint: dict
    dataset: Any  # nets.data.Dataset

    def build_model(self, **override):
        """The run's network with its trained weights; `override` replaces build options (e.g. noise)."""
        from nets import build_model

        options = {**self.config.model_options(), **override}
        model = build_model(self.config.model, num_classes=self.dataset.num_classes,
                            in_channels=self.dataset.in_channels, **{k: v for k, v in options.items() if v is not None})
        model.load_state_dict(self.checkpoint["model"])
        return model

    def images(self, n_images: int, split: str = "test"):
        """(images, labels) tensors: n_images of the split, class-balanced (balanced_indices), in file order,
        normalised by the training set's channel statistics as in training (no augmentation).

        The images come in torch's standard (NCHW-contiguous) strides whatever the file's array layout. With
        one channel, strides such as (64, 1, 8, 1) are both NCHW- and channels_last-contiguous and torch then
        runs the network channels_last; the noise modules draw their masks in the activations' memory order
        (as torch's dropout does), so the same seed would put other draws on each image. Measured on the
        digits PreResNet-20 runs: J_eps of the masks a few per cent apart, within the Monte Carlo error."""
        import torch

        from nets.augment import Normalizer

        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        raw = self.dataset.train_images if split == "train" else self.dataset.test_images
        targets = np.asarray(self.dataset.train_labels if split == "train" else self.dataset.test_labels)
        chosen = balanced_indices(targets, n_images)
        mean, std = self.dataset.channel_stats()
        images = Normalizer.from_stats(mean, std)(torch.from_numpy(np.ascontiguousarray(raw[chosen])))
        return images.clone(memory_format=torch.contiguous_format), torch.from_numpy(targets[chosen].astype(np.int64))


def balanced_indices(labels, n: int) -> np.ndarray:
    """Indices (increasing) of n images that take the classes in turn: each class's first image in file order,
    then each class's second, and so on (a class that runs out drops from the turn); all of them when n >= the
    number of images. Deterministic and balanced to one image per class even where the file is sorted by class
    (the CIFAR-10 image folders are: the first 2000 training images are all airplanes)."""
    labels = np.asarray(labels)
    by_class = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")  # first position of each one's class
    rank = np.empty(labels.size, dtype=np.int64)
    rank[by_class] = np.arange(labels.size) - starts  # position of each image within its class
    order = np.lexsort((labels, rank))  # by rank within class, then by class
    return np.sort(order[:n])


def load_trained_run(run_dir: str | os.PathLike, data: str | None, n_images: int, purpose: str) -> TrainedRun:
    """Read run_dir/checkpoint.pt and the run's data (or `data`); ValueError for n_images < 1, a missing or
    unreadable checkpoint (the message says what `purpose` needs it for), or data that does not load."""
    from nets.checkpoint import load_checkpoint
    from nets.data import load_dataset
    from nets.trainer import TrainConfig

    run = Path(run_dir)
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1; got {n_images!r}")
    path = run / "checkpoint.pt"
    if not path.is_file():
        raise ValueError(f"run_dir {run}: no checkpoint.pt ({purpose} the trained weights)")
    checkpoint = load_checkpoint(path)
    config = TrainConfig.from_recorded(dict(checkpoint["config"]))
    return TrainedRun(run, config, checkpoint, load_dataset(data or config.data))
