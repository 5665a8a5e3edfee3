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
                           "--batch-size", "48", "--repeats", "1", "--threads", "1", "--p", "0.9", "--json", str(path)],
                          cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(path.read_text())
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temporary file left behind
    assert figures["model"] == "preresnet8" and figures["device"] == "cpu" and figures["images"] == 96
    assert figures["batch_size"] == 48 and figures["workers"] == 0 and figures["compile"] is False
    assert figures["p"] == 0.9 and "# model preresnet8 (dropout p = 0.9)  batch 48" in proc.stdout
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
                                        (["--repeats", "x"], "--repeats"), (["--device", "tpu"], "--device"),
                                        (["--model", "mlp_resnet"], "--model")])  # mlp_resnet was a traceback
def test_bad_arguments_are_one_line_and_exit_2(args, word):
    proc = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--images", "-5"], "argument --images: must be a positive integer; got '-5'"),
    (["--images", "0"], "argument --images: must be a positive integer; got '0'"),  # was the default, silently
    (["--threads", "-1"], "argument --threads: must be an integer in [1, 1024]; got '-1'"),
    (["--threads", "0"], "argument --threads: must be an integer in [1, 1024]; got '0'"),  # was torch's default
    (["--threads", "100000"], "argument --threads: must be an integer in [1, 1024]; got '100000'"),  # was a segfault
    (["--workers", "-1"], "argument --workers: must be an integer in [0, 64]; got '-1'"),
    (["--workers", "65"], "argument --workers: must be an integer in [0, 64]; got '65'"),  # was unbounded
    (["--workers", "100000"], "argument --workers: must be an integer in [0, 64]; got '100000'"),
    (["--workers", "2.5"], "argument --workers: must be an integer in [0, 64]; got '2.5'"),
    (["--json", "/proc/x.json"], "argument --json: '/proc/x.json': cannot create files in '/proc'"),
    (["--json", "afile/x.json"], "argument --json: 'afile/x.json': "),
    (["--json", "."], "argument --json: '.' is a directory"),
    (["--p", "0"], "argument --p: must be a survival probability in (0, 1]; got '0'"),
    (["--p", "1.5"], "argument --p: must be a survival probability in (0, 1]; got '1.5'"),
    (["--p", "nan"], "argument --p: must be a survival probability in (0, 1]; got 'nan'"),
])
def test_bad_numbers_and_json_paths_are_refused_before_the_benchmark(tmp_path, args, message):
    """Were tracebacks (ValueError, RuntimeError; FileNotFoundError only after the whole benchmark had run)."""
    (tmp_path / "afile").write_text("")
    proc = subprocess.run([sys.executable, SCRIPT, "--model", "preresnet8", "--batch-size", "8", "--images", "16",
                           "--repeats", "1", "--device", "cpu", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"benchmarks/bench_train.py: error: {message}")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("text, value", [("0", 0), ("4", 4), ("64", 64)])
def test_workers_within_the_cap_are_accepted(text, value):
    """The bounds themselves are accepted (parsed only: nothing is timed, no worker started)."""
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import bench_train
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    args = bench_train.build_parser().parse_args(["--workers", text])
    assert args.workers == value and bench_train.MAX_WORKERS == 64


def test_the_benchmarked_network_carries_the_dropout_of_p():
    """Both loops train make_model's network: with p < 1 the noisy network the runs train (eq. 3.1), the same
    weights as without (one seed), the masks active in training mode."""
    import sys as _sys

    _sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
    try:
        import bench_train
    finally:
        _sys.path.pop(0)
    import torch

    noisy, _ = bench_train.make_model("preresnet8", torch.device("cpu"), channels_last=False, p=0.9)
    plain, _ = bench_train.make_model("preresnet8", torch.device("cpu"), channels_last=False)
    assert noisy.epsilon() == pytest.approx((0.1 / 0.9 / 3) ** 0.5, rel=1e-12) and plain.epsilon() == 0.0
    for a, b in zip(noisy.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)
