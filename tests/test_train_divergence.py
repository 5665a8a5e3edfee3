"""nets.trainer: a run whose loss stops being finite stops at that epoch (TrainingDiverged), saves nothing of it,
and `python -m nets.train` says so in one line with exit status 1.

Divergence is real, not simulated: SGD without momentum at weight decay 1 multiplies the weights by
(1 - lr) each step besides the gradient, so lr >> 1 blows them up geometrically. On synthetic:128:64 with
batches of 32 (4 steps per epoch), lr 30 gives a finite first epoch (training loss ~1e9, test ~1e26) and NaN in
the second; lr 100 gives NaN test loss in the first (deterministic on CPU).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from nets.metrics import read_metrics
from nets.trainer import TrainConfig, TrainingDiverged, train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOWUP = dict(model="preresnet8", data="synthetic:128:64", batch_size=32, milestones=(9,), device="cpu",
              momentum=0.0, weight_decay=1.0)


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_divergence_in_a_later_epoch_keeps_the_finite_epochs(tmp_path):
    out = tmp_path / "lr30"
    config = TrainConfig(lr=30.0, epochs=3, **BLOWUP)
    with pytest.raises(TrainingDiverged) as info:
        train(config, out, progress=False)
    exc = info.value
    assert (exc.epoch, exc.saved_epoch) == (2, 1) and not math.isfinite(exc.train_loss)
    message = str(exc)
    assert "\n" not in message and "epoch 2" in message and "--lr (now 30)" in message
    assert "keep epoch 1" in message
    m = read_metrics(out / "metrics.h5")
    assert m.epoch.tolist() == [1] and m.summary["finished"] is False
    assert math.isfinite(m.train_loss[0]) and math.isfinite(m.test_loss[0])
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 1 and not ckpt["finished"] and ckpt["history"]["epoch"] == [1]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.h5"]
    # the same command again resumes from epoch 1 and diverges at epoch 2 again, still saving nothing of it
    with pytest.raises(TrainingDiverged) as again:
        train(config, out, progress=False)
    assert again.value.epoch == 2 and read_metrics(out / "metrics.h5").epoch.tolist() == [1]


def test_divergence_in_the_first_epoch_leaves_nothing(tmp_path):
    out = tmp_path / "runs" / "lr100"
    config = TrainConfig(lr=100.0, epochs=2, noise="gaussian", nu=0.5, input_noise=0.1, **BLOWUP)
    with pytest.raises(TrainingDiverged) as info:
        train(config, out, progress=False)
    exc = info.value
    assert (exc.epoch, exc.saved_epoch) == (1, 0) and not math.isfinite(exc.test_loss)
    message = str(exc)
    assert "test loss nan" in message and "no epoch was saved" in message
    assert "--lr (now 100)" in message and "--nu (now 0.5)" in message and "--input-noise (now 0.1)" in message
    assert not out.exists() and not (tmp_path / "runs").exists()  # the directories train() created are gone
    # a rerun with a smaller learning rate may use the same directory (no config.json left to conflict with)
    result = train(TrainConfig(lr=0.1, epochs=1, noise="gaussian", nu=0.5, input_noise=0.1, **BLOWUP), out,
                   progress=False)
    assert result.finished and math.isfinite(result.history["train_loss"][0])


def test_divergence_keeps_a_directory_it_did_not_create(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainingDiverged):
        train(TrainConfig(lr=100.0, epochs=1, **BLOWUP), tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_cli_exits_1_with_one_line(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-m", "nets.train", "--model", "preresnet8", "--data", "synthetic:128:64",
                           "--batch-size", "32", "--epochs", "2", "--lr", "100", "--momentum", "0",
                           "--weight-decay", "1", "--noise", "bernoulli", "--p", "0.9", "--h", "0.5",
                           "--device", "cpu", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("python -m nets.train: error: training diverged at epoch 1:")
    assert "--p towards 1 (now 0.9)" in lines[0] and "--h (now 0.5)" in lines[0]
    assert proc.stdout == "" and not out.exists()


def test_divergence_in_the_first_epoch_keeps_a_config_json_that_was_there_before(tmp_path):
    """A directory holding an earlier run's record (config.json beside its metrics.h5, its checkpoint.pt deleted)
    keeps that config.json as it was: only the config.json the diverging call wrote itself is removed."""
    config = TrainConfig(lr=100.0, epochs=1, **BLOWUP)
    earlier = json.dumps({**config.to_dict(), "eval_batch_size": 17}, indent=1, sort_keys=True)  # an execution field
    (tmp_path / "config.json").write_text(earlier)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TrainingDiverged) as info:
        train(config, tmp_path, progress=False)
    assert info.value.saved_epoch == 0
    assert (tmp_path / "config.json").read_text() == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "notes.txt"]


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_cli_under_torchrun_rank_0_alone_reports_the_divergence(tmp_path, monkeypatch, capsys, rank, lines):
    """Every rank raises TrainingDiverged at the same epoch (the losses are reduced over ranks) and exits 1;
    the one line is rank 0's, not one per rank."""
    import nets.trainer
    from nets.train import main

    def diverging(config, out, progress=True, stop_after=None):
        raise TrainingDiverged("training diverged at epoch 1: test loss nan is not finite", 1, 0.5, math.nan, 0)

    monkeypatch.setattr(nets.trainer, "train", diverging)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["--model", "preresnet8", "--data", "synthetic:128:64", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == lines
