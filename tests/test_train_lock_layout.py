"""A finished run is reported without locking or writing; the lock survives probes and cleans up the directories
it created; the data's layout fingerprint lets a run resume on re-decoded pixels (with a warning) but not on
other labels."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import pytest

from nets import locks as locks_module
from nets import trainer as trainer_module
from nets.checkpoint import load_checkpoint, save_checkpoint
from nets.data import load_dataset
from nets.locks import LOCK_NAME
from nets.trainer import RunConflictError, RunLockedError, TrainConfig, run_lock, train
from run_guards import interrupted_run, write_variant

REPO_ROOT = Path(__file__).resolve().parent.parent
FAST = dict(model="preresnet8", epochs=2, batch_size=32, device="cpu", seed=1, eval_batch_size=64)
SPEC = "synthetic:64:32"
needs_fcntl = pytest.mark.skipif(locks_module.fcntl is None, reason="no run locks without fcntl (not POSIX)")


def snapshot(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in [out, *out.iterdir()]}


@needs_fcntl
def test_a_finished_run_is_reported_without_taking_the_lock_or_writing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    config = TrainConfig(**{**FAST, "epochs": 1}, data=SPEC)
    assert train(config, out, progress=False).finished
    before = snapshot(out)
    time.sleep(0.01)

    def no_lock(*args, **kwargs):
        raise AssertionError("run_lock called for a finished run")

    def read_only(path, *args, **kwargs):  # what the probe says of a read-only copy (root ignores permissions)
        raise ValueError(f"{path!r}: cannot create files in {path!r} (Read-only file system)")

    monkeypatch.setattr(trainer_module, "run_lock", no_lock)
    monkeypatch.setattr(trainer_module, "check_writable", read_only)
    assert train(config, out, progress=False).already_finished
    from nets.train import main as train_main

    assert train_main(["--model", "preresnet8", "--data", SPEC, "--epochs", "1", "--batch-size", "32", "--seed", "1",
                       "--eval-batch-size", "64", "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    monkeypatch.undo()
    command = [sys.executable, "-m", "nets.train", "--model", "preresnet8", "--data", SPEC, "--epochs", "1",
               "--batch-size", "32", "--seed", "1", "--eval-batch-size", "64", "--device", "cpu", "--no-progress",
               "--out", str(out)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "already finished" in result.stdout, result.stderr
    assert snapshot(out) == before and not (out / LOCK_NAME).exists()


@needs_fcntl
def test_probes_never_make_run_lock_refuse_but_a_real_holder_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text("999999\n")  # stale, as a SIGKILLed trainer leaves it
    probe = subprocess.Popen([sys.executable, "-c", "import sys, time; from nets.trainer import locked_by\n"
                              "print('probing', flush=True); end = time.monotonic() + 30\n"
                              "while time.monotonic() < end: locked_by(sys.argv[1])", str(out)],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    refused = 0
    try:
        assert probe.stdout.readline().strip() == "probing"
        end = time.monotonic() + 3
        while time.monotonic() < end:
            (out / LOCK_NAME).write_text("999999\n")
            try:
                with run_lock(out):
                    pass
            except RunLockedError:
                refused += 1
    finally:
        probe.kill()
        probe.wait(timeout=30)
    assert refused == 0
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        locks_module.fcntl.flock(fd, locks_module.fcntl.LOCK_EX)
        start = time.monotonic()
        with pytest.raises(RunLockedError, match="being trained by another process"):
            with run_lock(out):
                pass
        assert time.monotonic() - start < 2.5
    finally:
        os.close(fd)


@needs_fcntl
@needs_fcntl
def test_a_file_system_without_flock_trains_unlocked_with_one_warning(tmp_path, monkeypatch, capsys):
    import errno
    import types

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    fake = types.SimpleNamespace(LOCK_EX=locks_module.fcntl.LOCK_EX, LOCK_SH=locks_module.fcntl.LOCK_SH,
                                 LOCK_NB=locks_module.fcntl.LOCK_NB, LOCK_UN=locks_module.fcntl.LOCK_UN,
                                 flock=no_locks)
    monkeypatch.setattr(locks_module, "fcntl", fake)
    out = tmp_path / "run"
    with run_lock(out):
        assert not (out / LOCK_NAME).exists()
        assert trainer_module.locked_by(out) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not support flock (No locks available)" in err
    assert not out.exists()  # the directories it created are removed again, as after any empty start


def test_a_failed_start_removes_every_directory_it_created(tmp_path):
    out = tmp_path / "nest" / "tree" / "a" / "b"
    with pytest.raises(RuntimeError):
        with run_lock(out):
            raise RuntimeError("start failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "nest" / "keep").mkdir(parents=True)
    with pytest.raises(RuntimeError):
        with run_lock(out):
            raise RuntimeError("start failed")
    assert sorted(p.name for p in (tmp_path / "nest").iterdir()) == ["keep"]
    with run_lock(out):
        (out / "written").write_text("x")
    assert (out / "written").is_file()


def test_layout_fingerprint_ignores_pixels_only(tmp_path):
    base = load_dataset(write_variant(tmp_path / "a.h5"))
    pixels = load_dataset(write_variant(tmp_path / "p.h5", "pixels"))
    labels = load_dataset(write_variant(tmp_path / "l.h5", "labels"))
    assert base.fingerprint() != pixels.fingerprint() and base.layout_fingerprint() == pixels.layout_fingerprint()
    assert base.layout_fingerprint() != labels.layout_fingerprint()
    assert base.layout_fingerprint() != replace(base, pad=2).layout_fingerprint()
    assert len(base.layout_fingerprint()) == 16 and base.layout_fingerprint() != base.fingerprint()


def test_a_run_resumes_on_other_pixels_with_one_warning_but_not_on_other_labels(tmp_path, monkeypatch, capsys):
    data = tmp_path / "cifar" / "train.h5"
    write_variant(data)
    interrupted_run(monkeypatch, TrainConfig(**FAST, data=str(data)), tmp_path / "run")
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["data_layout_fingerprint"] == load_dataset(str(data)).layout_fingerprint()
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["data_layout_fingerprint"] == recorded[
        "data_layout_fingerprint"]
    with h5py.File(tmp_path / "run" / "metrics.h5") as h5:
        assert h5.attrs["data_layout_fingerprint"] == recorded["data_layout_fingerprint"]
    # a partial run of the same configuration, for the conflict checks below
    (tmp_path / "run2").mkdir()
    for name in ("checkpoint.pt", "config.json", "metrics.h5"):
        (tmp_path / "run2" / name).write_bytes((tmp_path / "run" / name).read_bytes())
    capsys.readouterr()

    write_variant(data, "pixels")  # the same images decoded by another JPEG library
    result = train(TrainConfig(**FAST, data=str(data)), tmp_path / "run", progress=False)
    assert result.resumed_from_epoch == 1 and result.finished
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pixel values" in err[0] and "continues on the new pixels" in err[0]
    assert load_checkpoint(result.checkpoint_path)["data_fingerprint"] == load_dataset(str(data)).fingerprint()

    write_variant(data, "labels")
    with pytest.raises(RunConflictError, match="trained on other data"):
        train(TrainConfig(**FAST, data=str(data)), tmp_path / "run2", progress=False)
    # a run that recorded only the full fingerprint keeps the strict check
    write_variant(data, "pixels")
    ckpt = load_checkpoint(tmp_path / "run2" / "checkpoint.pt")
    del ckpt["checkpoint_version"], ckpt["data_layout_fingerprint"]
    save_checkpoint(tmp_path / "run2" / "checkpoint.pt", ckpt)
    with pytest.raises(RunConflictError, match="trained on other data"):
        train(TrainConfig(**FAST, data=str(data)), tmp_path / "run2", progress=False)
