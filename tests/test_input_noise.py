"""nets.input_noise and TrainConfig.input_noise: training on a fixed noisy copy of the inputs (robust-ResNet Fig. 8)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nets.checkpoint import load_checkpoint, save_checkpoint
from nets.input_noise import add_input_noise, noise_generator, noisy_training_set
from nets.metrics import read_metrics
from nets.trainer import RunConflictError, TrainConfig, train

STD = (0.25, 0.2, 0.3)  # per-channel std of [0, 1]-scaled images, as Dataset.channel_stats() returns


def test_mid_grey_noise_has_the_requested_std_per_channel_in_normalized_units():
    sigma, n = 0.2, 64
    images = np.full((n, 3, 32, 32), 128, dtype=np.uint8)  # mid-grey: 128 +- 8 std never reaches 0 or 255
    noisy = add_input_noise(images, sigma, STD, seed=3)
    assert noisy.dtype == np.uint8 and noisy.shape == images.shape
    m = n * 32 * 32  # samples per channel
    for c, std_c in enumerate(STD):
        d = (noisy[:, c].astype(np.float64) - 128.0) / (255.0 * std_c)  # the noise in normalized units
        assert d.min() > -128 / (255 * std_c) and d.max() < 127 / (255 * std_c)  # nothing clipped
        # rounding to integers adds a uniform error of variance 1/12 (uint8 units)
        expected = math.sqrt(sigma ** 2 + 1.0 / (12.0 * (255.0 * std_c) ** 2))
        assert abs(d.std() - expected) < 5 * expected / math.sqrt(2 * m), (c, d.std(), expected)  # 5 standard errors
        assert abs(d.mean()) < 5 * expected / math.sqrt(m), (c, d.mean())


def test_noise_is_the_seeded_normal_draw_rounded_and_clipped_exactly():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5000, 1, 2, 2), dtype=np.uint8)  # more images than one drawn block
    sigma, std = 0.5, (0.21,)
    z = noise_generator(7).standard_normal(images.shape, dtype=np.float32)
    expected = np.clip(np.rint(images + np.float32(sigma * 255.0 * std[0]) * z), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(add_input_noise(images, sigma, std, seed=7), expected)


def test_clipping_keeps_the_uint8_range():
    sigma, std_c = 1.0, 0.3
    s = sigma * 255.0 * std_c  # 76.5 uint8 units
    black = np.zeros((16, 1, 32, 32), dtype=np.uint8)
    white = np.full((16, 1, 32, 32), 255, dtype=np.uint8)
    m = black.size
    for images, sign in ((black, 1.0), (white, -1.0)):
        noisy = add_input_noise(images, sigma, (std_c,), seed=1).astype(np.float64)
        assert noisy.min() >= 0 and noisy.max() <= 255
        # clipping at the near edge: |x - edge| = max(0, s z), mean s / sqrt(2 pi), std s sqrt(1/2 - 1/(2 pi))
        shift = sign * (noisy - images)
        assert shift.min() == 0.0
        tolerance = 5 * s * math.sqrt(0.5 - 0.5 / math.pi) / math.sqrt(m) + 0.01
        assert abs(shift.mean() - s / math.sqrt(2 * math.pi)) < tolerance, shift.mean()
        # about half of the pixels pushed past the edge stay at it: P(s z < 1/2)
        at_edge = float(np.mean(shift == 0.0))
        assert abs(at_edge - 0.5 * (1 + math.erf(0.5 / s / math.sqrt(2)))) < 5 * 0.5 / math.sqrt(m)


def test_same_seed_same_copy_other_seed_other_copy_sigma_zero_is_the_input():
    images = np.random.default_rng(1).integers(0, 256, size=(8, 3, 8, 8), dtype=np.uint8)
    before = images.copy()
    a = add_input_noise(images, 0.3, STD, seed=4)
    np.testing.assert_array_equal(a, add_input_noise(images, 0.3, STD, seed=4))
    assert np.mean(a != add_input_noise(images, 0.3, STD, seed=5)) > 0.9
    np.testing.assert_array_equal(images, before)  # the input is not modified
    assert add_input_noise(images, 0.0, STD, seed=4) is images


def test_noisy_training_set_leaves_the_test_set_alone():
    from nets.data import make_synthetic

    ds = make_synthetic(64, 32)
    noisy = noisy_training_set(ds, 0.3, seed=0)
    assert noisy.test_images is ds.test_images and noisy.test_labels is ds.test_labels
    assert noisy.train_labels is ds.train_labels
    _, std = ds.channel_stats()
    np.testing.assert_array_equal(noisy.train_images, add_input_noise(ds.train_images, 0.3, std, seed=0))
    assert np.mean(noisy.train_images != ds.train_images) > 0.9
    assert noisy_training_set(ds, 0.0, seed=0) is ds


@pytest.mark.parametrize("bad", [-1.0, -1e-9, float("nan"), float("inf"), "0.1x", True, None])
def test_bad_input_noise_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match="input_noise must be a finite number >= 0"):
        TrainConfig(input_noise=bad)
    with pytest.raises(ValueError, match="input_noise"):
        add_input_noise(np.zeros((1, 3, 2, 2), np.uint8), bad, STD, seed=0)


def test_input_noise_is_a_float_and_recorded():
    config = TrainConfig(input_noise=1)
    assert config.input_noise == 1.0 and isinstance(config.input_noise, float)
    assert config.to_dict()["input_noise"] == 1.0 and TrainConfig().input_noise == 0.0


FAST = dict(model="preresnet8", data="synthetic:256:128", epochs=2, batch_size=64, milestones=(1,), device="cpu", seed=5)


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    torch.set_num_threads(1)
    config = TrainConfig(input_noise=0.3, **FAST)
    return config, train(config, tmp_path_factory.mktemp("runs") / "noisy", progress=False)


def test_training_on_noisy_inputs_learns_and_records_input_noise(noisy_run):
    import h5py

    config, result = noisy_run
    m = read_metrics(result.out_dir)
    assert m.finished and m.test_acc[-1] > 0.25, m.test_acc  # chance: 0.1 (10 balanced classes); 0.375 here
    assert m.config["input_noise"] == 0.3
    with h5py.File(result.metrics_path) as f:
        assert f.attrs["input_noise"] == 0.3 and json.loads(f.attrs["config_json"])["input_noise"] == 0.3
    assert json.loads((Path(result.out_dir) / "config.json").read_text())["input_noise"] == 0.3


def test_noisy_run_resumed_after_an_interruption_is_bit_identical(noisy_run, tmp_path, monkeypatch):
    """Killed during epoch 2 (after the epoch-1 checkpoint): the rerun rebuilds the same noisy copy."""
    import nets.trainer

    config, straight = noisy_run
    real_evaluate, calls = nets.trainer.evaluate, []

    def evaluate_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(nets.trainer, "evaluate", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", progress=False)
    monkeypatch.setattr(nets.trainer, "evaluate", real_evaluate)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    resumed = train(config, tmp_path / "run", progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.finished
    a, b = read_metrics(straight.out_dir), read_metrics(tmp_path / "run")
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # and the noise mattered: the clean run from the same seed trains differently
    clean = train(TrainConfig(**FAST, input_noise=0.0), tmp_path / "clean", progress=False)
    assert not np.array_equal(read_metrics(clean.out_dir).train_loss, a.train_loss)


def test_runs_recorded_before_input_noise_existed_count_as_clean(noisy_run, tmp_path):
    """A checkpoint or config.json without `input_noise` (older runs) means input_noise = 0, not a conflict."""
    config, result = noisy_run
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    ckpt = load_checkpoint(result.checkpoint_path)
    del ckpt["checkpoint_version"]
    ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k != "input_noise"}
    save_checkpoint(old_dir / "checkpoint.pt", ckpt)
    assert "input_noise" not in load_checkpoint(old_dir / "checkpoint.pt")["config"]
    clean = TrainConfig(**FAST)  # the same run, input_noise 0
    again = train(clean, old_dir, progress=False)
    assert again.already_finished and again.epochs_completed == config.epochs
    with pytest.raises(RunConflictError, match=r"input_noise: 0.0 -> 0.3"):
        train(config, old_dir, progress=False)

    # config.json only (killed before the first checkpoint): same rule
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    recorded = TrainConfig(**{**FAST, "epochs": 1}).to_dict()
    recorded.pop("input_noise")
    (json_dir / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(RunConflictError, match=r"input_noise: 0.0 -> 0.1"):
        train(TrainConfig(**{**FAST, "epochs": 1}, input_noise=0.1), json_dir, progress=False)
    fresh = train(TrainConfig(**{**FAST, "epochs": 1}), json_dir, progress=False)
    assert fresh.finished and not fresh.already_finished and fresh.resumed_from_epoch == 0


def test_cli_input_noise(tmp_path, capsys):
    from nets.train import main

    with pytest.raises(SystemExit) as exited:
        main(["--model", "preresnet8", "--data", "synthetic:64:32", "--out", str(tmp_path / "run"),
              "--input-noise", "-1", "--no-progress"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "--input-noise" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    torch.set_num_threads(1)
    assert main(["--model", "preresnet8", "--data", "synthetic:64:32", "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--input-noise", "0.5", "--device", "cpu", "--no-progress"]) == 0
    assert read_metrics(tmp_path / "run").config["input_noise"] == 0.5
