"""DistributedDataParallel under torchrun: 2 CPU processes with the gloo backend."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torchrun_two_ranks_train_and_rank0_writes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "nets.train",
           "--model", "preresnet8", "--noise", "bernoulli", "--p", "0.9", "--data", "synthetic:256:128",
           "--epochs", "2", "--batch-size", "64", "--device", "cpu", "--out", str(out), "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("finished 2 epochs") == 1  # rank 0 reports, rank 1 does not
    m = read_metrics(out)
    assert m.finished and m.epochs_completed == 2 and m.attrs["world_size"] == 2
    assert m.test_acc[-1] > 0.2 and m.train_loss[-1] < m.train_loss[0]  # chance is 0.1
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    # ranks share the augmentation stream but draw independent noise masks
    assert torch.equal(ckpt["rng_ranks"][0]["augment"], ckpt["rng_ranks"][1]["augment"])
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.h5"]
    again = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0 and "already finished" in again.stdout, again.stderr[-2000:]
