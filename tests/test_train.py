"""nets.trainer / nets.train: learning on synthetic data, metrics.h5 contents, run-directory rules, CLI errors."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nets.metrics import EPOCH_FIELDS, SUMMARY_FIELDS, read_metrics
from nets.trainer import RunConflictError, TrainConfig, train

from cli_checks import assert_one_line_exit_2

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = dict(model="preresnet8", data="synthetic:512:256", epochs=3, batch_size=64, milestones=(3,), device="cpu")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "nets.train", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "p09"
    config = TrainConfig(noise="bernoulli", p=0.9, **FAST)
    return config, train(config, out, progress=False)


def test_synthetic_training_beats_chance(noisy_run):
    _, result = noisy_run
    m = read_metrics(result.out_dir)
    assert m.test_acc[-1] > 0.5, m.test_acc  # chance is 0.1 with 10 balanced classes
    assert m.train_loss[-1] < 0.6 * m.train_loss[0] and m.train_loss[0] < math.log(10) + 0.5


def test_metrics_file_holds_the_contract(noisy_run):
    import nets

    config, result = noisy_run
    m = read_metrics(result.metrics_path)
    n = config.epochs
    for name in EPOCH_FIELDS:
        assert getattr(m, name).shape == (n,)
    assert m.epoch.dtype == np.int64 and m.epoch.tolist() == [1, 2, 3]
    assert np.all((0 <= m.train_acc) & (m.train_acc <= 1)) and np.all((0 <= m.test_acc) & (m.test_acc <= 1))
    # the schedule: lr_e = lr * gamma^(number of milestones <= e - 1)
    expect_lr = [config.lr * config.gamma ** sum(ms <= e - 1 for ms in config.milestones) for e in range(1, n + 1)]
    np.testing.assert_allclose(m.lr, expect_lr, rtol=1e-12)
    assert np.all(m.epoch_time > 0) and m.lm_k is None
    # root attributes: every config field, None as the string "None", and the JSON
    import h5py
    with h5py.File(result.metrics_path) as f:
        for key, value in config.to_dict().items():
            stored = f.attrs[key]
            if value is None:
                assert stored == "None", key
            elif isinstance(value, list):
                assert list(stored) == value, key
            else:
                assert stored == value, key
        assert json.loads(f.attrs["config_json"]) == config.to_dict()
        assert set(SUMMARY_FIELDS) <= set(f["summary"].attrs)
    assert m.config == config.to_dict()
    # eps of (3.2): sqrt((1 - p) / (p K)), K = 3 residual blocks in preresnet8
    model = nets.build_model("preresnet8", noise="bernoulli", p=0.9)
    assert m.epsilon == pytest.approx(math.sqrt(0.1 / (0.9 * model.num_blocks)), rel=1e-12)
    assert m.attrs["num_parameters"] == sum(p.numel() for p in model.parameters())
    assert "synthetic" in m.attrs["dataset"]
    s = m.summary
    assert s["finished"] is True and s["epochs_completed"] == n
    assert s["final_test_acc"] == m.test_acc[-1] and s["final_test_error"] == pytest.approx(1 - m.test_acc[-1])
    assert s["best_test_acc"] == m.test_acc.max() and s["final_train_loss"] == m.train_loss[-1]
    assert s["total_train_time_s"] == pytest.approx(m.epoch_time.sum()) and s["torch_version"] == torch.__version__


def test_final_test_metrics_match_an_independent_evaluation(noisy_run):
    """Reload the checkpoint's weights and evaluate the deterministic net with a plain loop."""
    import nets
    from nets.checkpoint import load_checkpoint
    from nets.data import load_dataset

    config, result = noisy_run
    ckpt = load_checkpoint(result.checkpoint_path)
    model = nets.build_model("preresnet8", noise="bernoulli", p=0.9)
    model.load_state_dict(ckpt["model"])
    model.eval()
    ds = load_dataset(config.data)
    x = ds.train_images.astype(np.float64) / 255
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    test = (ds.test_images / 255 - mean[None, :, None, None]) / std[None, :, None, None]
    with torch.no_grad():
        logits = model(torch.tensor(test, dtype=torch.float32))
    labels = torch.from_numpy(ds.test_labels)
    m = read_metrics(result.out_dir)
    assert m.test_acc[-1] == pytest.approx((logits.argmax(1) == labels).double().mean().item(), abs=1 / 256 + 1e-12)
    assert m.test_loss[-1] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-4)


def test_finished_run_says_so_and_other_config_is_refused(noisy_run, capsys):
    config, result = noisy_run
    again = train(config, result.out_dir, progress=False)
    assert again.already_finished and again.epochs_completed == config.epochs
    elsewhere = TrainConfig(noise="bernoulli", p=0.9, **{**FAST, "device": "auto"}, eval_batch_size=7)
    assert train(elsewhere, result.out_dir, progress=False).already_finished  # execution fields may change
    other = TrainConfig(noise="bernoulli", p=0.8, **FAST)
    with pytest.raises(RunConflictError, match=r"different configuration \(p: 0.9 -> 0.8\)"):
        train(other, result.out_dir, progress=False)
    from nets.train import main

    assert main(["--model", "preresnet8", "--noise", "bernoulli", "--p", "0.9", "--data", FAST["data"], "--out",
                 result.out_dir, "--epochs", "3", "--batch-size", "64", "--schedule", "3", "--device", "cpu",
                 "--no-progress"]) == 0
    assert "already finished" in capsys.readouterr().out
    res = run_cli("--model", "preresnet8", "--data", FAST["data"], "--out", result.out_dir, "--no-progress")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "different configuration" in res.stderr
    # killed after the last checkpoint but before metrics.h5 was replaced: the re-run restores it
    before = read_metrics(result.out_dir)
    os.unlink(result.metrics_path)
    assert train(config, result.out_dir, progress=False).already_finished
    after = read_metrics(result.out_dir)
    for name in EPOCH_FIELDS:
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    assert after.summary == before.summary and after.attrs == before.attrs and after.config == before.config
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(result.metrics_path).st_mode & 0o777 == 0o666 & ~mask
    assert os.stat(result.checkpoint_path).st_mode & 0o777 == 0o666 & ~mask


def test_digits_train_on_one_channel_with_progress(tmp_path, capsys):
    torch.set_num_threads(1)
    result = train(TrainConfig(model="preresnet8", data="digits", epochs=3, batch_size=64, device="cpu",
                               milestones=(2,)), tmp_path / "digits", progress=True)
    assert result.final_test_acc > 0.8  # chance 0.1
    err = capsys.readouterr().err
    assert "3/3" in err and "img_s=" in err and "test_acc=" in err  # tqdm: epochs, images/s, accuracy


def test_cuda_code_path_bf16_channels_last_runs_on_cpu():
    """train_epoch/evaluate with the CUDA settings (bf16 autocast, channels_last), exercised on the CPU."""
    import nets
    from nets.augment import Augmenter, Normalizer
    from nets.data import make_synthetic
    from nets.trainer import evaluate, train_epoch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = make_synthetic(64, 32)
    model = nets.build_model("preresnet8", noise="bernoulli", p=0.9).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    aug = Augmenter(Normalizer.from_stats(*ds.channel_stats()), seed=0)
    x, y = torch.from_numpy(ds.train_images), torch.from_numpy(ds.train_labels)
    settings = dict(amp_dtype=torch.bfloat16, memory_format=torch.channels_last)
    losses = [train_epoch(model, opt, aug, x, y, 32, **settings)[0] for _ in range(3)]
    test_loss, test_acc = evaluate(model, aug.normalizer, torch.from_numpy(ds.test_images),
                                   torch.from_numpy(ds.test_labels), 50, **settings)
    assert all(math.isfinite(v) for v in losses + [test_loss]) and losses[-1] < losses[0]
    assert 0 <= test_acc <= 1 and all(p.dtype == torch.float32 for p in model.parameters())
    # the same weights evaluated in fp32 on contiguous tensors: bf16 (8-bit mantissa, rel. rounding 4e-3 per
    # value) moves the mean loss little (measured 6.8e-5 relative; asserted 1e-3), and at most one of the 32
    # test images may flip class; the losses differ at all only if autocast really ran in bf16. evaluate is
    # the deterministic network (eval mode: no noise, running batch-norm statistics), so it repeats exactly.
    import copy

    reference = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert all(p.is_contiguous() for p in reference.parameters())
    ref_loss, ref_acc = evaluate(reference, aug.normalizer, torch.from_numpy(ds.test_images),
                                 torch.from_numpy(ds.test_labels), 50)
    assert test_loss == pytest.approx(ref_loss, rel=1e-3) and test_loss != ref_loss
    assert evaluate(reference, aug.normalizer, torch.from_numpy(ds.test_images), torch.from_numpy(ds.test_labels),
                    50) == (ref_loss, ref_acc)
    assert abs(test_acc - ref_acc) <= 1 / ds.test_labels.shape[0] + 1e-12


@pytest.mark.parametrize("tick, expected", [(0.25, [3, 7, 11, 15]), (0.0, [15]), (1.0, list(range(16)))])
def test_batch_bar_postfix_at_most_once_a_second_and_at_the_last_batch(monkeypatch, tick, expected):
    """The batch bar's postfix reads the running sums (a sync on CUDA) only when POSTFIX_EVERY_S = 1 s has passed
    on the host clock since the last update, and at the last batch. The clock is scripted: its first read (t0)
    gives 0, batch k's (0-based) gives (k + 1) * tick; tqdm is a stand-in recording each postfix."""
    import nets.epoch
    import tqdm
    from nets.augment import Augmenter, Normalizer
    from nets.data import make_synthetic

    reads, bars = [], []

    def clock():
        reads.append(len(reads) * tick)
        return reads[-1]

    class Bar:
        def __init__(self, iterable, **kwargs):
            self.iterable, self.updates = iterable, []
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def __iter__(self):
            return iter(self.iterable)

        def set_postfix(self, **values):
            self.updates.append((len(reads) - 2, values))  # the batch whose clock read came last

    torch.set_num_threads(1)
    torch.manual_seed(0)
    monkeypatch.setattr(nets.epoch, "_clock", clock)
    monkeypatch.setattr(tqdm, "tqdm", Bar)
    assert nets.epoch.POSTFIX_EVERY_S == 1.0
    ds = make_synthetic(128, 16)
    x, y = torch.from_numpy(ds.train_images), torch.from_numpy(ds.train_labels)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), ds.num_classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    aug = Augmenter(Normalizer.from_stats(*ds.channel_stats()), seed=0)
    loss, acc = nets.epoch.train_epoch(model, opt, aug, x, y, 8, progress=True)  # 16 batches
    (bar,) = bars
    assert [batch for batch, _ in bar.updates] == expected and len(reads) == 17
    last = bar.updates[-1][1]
    assert last["loss"] == f"{loss:.3f}" and last["acc"] == f"{acc:.3f}"
    assert float(last["img_s"]) > 0
    # without progress the clock is read once (t0) and no postfix is set
    reads.clear()
    nets.epoch.train_epoch(model, opt, aug, x, y, 8, progress=False)
    assert len(reads) == 1 and bars[1].updates == []


@pytest.mark.parametrize("case", ["missing_data", "corrupt_data", "bad_model", "bad_option", "bad_device",
                                  "bad_epochs", "unknown_flag", "corrupt_checkpoint"])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, case):
    args = ["--model", "preresnet8", "--data", "synthetic:64:32", "--out", str(tmp_path / "run"), "--epochs", "1",
            "--no-progress"]
    expect = {"missing_data": "no such file", "corrupt_data": "cannot read HDF5", "bad_model": "model must be one of",
              "bad_option": "p", "bad_device": "invalid choice", "bad_epochs": "epochs must be a positive integer",
              "unknown_flag": "unrecognized arguments", "corrupt_checkpoint": "cannot load checkpoint"}[case]
    if case == "missing_data":
        args[3] = str(tmp_path / "absent.h5")
    elif case == "corrupt_data":
        (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
        args[3] = str(tmp_path / "bad.h5")
    elif case == "bad_model":
        args[1] = "resnet9000"
    elif case == "bad_option":
        args += ["--noise", "bernoulli", "--p", "1.5"]
    elif case == "bad_device":
        args += ["--device", "tpu"]
    elif case == "bad_epochs":
        args[7] = "0"
    elif case == "unknown_flag":
        args += ["--frobnicate"]
    else:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    torch.set_num_threads(1)
    from nets.train import main

    # one case end to end in a fresh interpreter: no traceback reaches stderr
    assert_one_line_exit_2(capsys, main, args, expect, run_fresh=run_cli if case == "corrupt_data" else None)
    assert not (tmp_path / "run" / "metrics.h5").exists()


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="noise must be one of"):
        TrainConfig(noise="poisson")
    with pytest.raises(ValueError, match="milestones must be increasing"):
        TrainConfig(milestones=(122, 81))
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda"):
        TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="momentum"):
        TrainConfig(momentum=1.0)


def test_lm_coefficients_are_recorded_per_epoch(tmp_path, monkeypatch):
    """Row e of lm_k holds the coefficients of the model at the end of epoch e+1: the trainer's evaluate is
    wrapped to read model.lm_coefficients() at each epoch's evaluation (after that epoch's training, and
    evaluation does not change the weights), and the last row also matches the final checkpoint."""
    import nets
    import nets.trainer
    from nets.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    real_evaluate, seen = nets.trainer.evaluate, []

    def evaluate_and_read(forward, *args, **kwargs):
        seen.append(forward.lm_coefficients().detach().double().numpy().copy())
        return real_evaluate(forward, *args, **kwargs)

    monkeypatch.setattr(nets.trainer, "evaluate", evaluate_and_read)
    result = train(TrainConfig(model="lm_preresnet8", data="synthetic:128:32", epochs=2, batch_size=64,
                               device="cpu"), tmp_path / "lm", progress=False)
    m = read_metrics(result.out_dir)
    model = nets.build_model("lm_preresnet8")
    assert m.lm_k is not None and m.lm_k.shape == (2, model.num_blocks)
    assert len(seen) == 2
    np.testing.assert_allclose(m.lm_k[0], seen[0], rtol=1e-6)  # the epoch-1 model's, not the final one's
    np.testing.assert_allclose(m.lm_k[1], seen[1], rtol=1e-6)
    assert not np.allclose(m.lm_k[0], m.lm_k[1], rtol=1e-4)  # the coefficients moved in epoch 2
    model.load_state_dict(load_checkpoint(result.checkpoint_path)["model"])
    np.testing.assert_allclose(m.lm_k[-1], model.lm_coefficients().detach().double().numpy(), rtol=1e-6)
