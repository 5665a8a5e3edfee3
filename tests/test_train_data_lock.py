"""The trainer's data fingerprint (a moved data file resumes, other data under the same name is refused) and its
run-directory lock (two trainers never write one run at once; a killed one releases it)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from nets import locks as locks_module
from nets.checkpoint import load_checkpoint, save_checkpoint
from nets.data import load_dataset, write_h5
from nets.locks import LOCK_NAME
from nets.trainer import RunConflictError, RunLockedError, TrainConfig, locked_by, run_lock, train
from run_guards import interrupted_run

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = dict(model="preresnet8", epochs=2, batch_size=32, device="cpu", seed=1, eval_batch_size=64)
needs_fcntl = pytest.mark.skipif(locks_module.fcntl is None, reason="no run locks without fcntl (not POSIX)")


def write_data(path: Path, spec: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5(load_dataset(spec), path)
    return path


def test_fingerprint_is_the_content_not_the_path(tmp_path):
    a = load_dataset(str(write_data(tmp_path / "a" / "train.h5", "synthetic:64:32")))
    moved = load_dataset(str(write_data(tmp_path / "elsewhere" / "renamed.h5", "synthetic:64:32")))
    other = load_dataset(str(write_data(tmp_path / "b" / "train.h5", "synthetic:64:16")))
    assert a.fingerprint() == moved.fingerprint() == load_dataset("synthetic:64:32").fingerprint()
    assert len(a.fingerprint()) == 16 and int(a.fingerprint(), 16) >= 0
    assert other.fingerprint() != a.fingerprint()
    from dataclasses import replace

    assert replace(a, pad=2).fingerprint() != a.fingerprint()
    assert replace(a, flip=False).fingerprint() != a.fingerprint()
    assert replace(a, classes=tuple(reversed(a.classes))).fingerprint() != a.fingerprint()


def test_fingerprint_is_recorded_in_checkpoint_metrics_and_config(tmp_path):
    data = write_data(tmp_path / "train.h5", "synthetic:64:32")
    result = train(TrainConfig(**{**FAST, "epochs": 1}, data=str(data)), tmp_path / "run", progress=False)
    expected = load_dataset(str(data)).fingerprint()
    assert load_checkpoint(result.checkpoint_path)["data_fingerprint"] == expected
    with h5py.File(result.metrics_path) as h5:
        assert h5.attrs["data_fingerprint"] == expected
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_fingerprint"] == expected
    assert not (tmp_path / "run" / LOCK_NAME).exists() and locked_by(tmp_path / "run") is None


def test_partial_run_resumes_when_the_data_path_string_changes(tmp_path, monkeypatch):
    write_data(tmp_path / "a" / "train.h5", "synthetic:64:32")
    monkeypatch.chdir(tmp_path)
    interrupted_run(monkeypatch, TrainConfig(**FAST, data="a/train.h5"), tmp_path / "run")
    (tmp_path / "x").mkdir()
    monkeypatch.chdir(tmp_path / "x")
    resumed = train(TrainConfig(**FAST, data="../a/train.h5"), tmp_path / "run", progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.finished and resumed.epochs_completed == 2
    again = train(TrainConfig(**FAST, data=str(tmp_path / "a" / "train.h5")), tmp_path / "run", progress=False)
    assert again.already_finished


def test_other_data_under_the_same_name_is_refused(tmp_path, monkeypatch):
    data = tmp_path / "cifar10" / "train.h5"
    write_data(data, "synthetic:64:32")
    interrupted_run(monkeypatch, TrainConfig(**FAST, data=str(data)), tmp_path / "run")
    write_data(data, "synthetic:64:16")  # the same path now holds other data
    with pytest.raises(RunConflictError, match=r"trained on other data .*fingerprint [0-9a-f]{16}.* has [0-9a-f]{16}"):
        train(TrainConfig(**FAST, data=str(data)), tmp_path / "run", progress=False)
    # a finished run is checked too when its data path changed
    finished = tmp_path / "done"
    train(TrainConfig(**{**FAST, "epochs": 1}, data=str(write_data(tmp_path / "c10" / "t.h5", "synthetic:64:32"))),
          finished, progress=False)
    other = write_data(tmp_path / "c100" / "t.h5", "synthetic:80:32")
    with pytest.raises(RunConflictError, match="trained on other data"):
        train(TrainConfig(**{**FAST, "epochs": 1}, data=str(other)), finished, progress=False)


def test_run_recorded_without_fingerprint_keeps_the_strict_data_comparison(tmp_path, monkeypatch):
    data = write_data(tmp_path / "a" / "train.h5", "synthetic:64:32")
    interrupted_run(monkeypatch, TrainConfig(**FAST, data=str(data)), tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    del ckpt["checkpoint_version"], ckpt["data_fingerprint"]
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", ckpt)
    moved = tmp_path / "b" / "train.h5"
    moved.parent.mkdir()
    data.rename(moved)
    with pytest.raises(RunConflictError, match=r"data: '.*a/train.h5' -> '.*b/train.h5'"):
        train(TrainConfig(**FAST, data=str(moved)), tmp_path / "run", progress=False)
    moved.rename(data)
    assert train(TrainConfig(**FAST, data=str(data)), tmp_path / "run", progress=False).resumed_from_epoch == 1


@needs_fcntl
def test_a_locked_run_directory_is_refused_and_released_after(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(**{**FAST, "epochs": 1}, data="synthetic:64:32")
    with run_lock(out):
        assert locked_by(out) == str(os.getpid())
        with pytest.raises(RunLockedError, match=rf"being trained by another process \(pid {os.getpid()}\)"):
            train(config, out, progress=False)
    assert locked_by(out) is None and not out.exists()  # the holder created it and wrote nothing
    assert train(config, out, progress=False).finished
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "metrics.h5"]


@needs_fcntl
def test_train_cli_on_a_locked_directory_exits_2_and_a_killed_holder_releases_it(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from nets.trainer import run_lock\nwith run_lock(Path(sys.argv[1])):\n"
                               "    print('locked', flush=True); time.sleep(120)", str(out)],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        command = [sys.executable, "-m", "nets.train", "--model", "preresnet8", "--data", "synthetic:64:32",
                   "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"python -m nets.train: error: out: {out} is being trained by another process (pid {holder.pid}); "
            "wait for it to finish or use another --out"]
        assert locked_by(out) == str(holder.pid)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert locked_by(out) is None  # the kernel released the dead holder's lock
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
