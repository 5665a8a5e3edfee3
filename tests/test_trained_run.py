"""nets.trained_run: which images a measurement of a trained run sees (class-balanced, not the file's first)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nets.trained_run import TrainedRun, balanced_indices


@pytest.mark.parametrize("n", [1, 7, 10, 25, 2000, 4999, 5000, 6000])
def test_a_class_sorted_file_gives_every_class_in_turn(n):
    labels = np.repeat(np.arange(10), 500)  # sorted by class, as the CIFAR-10 image folders are
    chosen = balanced_indices(labels, n)
    counts = np.bincount(labels[chosen], minlength=10)
    assert chosen.size == min(n, labels.size) and np.all(np.diff(chosen) > 0)
    assert counts.max() - counts.min() <= 1 and counts.sum() == min(n, labels.size)


def test_each_class_contributes_its_first_images_and_a_short_class_drops_out():
    labels = np.array([2, 0, 2, 1, 0, 2, 2, 0])
    # turn 1: first of class 0 (index 1), 1 (3), 2 (0); turn 2: 0 (4), 2 (2); turn 3: 0 (7), 2 (5); then 2 (6)
    assert balanced_indices(labels, 3).tolist() == [0, 1, 3]
    assert balanced_indices(labels, 5).tolist() == [0, 1, 2, 3, 4]
    assert balanced_indices(labels, 7).tolist() == [0, 1, 2, 3, 4, 5, 7]
    assert balanced_indices(labels, 100).tolist() == list(range(8))


def test_trained_run_images_are_balanced_and_normalised_as_in_training():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(60, 3, 4, 4), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 20)
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])  # on the [0, 1] scale
    dataset = SimpleNamespace(train_images=raw, train_labels=labels, test_images=raw[:30], test_labels=labels[:30],
                              channel_stats=lambda: (mean, std))
    run = TrainedRun(run=None, config=None, checkpoint={}, dataset=dataset)
    images, targets = run.images(12, "train")
    assert np.bincount(targets.numpy()).tolist() == [4, 4, 4]
    chosen = balanced_indices(labels, 12)
    expected = (raw[chosen] / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(images.numpy(), expected, rtol=1e-5, atol=1e-5)
    _, test_targets = run.images(12, "test")  # the test split here holds classes 0 and 1 only
    assert np.bincount(test_targets.numpy()).tolist() == [6, 6]


def test_one_channel_images_come_in_standard_strides_so_noise_draws_do_not_depend_on_the_file_layout():
    """A one-channel array stored as (N, H, W, 1) and viewed as NCHW has strides that torch also reads as
    channels_last; a network run on it draws its masks in another element order. images() gives the standard
    strides either way, so a seeded noisy forward pass sees the same draws for both storages of the same pixels."""
    import torch

    from nets import build_model

    rng = np.random.default_rng(1)
    nhwc = rng.integers(0, 256, size=(16, 8, 8, 1), dtype=np.uint8)
    ambiguous = nhwc.transpose(0, 3, 1, 2)  # (16, 1, 8, 8), byte strides (64, 1, 8, 1)
    standard = np.ascontiguousarray(ambiguous).copy()
    labels = np.arange(16) % 4
    mean, std = np.array([0.5]), np.array([0.25])
    model = build_model("preresnet8", num_classes=4, in_channels=1, noise="gaussian", nu=0.3).train()
    outputs = []
    for raw in (ambiguous, standard):
        dataset = SimpleNamespace(train_images=raw, train_labels=labels, channel_stats=lambda: (mean, std))
        images, _ = TrainedRun(run=None, config=None, checkpoint={}, dataset=dataset).images(16, "train")
        assert images.stride() == (64, 64, 8, 1)
        torch.manual_seed(0)
        with torch.no_grad():
            outputs.append(model(images))
    assert torch.equal(outputs[0], outputs[1])
