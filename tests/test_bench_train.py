"""benchmarks/bench_train.py --json: the figures it prints, as one machine-readable object."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "bench_train.py")


def test_json_holds_the_printed_figures(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--model", "preresnet8", "--device", "cpu", "--images", "96",
                           "--batch-size", "48", "--repeats", "1", "--threads", "1", "--json", str(path)],
                          cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(path.read_text())
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temporary file left behind
    assert figures["model"] == "preresnet8" and figures["device"] == "cpu" and figures["images"] == 96
    assert figures["batch_size"] == 48 and figures["workers"] == 0 and figures["compile"] is False
    ours, ref = figures["trainer_images_per_s"], figures["reference_images_per_s"]
    assert ours > 0 and ref > 0
    assert figures["trainer_images_per_s"] == pytest.approx(96 / figures["trainer_best_s"], rel=1e-12)
    assert figures["ratio"] == pytest.approx(ours / ref, rel=1e-12)
    assert figures["projected_164_epochs_min"] == pytest.approx(164 * 50000 / ours / 60, rel=1e-12)
    # the table on stdout shows the same numbers
    table = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line and line[0] != "#"}
    assert float(table["ratio"][2]) == pytest.approx(figures["ratio"], abs=0.006)
    assert f"{figures['projected_164_epochs_min']:.1f} min" in proc.stdout


@pytest.mark.parametrize("args, word", [(["--model", "nope"], "--model"), (["--batch-size", "0"], "--batch-size"),
                                        (["--repeats", "x"], "--repeats"), (["--device", "tpu"], "--device")])
def test_bad_arguments_are_one_line_and_exit_2(args, word):
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in proc.stderr
