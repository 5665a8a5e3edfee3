"""A run SIGKILLed after its first checkpoint and restarted with the same command ends bit-identical,
including its per-block gradient and weight norms (--grad-norm-every, robust-ResNet Fig. 2)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(out, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "nets.train", "--model", "preresnet8", "--noise", "bernoulli", "--p", "0.8",
            "--data", "synthetic:256:64", "--epochs", "2", "--batch-size", "64", "--schedule", "1",
            "--device", "cpu", "--seed", "5", "--out", str(out), "--no-progress", *extra]


ENV = dict(os.environ, OMP_NUM_THREADS="1")


# 4 steps per epoch; every 3rd step is recorded: 0, 3 in epoch 1 and 6 in epoch 2 (the counter must survive)
@pytest.mark.parametrize("extra", [(), ("--grad-norm-every", "3")], ids=["plain", "grad_norms"])
def test_sigkill_after_first_checkpoint_then_resume_is_bit_identical(tmp_path, extra):
    straight = subprocess.run(command(tmp_path / "straight", extra), env=ENV, cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=180)
    assert straight.returncode == 0, straight.stderr

    victim = subprocess.Popen(command(tmp_path / "killed", extra), env=ENV, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(ckpt)["epoch"]
    assert killed_at == 1  # the lr milestone (after epoch 1) and momentum buffers must survive the restart
    if (tmp_path / "killed" / "metrics.h5").exists():  # killed between the checkpoint and the metrics write: absent
        assert read_metrics(tmp_path / "killed").epochs_completed in (killed_at - 1, killed_at)

    (tmp_path / "killed" / ".checkpoint-abc123.pt.tmp").write_bytes(b"half")  # as if killed while saving
    if extra:
        assert load_checkpoint(ckpt)["grad_norms"]["step"].tolist() == [0, 3]
    resumed = subprocess.run(command(tmp_path / "killed", extra), env=ENV, cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    a, b = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "killed")
    for name in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.summary["finished"] and b.summary["finished"]
    if extra:
        assert a.grad_norm_step.tolist() == [0, 3, 6] and a.grad_norm.shape == (3, 4)
        for name in ("grad_norm_step", "grad_norm", "weight_norm"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.grad_norm_blocks == b.grad_norm_blocks
    else:
        assert a.grad_norm is None and b.grad_norm is None
    wa, wb = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(ckpt)
    for key, value in wa["model"].items():
        assert np.array_equal(value.numpy(), wb["model"][key].numpy()), key
    assert not [p for p in (tmp_path / "killed").iterdir() if p.name.startswith(".")]


def test_cuda_rng_state_is_the_runs_own_device_and_resumes_on_any_gpu_count(monkeypatch):
    """Only the run's device generator is saved, and restored onto that device; a checkpoint of the older
    layout (one state per visible GPU) gives each device its own state (CUDA calls are faked: no GPU here)."""
    import torch

    from nets.checkpoint import capture_rng_states, restore_rng_states

    state_of = {i: torch.tensor([i], dtype=torch.uint8) for i in range(4)}
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: state_of[device.index].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((int(state[0]), device.index)))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("all GPUs' states must not be saved"))
    device = torch.device("cuda", 2)
    states = capture_rng_states(torch.zeros(2, dtype=torch.uint8), device)
    assert [int(s[0]) for s in states["cuda"]] == [2]
    restore_rng_states(states, device)
    assert restored == [(2, 2)]
    old_layout = dict(states, cuda=[state_of[i] for i in range(4)])  # saved with get_rng_state_all
    restore_rng_states(old_layout, torch.device("cuda", 3))
    assert restored[-1] == (3, 3)
    with pytest.warns(UserWarning, match="starts afresh"):
        restore_rng_states(dict(states, cuda=[state_of[0], state_of[1]]), torch.device("cuda", 3))


def test_a_checkpoint_whose_contents_do_not_fit_the_run_is_one_line_naming_the_file(tmp_path, capsys):
    """A version-1 checkpoint.pt with a foreign model state (or a non-integer epoch) was a RuntimeError traceback."""
    import torch

    from nets.checkpoint import save_checkpoint
    from nets.train import main

    argv = ["--model", "preresnet8", "--data", "synthetic:64:32", "--epochs", "1", "--batch-size", "64",
            "--device", "cpu", "--no-progress"]
    for name, change in (("model", {"x": torch.zeros(1)}), ("epoch", "a")):
        out = tmp_path / name
        assert main([*argv, "--out", str(out)]) == 0
        ckpt = load_checkpoint(out / "checkpoint.pt")
        ckpt.pop("checkpoint_version")
        save_checkpoint(out / "checkpoint.pt", {**ckpt, "finished": False, "epoch": 0, name: change})
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--out", str(out)])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert f"{out / 'checkpoint.pt'}: does not fit this run" in err and "delete it" in err


def test_checkpoint_pickles_nothing_older_torch_refuses_and_milestones_round_trip(tmp_path):
    """torch.load(weights_only=True) before torch 2.4 allows tensors, their storages and OrderedDict only
    (collections.Counter from 2.4, pytorch#123775): MultiStepLR's milestones Counter is stored as a dict."""
    import pickletools
    import zipfile
    from collections import Counter

    from nets.checkpoint import plain_scheduler_state, scheduler_state_from_plain

    out = tmp_path / "run"
    subprocess.run(command(out), check=True, env=ENV, cwd=REPO_ROOT, capture_output=True)
    with zipfile.ZipFile(out / "checkpoint.pt") as archive:
        pickle_bytes = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    ops = list(pickletools.genops(pickle_bytes))
    names = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    names |= {f"{ops[i - 2][1]} {ops[i - 1][1]}" for i, (op, _, _) in enumerate(ops) if op.name == "STACK_GLOBAL"}
    allowed_before_2_4 = {"torch._utils _rebuild_tensor_v2", "collections OrderedDict"}
    assert names and all(name in allowed_before_2_4 or (name.startswith("torch ") and name.endswith("Storage"))
                         for name in names), names
    milestones = load_checkpoint(out / "checkpoint.pt")["scheduler"]["milestones"]
    assert type(milestones) is dict and milestones == {1: 1}
    restored = scheduler_state_from_plain({"milestones": milestones, "gamma": 0.1})
    assert isinstance(restored["milestones"], Counter) and restored["milestones"][7] == 0  # MultiStepLR's lookup
    old = {"milestones": Counter({81: 1, 122: 1})}  # a checkpoint written before the change
    assert scheduler_state_from_plain(old) is old
    assert plain_scheduler_state(old) == {"milestones": {81: 1, 122: 1}}
