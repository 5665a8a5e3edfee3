"""One tiny sweep through the real trainer (python -m nets.train): preresnet8, 1 epoch, small synthetic data.

The table made from it must hold the test error the trainer recorded, read back with the trainer's own
reader (nets.metrics.read_metrics), and a second invocation must train nothing.
"""
from __future__ import annotations

import json
import pytest

from figures import table1
from nets import sweep
from nets.metrics import read_metrics
from nets.sweep import SweepConfig
from nets.sweep_cli import main as sweep_main


def test_tiny_sweep_through_the_real_trainer_then_table1(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "sweep"
    argv = ["--models", "preresnet8", "--p", "0.9", "--epochs", "1", "--batch-size", "64", "--data", "synthetic:256:128",
            "--device", "cpu", "--out", str(out), "--no-progress"]
    assert sweep_main(argv) == 0, (out / "logs").read_text() if (out / "logs").is_file() else ""
    config = SweepConfig(models=("preresnet8",), p=(0.9,), epochs=(1,), batch_size=(64,), data="synthetic:256:128", out=out)
    (run,) = sweep.expand(config)
    assert sweep.run_status(out / run.name) == "finished"
    metrics = read_metrics(out / run.name)
    assert metrics.config["model"] == "preresnet8" and metrics.config["p"] == 0.9 and metrics.config["seed"] == 0
    assert metrics.config["noise"] == "bernoulli" and metrics.epochs_completed == 1
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["runs"][0]["status_after"] == "finished" and manifest["runs"][0]["returncode"] == 0

    table = table1.compute(out)
    assert table.row_labels == ["PreResNet-8"] and table.col_labels == ["90%"]
    assert table.cells[(0, 0)].mean == pytest.approx(100.0 * (1.0 - float(metrics.test_acc[-1])), abs=1e-9)
    assert "JPEG" not in table.note and "synthetic" in table.note

    capsys.readouterr()
    assert sweep_main(argv) == 0
    assert "1 already finished, 0 trained" in capsys.readouterr().out
