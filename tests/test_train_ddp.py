"""DistributedDataParallel under torchrun: 2 CPU processes with the gloo backend, killed and resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def children(pid: int) -> list[str]:
    """Direct children of a process (Linux /proc), i.e. torchrun's worker processes."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as fh:
            found += fh.read().split()
    return found


def command(out) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "nets.train",
            "--model", "preresnet8", "--noise", "bernoulli", "--p", "0.9", "--data", "synthetic:192:64",
            "--epochs", "2", "--batch-size", "64", "--schedule", "1", "--device", "cpu", "--out", str(out),
            "--no-progress"]


def test_torchrun_two_ranks_train_rank0_writes_and_resume_is_identical(tmp_path):
    res = subprocess.run(command(tmp_path / "a"), env=ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("finished 2 epochs") == 1  # rank 0 reports, rank 1 does not
    m = read_metrics(tmp_path / "a")
    assert m.finished and m.epochs_completed == 2 and m.attrs["world_size"] == 2
    assert m.train_loss[-1] < m.train_loss[0] and 0 <= m.test_acc[-1] <= 1
    ckpt = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2
    # ranks share the augmentation stream but draw independent noise masks
    assert torch.equal(ckpt["rng_ranks"][0]["augment"], ckpt["rng_ranks"][1]["augment"])
    assert not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint.pt", "config.json", "metrics.h5"]

    # kill the workers (and the agent) after the first checkpoint, then run the same command again
    agent = subprocess.Popen(command(tmp_path / "b"), env=ENV, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    ckpt_b = tmp_path / "b" / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not ckpt_b.exists() and agent.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = children(agent.pid)
    for pid in workers:
        os.kill(int(pid), signal.SIGKILL)
    agent.kill()
    agent.wait()
    assert workers and load_checkpoint(ckpt_b)["epoch"] == 1
    res = subprocess.run(command(tmp_path / "b"), env=ENV, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    b = read_metrics(tmp_path / "b")
    for name in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        np.testing.assert_array_equal(getattr(m, name), getattr(b, name), err_msg=name)
