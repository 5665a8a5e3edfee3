"""Per-block gradient and weight norms recorded by the trainer (robust-ResNet Fig. 2; nets.grad_norms).

The expected norms are computed here independently: an optimizer step pre-hook sees every step of the real
trainer and sums squared entries in float64 over the parameters whose names start with the block's name.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics, summarize, write_metrics
from nets.trainer import RunConflictError, TrainConfig, _check_existing, train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 320 training images in batches of 64: 5 optimizer steps per epoch, 10 in the run
TINY = dict(model="preresnet8", data="synthetic:320:64", epochs=2, batch_size=64, milestones=(1,), device="cpu",
            seed=3)
BLOCKS = ("stem", "blocks.0", "blocks.1", "blocks.2")


def block_of(name: str) -> str | None:
    return next((b for b in BLOCKS if name.startswith(b + ".")), None)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A run with grad_norm_every = 3 and, for each of its optimizer steps, the norms computed by a hook."""
    from nets import build_model
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    torch.set_num_threads(1)
    names = [n for n, _ in build_model("preresnet8", num_classes=10, in_channels=3, noise="bernoulli",
                                       p=0.8).named_parameters()]
    seen = []

    def hook(optimizer, args, kwargs):
        params = optimizer.param_groups[0]["params"]
        assert len(params) == len(names)
        grad = {b: 0.0 for b in BLOCKS}
        weight = {b: 0.0 for b in BLOCKS}
        for name, p in zip(names, params):
            b = block_of(name)
            if b is not None:
                weight[b] += float(p.detach().double().pow(2).sum())
                grad[b] += 0.0 if p.grad is None else float(p.grad.double().pow(2).sum())
        seen.append(([math.sqrt(grad[b]) for b in BLOCKS], [math.sqrt(weight[b]) for b in BLOCKS]))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        config = TrainConfig(noise="bernoulli", p=0.8, grad_norm_every=3, **TINY)
        result = train(config, tmp_path_factory.mktemp("gn") / "run", progress=False)
    finally:
        handle.remove()
    return result, seen


def test_recorded_norms_are_those_of_the_recorded_steps(observed):
    result, seen = observed
    m = read_metrics(result.out_dir)
    assert len(seen) == 10  # 5 steps per epoch, 2 epochs
    assert m.grad_norm_step.dtype == np.int64 and m.grad_norm_step.tolist() == [0, 3, 6, 9]  # across the epochs
    assert len(m.grad_norm_step) == math.ceil(len(seen) / 3)
    assert m.grad_norm.dtype == np.float32 and m.grad_norm.shape == (4, 4) and m.weight_norm.shape == (4, 4)
    assert m.grad_norm_blocks == BLOCKS and m.grad_norm_every == 3
    expect_grad = np.array([seen[s][0] for s in m.grad_norm_step])
    expect_weight = np.array([seen[s][1] for s in m.grad_norm_step])
    np.testing.assert_allclose(m.grad_norm, expect_grad, rtol=2e-6)
    np.testing.assert_allclose(m.weight_norm, expect_weight, rtol=2e-6)
    # not any other step's norms: consecutive steps differ by far more than the tolerance
    assert not np.allclose(m.grad_norm[1:], np.array([seen[s - 1][0] for s in m.grad_norm_step[1:]]), rtol=1e-3)
    # the TrainResult carries the same records
    np.testing.assert_array_equal(result.grad_norms.grad_norm, m.grad_norm)


@pytest.mark.parametrize("every, steps", [(1, 10), (4, 10), (10, 10), (11, 10)])
def test_number_of_records_is_ceil_steps_over_n(tmp_path, every, steps):
    config = TrainConfig(grad_norm_every=every, **TINY)
    m = read_metrics(train(config, tmp_path / "run", progress=False).out_dir)
    assert m.grad_norm_step.tolist() == list(range(0, steps, every))
    assert m.grad_norm.shape == (math.ceil(steps / every), len(BLOCKS))
    assert np.all(m.grad_norm > 0) and np.all(m.weight_norm > 0)


def test_zero_records_nothing_and_never_builds_a_recorder(tmp_path, monkeypatch):
    import nets.grad_norms

    def refuse(*args, **kwargs):
        raise AssertionError("GradNormRecorder built with grad_norm_every = 0")

    monkeypatch.setattr(nets.grad_norms, "GradNormRecorder", refuse)
    result = train(TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run", progress=False)
    with h5py.File(result.metrics_path) as f:
        assert not {"grad_norm_step", "grad_norm", "weight_norm"} & set(f)
        assert int(f.attrs["grad_norm_every"]) == 0
    m = read_metrics(result.out_dir)
    assert m.grad_norm_step is None and m.grad_norm is None and m.weight_norm is None and m.grad_norm_blocks is None
    assert result.grad_norms is None and load_checkpoint(result.checkpoint_path)["grad_norms"] is None


def test_metrics_files_without_records_read_as_none(tmp_path):
    history = {"epoch": [1], "train_loss": [1.0], "train_acc": [0.5], "test_loss": [1.1], "test_acc": [0.4],
               "lr": [0.1], "epoch_time": [2.0]}
    config = {k: v for k, v in TrainConfig().to_dict().items() if k != "grad_norm_every"}  # an older trainer
    write_metrics(tmp_path / "metrics.h5", history, config, {"epsilon": 0.0}, summarize(history, True, "cpu"))
    m = read_metrics(tmp_path)
    assert (m.grad_norm_step, m.grad_norm, m.weight_norm, m.grad_norm_blocks, m.grad_norm_every) == (None,) * 5


def test_metrics_round_trip_of_records(tmp_path):
    from nets.grad_norms import GradNormRecords

    rng = np.random.default_rng(0)
    records = GradNormRecords(step=np.array([0, 5, 10]), grad_norm=rng.uniform(0, 9, (3, 2)).astype(np.float32),
                              weight_norm=rng.uniform(0, 9, (3, 2)).astype(np.float32),
                              block_names=("stem", "blocks.0"), every=5)
    history = {"epoch": [1], "train_loss": [1.0], "train_acc": [0.5], "test_loss": [1.1], "test_acc": [0.4],
               "lr": [0.1], "epoch_time": [2.0]}
    write_metrics(tmp_path / "metrics.h5", history, TrainConfig().to_dict(), {}, summarize(history, True, "cpu"),
                  grad_norms=records)
    m = read_metrics(tmp_path)
    np.testing.assert_array_equal(m.grad_norm_step, [0, 5, 10])
    np.testing.assert_array_equal(m.grad_norm, records.grad_norm)
    np.testing.assert_array_equal(m.weight_norm, records.weight_norm)
    assert m.grad_norm_blocks == ("stem", "blocks.0") and m.grad_norm_every == 5
    with h5py.File(tmp_path / "metrics.h5") as f:
        assert f["grad_norm"].dtype == np.float32 and f["grad_norm_step"].dtype == np.int64
    bad = GradNormRecords(step=np.array([0]), grad_norm=records.grad_norm, weight_norm=records.weight_norm,
                          block_names=("stem", "blocks.0"), every=5)
    with pytest.raises(ValueError, match="grad_norm"):
        write_metrics(tmp_path / "bad.h5", history, TrainConfig().to_dict(), {}, summarize(history, True, "cpu"),
                      grad_norms=bad)


def test_recorded_configuration_without_the_field_means_zero(tmp_path):
    config = TrainConfig(**TINY)
    recorded = {k: v for k, v in config.to_dict().items() if k != "grad_norm_every"}
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    assert _check_existing(tmp_path, config) is None  # an old run resumes: no conflict
    with pytest.raises(RunConflictError, match="grad_norm_every"):
        _check_existing(tmp_path, TrainConfig(grad_norm_every=5, **TINY))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_interval_is_refused(bad):
    with pytest.raises(ValueError, match="grad_norm_every"):
        TrainConfig(grad_norm_every=bad)


def test_model_without_blocks_is_refused():
    from nets.grad_norms import GradNormRecorder

    with pytest.raises(ValueError, match="model.blocks"):
        GradNormRecorder(torch.nn.Linear(2, 2), 1)


def test_cli_negative_interval_exits_2_with_one_line():
    res = subprocess.run([sys.executable, "-m", "nets.train", "--model", "preresnet8", "--data", "synthetic",
                          "--out", "unused", "--grad-norm-every", "-1"], capture_output=True, text=True, cwd=REPO_ROOT,
                         timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "--grad-norm-every" in res.stderr and "Traceback" not in res.stderr
    assert not os.path.exists(os.path.join(REPO_ROOT, "unused"))


def test_torchrun_two_ranks_rank0_records_the_all_reduced_run(tmp_path):
    """Under DDP (2 CPU ranks, gloo) the records cover every optimizer step of the run; at step 0 the weights
    are the seeded initial ones, whose norms are computed here from a model built with the same seed.

    The step-0 gradient norms are rebuilt here with plain autograd, not with DDP: the run's first batch is
    drawn from an Augmenter seeded like the trainer's (positions 0..63 of its first epoch plan), rank r trains
    on batch[r::2] (nets.epoch.train_epoch), each rank's gradient is that of the mean cross-entropy on its
    shard (BatchNorm with its shard's batch statistics, train mode; the model has no noise so the per-rank
    seeds do not matter), and DDP's all-reduce leaves their mean on rank 0. rtol 1e-5: float32 sums in a
    different order (measured: 1.2e-7 relative); a gradient off by any factor fails."""
    import copy

    import torch.nn.functional as F

    from nets import build_model
    from nets.augment import Augmenter, Normalizer
    from nets.data import load_dataset

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "nets.train",
           "--model", "preresnet8", "--data", "synthetic:192:64", "--epochs", "2", "--batch-size", "64",
           "--schedule", "1", "--device", "cpu", "--seed", "4", "--out", str(out), "--no-progress",
           "--grad-norm-every", "2"]
    res = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    m = read_metrics(out)
    assert m.attrs["world_size"] == 2
    assert m.grad_norm_step.tolist() == [0, 2, 4]  # 3 steps per epoch, 2 epochs
    assert np.all(np.isfinite(m.grad_norm)) and np.all(m.grad_norm > 0)
    torch.manual_seed(4)
    model = build_model("preresnet8", num_classes=10, in_channels=3)
    initial = [math.sqrt(sum(float(p.detach().double().pow(2).sum()) for n, p in model.named_parameters()
                             if block_of(n) == b))
               for b in BLOCKS]
    np.testing.assert_allclose(m.weight_norm[0], initial, rtol=2e-6)
    assert load_checkpoint(out / "checkpoint.pt")["grad_norms"]["steps"] == 6

    # step 0: the all-reduced (mean over the 2 ranks) gradient of the seeded model on the first batch
    dataset = load_dataset("synthetic:192:64", progress=False)
    mean, std = dataset.channel_stats()
    augmenter = Augmenter(Normalizer.from_stats(mean, std), pad=dataset.pad, flip=dataset.flip, seed=4)
    images = torch.from_numpy(dataset.train_images)
    labels = torch.from_numpy(dataset.train_labels)
    plan = augmenter.plan_epoch(labels.shape[0])
    x, y = augmenter.apply(images, plan, 0, 64), labels[plan.order[0:64]]
    grads = []
    for rank in range(2):
        replica = copy.deepcopy(model).train()
        params = dict(replica.named_parameters())
        loss = F.cross_entropy(replica(x[rank::2]), y[rank::2])
        grads.append(dict(zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True))))
    expect = []
    for b in BLOCKS:
        total = 0.0
        for n in grads[0]:
            if block_of(n) == b and grads[0][n] is not None:
                total += float(((grads[0][n].double() + grads[1][n].double()) / 2).pow(2).sum())
        expect.append(math.sqrt(total))
    assert min(expect) > 0
    np.testing.assert_allclose(m.grad_norm[0], expect, rtol=1e-5)
