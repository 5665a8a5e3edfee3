"""Helpers of the trainer and sweep guard tests: data variants written to disk, runs stopped in a given
epoch (the one-line exit-2 check is tests/cli_checks.assert_one_line_exit_2)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from nets import trainer as trainer_module
from nets.checkpoint import load_checkpoint
from nets.data import load_dataset, write_h5
from nets.trainer import TrainConfig, train

SPEC = "synthetic:64:32"


def write_variant(path: Path, change: str | None = None, spec: str = SPEC) -> str:
    """`spec` written to path as .h5. change: "pixels" flips one bit of one training pixel, "labels" shifts every
    training label by one class, "other" writes another synthetic set (more training images)."""
    dataset = load_dataset(spec)
    if change == "pixels":
        images = dataset.train_images.copy()
        images[0, 0, 0, 0] ^= 1
        dataset = replace(dataset, train_images=images)
    elif change == "labels":
        dataset = replace(dataset, train_labels=(dataset.train_labels + 1) % dataset.num_classes)
    elif change == "other":
        dataset = load_dataset("synthetic:80:32")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5(dataset, path)
    return str(path)


def interrupted_run(monkeypatch, config: TrainConfig, out: Path) -> None:
    """Train `config` into out and stop it (KeyboardInterrupt) in epoch 2: a partial run at epoch 1."""
    real, calls = trainer_module.train_epoch, []

    def stop_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_epoch", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(config, out, progress=False)
    monkeypatch.setattr(trainer_module, "train_epoch", real)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
