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
        """(images, labels) tensors: the first n_images of the split, normalised by the training set's channel
        statistics as in training (no augmentation)."""
        import torch

        from nets.augment import Normalizer

        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        raw = self.dataset.train_images if split == "train" else self.dataset.test_images
        targets = self.dataset.train_labels if split == "train" else self.dataset.test_labels
        mean, std = self.dataset.channel_stats()
        images = Normalizer.from_stats(mean, std)(torch.from_numpy(np.ascontiguousarray(raw[:n_images])))
        return images, torch.from_numpy(np.asarray(targets[:n_images], dtype=np.int64))


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
