"""nets.sweep's guards: data checked up front and by fingerprint, runs locked by another trainer skipped, a trainer
command that cannot start, numbers canonicalised like the CLI's, threads from the CPU affinity, log headers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nets import sweep, sweep_run
from nets.data import load_dataset, write_h5
from nets.sweep import SweepConfig
from nets.sweep_cli import build_parser, config_from_args
from nets.sweep_cli import main as sweep_main
from nets.locks import fcntl, run_lock
from fixtures_results import write_metrics
from cli_checks import assert_one_line_exit_2

FAKE_TRAINER = (sys.executable, str(Path(__file__).with_name("fixtures_results.py")))
ENV_SCRIPT = ("import os, sys; from pathlib import Path; out = Path(sys.argv[sys.argv.index('--out') + 1]); "
              "out.mkdir(parents=True); (out / 'omp').write_text(os.environ['OMP_NUM_THREADS'])")


def write_data(path: Path, spec: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5(load_dataset(spec), path)
    return str(path)


@pytest.mark.parametrize("data, word", [("synthetic:2k", "synthetic"), ("/etc/passwd", "unknown file type")])
@pytest.mark.parametrize("trainer", [[], ["--trainer", " ".join(FAKE_TRAINER)]], ids=["default", "custom"])
def test_data_the_trainer_cannot_load_is_refused_up_front_also_in_a_dry_run(tmp_path, capsys, data, word, trainer):
    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "--data", data, "--out", str(tmp_path / "o"),
                                   "--dry-run", *trainer])
    assert word in err and not (tmp_path / "o").exists()


def test_runs_trained_on_other_data_with_the_same_file_name_are_refused(tmp_path, capsys):
    cifar10 = write_data(tmp_path / "cifar10" / "train.h5", "synthetic:64:32")
    cifar100 = write_data(tmp_path / "cifar100" / "train.h5", "synthetic:80:32")
    out = tmp_path / "sweep"
    argv = ["--models", "preresnet8", "--p", "0.9", "--seeds", "2", "--out", str(out), "--trainer",
            " ".join(FAKE_TRAINER), "--no-progress"]
    runs = sweep.expand(SweepConfig(models=("preresnet8",), p=(0.9,), seeds=2, data=cifar10, out=out))
    same_names = sweep.expand(SweepConfig(models=("preresnet8",), p=(0.9,), seeds=2, data=cifar100, out=out))
    assert [run.name for run in runs] == [run.name for run in same_names]
    write_metrics(out / runs[0].name, model="preresnet8", seed=0, p=0.9, test_acc=[0.5], train_loss=[1.0])
    with h5py.File(out / runs[0].name / "metrics.h5", "a") as h5:
        h5.attrs["data_fingerprint"] = load_dataset(cifar10).fingerprint()
    err = assert_one_line_exit_2(capsys, sweep_main, [*argv, "--data", cifar100])
    assert runs[0].name in err and "use another --out" in err and load_dataset(cifar100).fingerprint() in err
    assert not (out / runs[1].name).exists() and not (out / "sweep.json").exists()  # nothing ran
    with pytest.raises(ValueError, match="use another --out"):
        sweep.run_sweep(sweep.with_trainer(SweepConfig(models=("preresnet8",), p=(0.9,), seeds=2, data=cifar100,
                                                       out=out), FAKE_TRAINER), progress=False)
    # the same data, moved: accepted, the finished run is skipped
    moved = tmp_path / "moved" / "train.h5"
    moved.parent.mkdir()
    Path(cifar10).rename(moved)
    assert sweep_main([*argv, "--data", str(moved), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"# finished, skipped: {runs[0].name}"
    # a run recorded before fingerprints existed is accepted as before
    with h5py.File(out / runs[0].name / "metrics.h5", "a") as h5:
        del h5.attrs["data_fingerprint"]
    assert sweep_main([*argv, "--data", cifar100, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"# finished, skipped: {runs[0].name}"


def test_a_trainer_command_that_does_not_exist_is_refused_up_front(tmp_path, capsys):
    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "--data", "synthetic:64:32", "--out",
                                   str(tmp_path / "o"), "--trainer", "no-such-trainer-cmd --flag"])
    assert "no-such-trainer-cmd" in err and "--trainer" in err and not (tmp_path / "o").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_a_cuda_device_without_cuda_is_refused_up_front_but_a_dry_run_lists_it(tmp_path, capsys):
    # each trainer would refuse it: every run failed, exit status 1; the dry run lists commands for a GPU node
    argv = ["--models", "preresnet8", "--data", "synthetic:64:32", "--out", str(tmp_path / "o"), "--device", "cuda"]
    err = assert_one_line_exit_2(capsys, sweep_main, argv)
    assert "--device 'cuda' needs CUDA" in err and not (tmp_path / "o").exists()
    assert sweep_main([*argv, "--dry-run"]) == 0 and "--device cuda" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value, word", [
    ("--trainer", "", "trainer command '' not found"),  # was the default trainer, silently
    ("--trainer", '"unclosed', "--trainer '\"unclosed' is not a command line"),  # was shlex's bare "No closing quotation"
    ("--shard", "", "shard must be I/N"),  # was every run, silently (an unset $SLURM_ARRAY_TASK_ID-style value)
])
def test_an_empty_or_unparsable_trainer_or_shard_is_refused(tmp_path, capsys, flag, value, word):
    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "--data", "synthetic:64:32", "--out",
                                                     str(tmp_path / "o"), "--dry-run", flag, value])
    assert word in err and not (tmp_path / "o").exists()


def test_a_trainer_that_cannot_start_fails_its_run_and_the_others_go_on(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    config = SweepConfig(models=("preresnet8",), p=(0.8, 0.9, 1.0), data="synthetic:64:32", out=out,
                         trainer=FAKE_TRAINER)
    runs = sweep.expand(config)
    real_popen = subprocess.Popen

    def popen(cmd, *args, **kwargs):
        if str(out / runs[1].name) in cmd:
            raise PermissionError(13, "Permission denied", cmd[0])
        return real_popen(cmd, *args, **kwargs)

    monkeypatch.setattr(sweep_run.subprocess, "Popen", popen)
    outcomes = sweep.run_sweep(config, parallel=2, progress=False)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error.startswith("cannot start the trainer: [Errno 13] Permission denied")
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["runs"][1]["error"] == outcomes[1].error and manifest["runs"][1]["returncode"] is None
    assert outcomes[1].error in (out / "logs" / f"{runs[1].name}.log").read_text()


@pytest.mark.skipif(fcntl is None, reason="no run locks without fcntl (not POSIX)")
def test_a_run_being_trained_elsewhere_is_skipped_not_failed(tmp_path, capsys, monkeypatch):
    import os

    out = tmp_path / "sweep"
    events = tmp_path / "events.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(events))
    argv = ["--models", "preresnet8", "--p", "0.9", "1.0", "--data", "synthetic:64:32", "--out", str(out),
            "--trainer", " ".join(FAKE_TRAINER), "--no-progress"]
    runs = sweep.expand(config_from_args(build_parser().parse_args(argv)))
    with run_lock(out / runs[0].name):
        assert sweep_main([*argv, "--dry-run"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"# running elsewhere (pid {os.getpid()}; no epoch saved yet), skipped: {runs[0].name}"
        assert sweep_main(argv) == 0
    captured = capsys.readouterr()
    assert "2 runs: 0 already finished, 1 trained, 0 failed, 1 running elsewhere (skipped)" in captured.out
    started = [line.split()[1] for line in events.read_text().splitlines() if line.startswith("start")]
    assert started == [runs[1].name]
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["running_elsewhere"] for r in manifest["runs"]] == [True, False]
    assert sweep.run_status(out / runs[0].name) == "pending"  # an empty locked directory is not a partial run


@pytest.mark.skipif(fcntl is None, reason="no run locks without fcntl (not POSIX)")
def test_a_trainer_refused_by_a_lock_taken_after_the_probe_counts_as_running_elsewhere(tmp_path):
    out = tmp_path / "sweep"
    config = SweepConfig(models=("preresnet8",), data="synthetic:64:32", out=out, trainer=FAKE_TRAINER)
    run = sweep.expand(config)[0]
    script = "import sys; from nets.trainer import run_lock; sys.exit(2)"
    plan = sweep.plan(sweep.with_trainer(config, (sys.executable, "-c", script)))
    with run_lock(out / run.name):
        real_locked_by, calls = sweep_run.locked_by, []

        def probe(run_dir):  # the first probe (before starting) misses the lock, as in a race
            calls.append(run_dir)
            return None if len(calls) == 1 else real_locked_by(run_dir)

        sweep_run.locked_by = probe
        try:
            [outcome] = sweep.execute(plan, progress=False)
        finally:
            sweep_run.locked_by = real_locked_by
    assert outcome.returncode == 2 and outcome.elsewhere and not outcome.failed


def test_library_numbers_are_canonicalised_like_the_cli(tmp_path):
    argv = ["--models", "preresnet8", "--p", "0.9", "--epochs", "10", "--batch-size", "64", "--lr", "1",
            "--weight-decay", "0", "--momentum", "0.5", "--gamma", "0.2", "--schedule", "5", "--data", "synthetic",
            "--out", str(tmp_path)]
    cli = sweep.expand(config_from_args(build_parser().parse_args(argv)))
    library = sweep.expand(SweepConfig(models=("preresnet8",), p=(np.float64(0.9),), epochs=(10.0,),
                                       batch_size=(np.int64(64),), lr=1, weight_decay=0, momentum=np.float32(0.5),
                                       gamma=np.float64(0.2), schedule=(np.int64(5),), data="synthetic",
                                       out=tmp_path))
    assert [run.name for run in library] == [run.name for run in cli] and "-e10-" in library[0].name
    args = library[0].train_args(tmp_path / "r")
    assert args == cli[0].train_args(tmp_path / "r")
    assert args[args.index("--lr") + 1] == "1.0" and args[args.index("--epochs") + 1] == "10"
    assert args[args.index("--momentum") + 1] == "0.5"
    json.dumps(library[0].configuration())
    lr = sweep.expand(SweepConfig(models=("preresnet8",), lr=np.float64(0.05), data="synthetic", out=tmp_path))[0]
    assert lr.train_args(tmp_path)[lr.train_args(tmp_path).index("--lr") + 1] == "0.05"
    # the manifest writes numpy numbers of the sweep's configuration as numbers
    config = SweepConfig(models=("preresnet8",), p=(np.float64(0.9),), epochs=(np.int64(3),), lr=np.float64(0.05),
                         data="synthetic", out=tmp_path / "m", trainer=FAKE_TRAINER)
    sweep.execute(sweep.plan(config), progress=False)
    manifest = json.loads((tmp_path / "m" / "sweep.json").read_text())
    assert manifest["sweep"]["p"] == [0.9] and manifest["sweep"]["epochs"] == [3] and manifest["sweep"]["lr"] == 0.05


def test_library_numbers_that_are_not_numbers_are_refused(tmp_path):
    config = SweepConfig(models=("preresnet8",), data="synthetic", out=tmp_path)
    for change, word in [({"lr": True}, "lr"), ({"lr": "0.1"}, "lr"), ({"momentum": np.bool_(True)}, "momentum"),
                         ({"epochs": (10.5,)}, "epochs"), ({"batch_size": (True,)}, "batch_size"),
                         ({"gamma": float("nan")}, "gamma")]:
        with pytest.raises(ValueError, match=word) as error:
            sweep.expand(sweep.replace(config, **change))
        assert len(str(error.value).splitlines()) == 1


def test_omp_threads_come_from_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(sweep_run.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(sweep_run.os, "cpu_count", lambda: 64)
    out = tmp_path / "sweep"
    config = SweepConfig(models=("preresnet8",), p=(0.9, 1.0), data="synthetic:64:32", out=out,
                         trainer=(sys.executable, "-c", ENV_SCRIPT))
    outcomes = sweep.run_sweep(config, parallel=2, progress=False)
    assert [(out / o.name / "omp").read_text() for o in outcomes] == ["2", "2"]


def test_a_resumed_runs_command_header_starts_on_a_new_line(tmp_path):
    out = tmp_path / "sweep"
    config = SweepConfig(models=("preresnet8",), data="synthetic:64:32", out=out, trainer=FAKE_TRAINER)
    run = sweep.expand(config)[0]
    log = out / "logs" / f"{run.name}.log"
    log.parent.mkdir(parents=True)
    log.write_text("$ earlier command\nepoch 1:  40%|####      | 2/5")  # a killed trainer's progress bar
    [outcome] = sweep.run_sweep(config, progress=False)
    assert outcome.ok
    lines = log.read_text().splitlines()
    assert lines[1] == "epoch 1:  40%|####      | 2/5" and lines[2].startswith("$ ")
