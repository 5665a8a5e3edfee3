"""The sweep's up-front data check covers partial runs killed in their first epoch (config.json only) and
accepts re-decoded pixels (same layout fingerprint) with one warning line, not other labels."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nets import sweep
from nets import trainer as trainer_module
from nets.data import load_dataset
from nets.sweep import SweepConfig
from nets.sweep_cli import main as sweep_main
from nets.trainer import TrainConfig, train
from run_guards import write_variant

SPEC = "synthetic:64:32"


def killed_in_epoch_1(monkeypatch, data: str, out: Path) -> None:
    """A run stopped in its first epoch: the trainer has written config.json, nothing else."""
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "train_epoch", stop)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(model="preresnet8", epochs=1, device="cpu", data=data), out, progress=False)
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def dry_run(capsys, data: str, out: Path) -> tuple[int, str, str]:
    try:
        code = sweep_main(["--models", "preresnet8", "--epochs", "1", "--seeds", "1", "--device", "cpu", "--data",
                           data, "--out", str(out), "--dry-run"])
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_partial_run_killed_in_epoch_1_is_checked_up_front(tmp_path, monkeypatch, capsys):
    data = tmp_path / "cifar10" / "train.h5"
    other = tmp_path / "cifar100" / "train.h5"
    write_variant(data)
    write_variant(other, "other")
    out = tmp_path / "sweep"
    run = sweep.expand(SweepConfig(models=("preresnet8",), epochs=(1,), seeds=1, data=str(data), out=out))[0]
    killed_in_epoch_1(monkeypatch, str(data), out / run.name)
    code, stdout, err = dry_run(capsys, str(other), out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and run.name in err and "use another --out" in err
    assert stdout == ""
    code, stdout, err = dry_run(capsys, str(data), out)
    assert code == 0 and "resumes a partial run" in stdout
    with pytest.raises(ValueError, match="use another --out"):
        sweep.run_sweep(SweepConfig(models=("preresnet8",), epochs=(1,), seeds=1, device="cpu", data=str(other),
                                    out=out), progress=False)
    assert not (out / "sweep.json").exists()


def test_other_pixels_warn_once_and_other_labels_are_refused(tmp_path, monkeypatch, capsys):
    data = tmp_path / "cifar10" / "train.h5"
    write_variant(data)
    out = tmp_path / "sweep"
    run = sweep.expand(SweepConfig(models=("preresnet8",), epochs=(1,), seeds=1, data=str(data), out=out))[0]
    killed_in_epoch_1(monkeypatch, str(data), out / run.name)
    recorded = json.loads((out / run.name / "config.json").read_text())
    assert recorded["data_layout_fingerprint"] == load_dataset(str(data)).layout_fingerprint()
    write_variant(data, "pixels")
    code, stdout, err = dry_run(capsys, str(data), out)
    assert code == 0 and "resumes a partial run" in stdout
    warnings = [line for line in err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "pixel values" in warnings[0] and run.name in warnings[0]
    write_variant(data, "labels")
    code, stdout, err = dry_run(capsys, str(data), out)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "use another --out" in err
