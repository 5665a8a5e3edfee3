"""nets.sweep: expansion, naming, hashing, skip/resume, sharding, dry run, parallel execution (fake trainer)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nets import sweep
from nets.sweep import RunSpec, SweepConfig
from nets.sweep_cli import main as sweep_main
from fixtures_results import write_metrics

FAKE_TRAINER = (sys.executable, str(Path(__file__).with_name("fixtures_results.py")))
TABLE1_P = (0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0)


def table1_config(out: Path, **changes) -> SweepConfig:
    config = SweepConfig(models=("preresnet20", "preresnet56", "preresnet110"), p=TABLE1_P, seeds=4,
                         data="/data/cifar10.h5", out=out, trainer=FAKE_TRAINER)
    return replace(config, **changes)


def test_table1_expands_to_84_distinct_runs_in_order(tmp_path):
    runs = sweep.expand(table1_config(tmp_path))
    assert len(runs) == 3 * 7 * 4
    assert len({run.name for run in runs}) == 84
    assert [run.model for run in runs[:28]] == ["preresnet20"] * 28
    assert [(run.p, run.seed) for run in runs[:5]] == [(0.85, 0), (0.85, 1), (0.85, 2), (0.85, 3), (0.875, 0)]
    assert all(run.noise == "bernoulli" for run in runs)
    # the four seeds of one configuration share the configuration hash; different configurations do not
    hashes = {(run.model, run.p): run.config_hash for run in runs}
    assert len(set(hashes.values())) == 21
    assert all(run.config_hash == hashes[(run.model, run.p)] for run in runs)


def test_name_is_readable_and_stable():
    run = RunSpec(model="preresnet20", noise="bernoulli", p=0.9, nu=None, beta=None, stochastic_depth=None,
                  h=None, epochs=None, batch_size=None, seed=0, data="/data/cifar10.h5")
    name = run.name
    assert name.startswith("preresnet20-bernoulli-p0.9-s0-")
    suffix = name.rsplit("-", 1)[1]
    assert len(suffix) == 8 and suffix == run.config_hash
    again = RunSpec(**{**run.__dict__})
    assert again.name == name
    # the data's directory does not enter the hash (moving the data keeps the runs); its name does
    assert replace(run, data="/elsewhere/cifar10.h5").name == name
    assert replace(run, data="/data/cifar100.h5").config_hash != run.config_hash
    # the hash is that of the canonical JSON of the configuration, computed independently here
    import hashlib
    canonical = '{"data":"cifar10.h5","model":"preresnet20","noise":"bernoulli","p":0.9}'
    assert run.config_hash == hashlib.sha256(canonical.encode()).hexdigest()[:8]


@pytest.mark.parametrize("change", [dict(p=0.875), dict(model="preresnet56"), dict(epochs=10), dict(h=0.1),
                                    dict(stochastic_depth=0.5), dict(lr=0.05), dict(batch_size=64),
                                    dict(schedule=(80, 120)), dict(weight_decay=5e-4)])
def test_hash_changes_with_every_configuration_field(change):
    run = RunSpec(model="preresnet20", noise="bernoulli", p=0.9, nu=None, beta=None, stochastic_depth=None,
                  h=None, epochs=None, batch_size=None, seed=0, data="cifar10.h5")
    assert replace(run, **change).config_hash != run.config_hash
    assert replace(run, seed=3).config_hash == run.config_hash
    assert replace(run, seed=3).name != run.name


def test_noise_kinds_are_crossed_with_their_own_parameters(tmp_path):
    config = SweepConfig(models=("preresnet20",), noise=("none", "bernoulli", "gaussian"), p=(0.9, 0.95),
                         nu=(0.1,), data="synthetic", out=tmp_path, stochastic_depth=(None, 0.5), h=(None, 0.1))
    runs = sweep.expand(config)
    assert len(runs) == (1 + 2 + 1) * 2 * 2
    gaussian = [run for run in runs if run.noise == "gaussian"]
    assert all(run.nu == 0.1 and run.p is None for run in gaussian)
    plain = [run for run in runs if run.noise is None]
    assert all(run.p is None and run.name.startswith("preresnet20-plain") for run in plain)
    args = [run for run in runs if run.noise == "gaussian" and run.h == 0.1 and run.stochastic_depth == 0.5][0]
    argv = args.train_args(Path("out/x"))
    assert argv[argv.index("--noise") + 1] == "gaussian" and float(argv[argv.index("--nu") + 1]) == 0.1
    assert float(argv[argv.index("--stochastic-depth") + 1]) == 0.5 and float(argv[argv.index("--h") + 1]) == 0.1
    assert "--p" not in argv


@pytest.mark.parametrize("change, word", [
    (dict(p=(1.2,)), "p"), (dict(p=(0.0,)), "p"), (dict(models=()), "models"), (dict(models=("Pre ResNet",)), "models"),
    (dict(noise=("gaussian",), p=()), "nu"), (dict(noise=("dropout",)), "noise"), (dict(seeds=0), "seeds"),
    (dict(epochs=(0,)), "epochs"), (dict(h=(-1.0,)), "h"), (dict(stochastic_depth=(1.5,)), "stochastic_depth"),
    (dict(nu=(-0.1,)), "nu"), (dict(beta=(1.0,)), "beta"), (dict(p=(0.9, 0.9)), "p"), (dict(device="tpu"), "device"),
    (dict(noise=("none",)), "p"),
])
def test_bad_configuration_names_the_field(tmp_path, change, word):
    with pytest.raises(ValueError, match=word):
        sweep.expand(table1_config(tmp_path, **change))


def test_shards_partition_the_runs_deterministically(tmp_path):
    runs = sweep.expand(table1_config(tmp_path))
    shards = [sweep.shard(runs, i, 5) for i in range(5)]
    names = [run.name for part in shards for run in part]
    assert sorted(names) == sorted(run.name for run in runs)          # disjoint and complete
    assert max(map(len, shards)) - min(map(len, shards)) <= 1          # balanced
    # the partition does not depend on the order of the command-line lists
    reordered = sweep.expand(table1_config(tmp_path, models=("preresnet110", "preresnet20", "preresnet56"),
                                           p=tuple(reversed(TABLE1_P))))
    assert {r.name for r in sweep.shard(reordered, 2, 5)} == {r.name for r in shards[2]}
    assert sweep.parse_shard("3/8") == (3, 8)
    for bad in ("8/8", "1", "-1/4", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            sweep.parse_shard(bad)


def test_status_finished_partial_pending(tmp_path):
    assert sweep.run_status(tmp_path / "nothing") == "pending"
    write_metrics(tmp_path / "done", model="preresnet20", seed=0, test_acc=[0.5, 0.6], train_loss=[1.0, 0.5])
    assert sweep.run_status(tmp_path / "done") == "finished"
    write_metrics(tmp_path / "half", model="preresnet20", seed=0, test_acc=[0.5], train_loss=[1.0], finished=False)
    assert sweep.run_status(tmp_path / "half") == "partial"
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint.pt").write_bytes(b"x")
    assert sweep.run_status(tmp_path / "ckpt") == "partial"
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "metrics.h5").write_bytes(b"not hdf5")
    assert sweep.run_status(tmp_path / "corrupt") == "partial"


def write_data(path: Path, spec: str = "synthetic:64:32") -> str:
    """An .h5 data file at path (nets.data.write_h5 of a synthetic set); returns the path as a string."""
    from nets.data import load_dataset, write_h5

    path.parent.mkdir(parents=True, exist_ok=True)
    write_h5(load_dataset(spec), path)
    return str(path)


def test_dry_run_says_when_a_partial_run_saved_no_epoch(tmp_path):
    from nets.sweep_run import dry_run_lines

    out = tmp_path / "t0"
    config = table1_config(out, models=("preresnet20",), p=(0.9,), seeds=1)
    (run,) = sweep.expand(config)
    (out / run.name).mkdir(parents=True)
    (out / run.name / "config.json").write_text("{}")  # started, killed before its first epoch ended
    (line,) = dry_run_lines(sweep.plan(config))
    assert line.endswith("# resumes a partial run (no epoch saved yet)")


def test_dry_run_lists_commands_skips_finished_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "t1"
    data = write_data(tmp_path / "data" / "cifar10.h5")
    config = table1_config(out, models=("preresnet20",), p=(0.9, 1.0), seeds=2)
    runs = sweep.expand(config)
    write_metrics(out / runs[0].name, model="preresnet20", seed=0, p=0.9, test_acc=[0.5], train_loss=[1.0])
    write_metrics(out / runs[1].name, model="preresnet20", seed=1, p=0.9, test_acc=[0.5], train_loss=[1.0], finished=False,
                  epochs=3)
    before = sorted(p.name for p in out.rglob("*"))
    code = sweep_main(["--models", "preresnet20", "--p", "0.9", "1.0", "--seeds", "2", "--data", data,
                       "--out", str(out), "--dry-run", "--trainer", " ".join(FAKE_TRAINER)])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert captured.err.strip() == "# 4 runs: 1 finished, 1 partial (resumed), 2 pending"
    assert lines[0] == f"# finished, skipped: {runs[0].name}"
    assert lines[1].endswith("# resumes a partial run (1 of 3 epochs done)") and f"--out {out / runs[1].name}" in lines[1]
    assert len(lines) == 4
    assert "--p 1.0" in lines[3] and "--seed 1" in lines[3] and f"--data {data}" in lines[3]
    assert sorted(p.name for p in out.rglob("*")) == before


def test_cli_bad_arguments_exit_2_with_one_line(tmp_path):
    cases = [["--models", "preresnet20", "--p", "1.5"], ["--models", "preresnet20", "--shard", "4/4"],
             ["--models", "preresnet20", "--h", "zero"], ["--models", "preresnet20", "--parallel", "0"],
             ["--models", "preresnet20", "--noise", "gaussian"]]
    for extra in cases:
        result = subprocess.run([sys.executable, "-m", "nets.sweep", *extra, "--data", "synthetic", "--out",
                                 str(tmp_path / "o"), "--dry-run"], capture_output=True, text=True)
        assert result.returncode == 2, extra
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("python -m nets.sweep: error:")
    assert not (tmp_path / "o").exists()


def test_parallel_execution_skip_resume_and_manifest(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    log = tmp_path / "events.log"
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(log))
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "1.5")
    config = SweepConfig(models=("preresnet8",), p=(0.9, 1.0), seeds=2, epochs=(2,), data="synthetic", out=out,
                         trainer=FAKE_TRAINER)
    runs = sweep.expand(config)
    write_metrics(out / runs[0].name, model="preresnet8", seed=0, p=0.9, test_acc=[0.5], train_loss=[1.0])
    write_metrics(out / runs[2].name, model="preresnet8", seed=0, p=1.0, test_acc=[0.5], train_loss=[1.0], finished=False)
    outcomes = sweep.run_sweep(config, parallel=3, progress=False)
    assert [o.name for o in outcomes] == [run.name for run in runs]
    assert [o.status_before for o in outcomes] == ["finished", "pending", "partial", "pending"]
    assert all(o.returncode == 0 and o.ok and o.status_after == "finished" for o in outcomes)
    assert all(sweep.run_status(out / run.name) == "finished" for run in runs)
    events = [line.split() for line in log.read_text().splitlines()]
    started = {name for kind, name, _, _ in events if kind == "start"}
    assert runs[0].name not in started and len(started) == 3           # the finished run was skipped
    # the three runs overlapped in time: each started before any other ended
    first_end = min(float(t) for kind, _, t, _ in events if kind == "end")
    assert all(float(t) < first_end for kind, _, t, _ in events if kind == "start")
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == [run.name for run in runs]
    assert manifest["runs"][1]["returncode"] == 0 and manifest["runs"][0]["status_before"] == "finished"
    assert manifest["sweep"]["p"] == [0.9, 1.0] and manifest["runs"][1]["configuration"]["model"] == "preresnet8"
    assert (out / "logs" / f"{runs[1].name}.log").read_text().startswith("$ ")
    # a second invocation trains nothing
    log.write_text("")
    again = sweep.run_sweep(config, parallel=2, progress=False)
    assert all(o.status_before == "finished" for o in again) and log.read_text() == ""


def test_failed_run_is_reported_and_cli_exits_1(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    config = SweepConfig(models=("preresnet8",), p=(0.9,), seeds=2, data="synthetic", out=out, trainer=FAKE_TRAINER)
    failing = sweep.expand(config)[1].name
    monkeypatch.setenv("FAKE_TRAIN_FAIL", failing)
    code = sweep_main(["--models", "preresnet8", "--p", "0.9", "--seeds", "2", "--data", "synthetic", "--out", str(out),
                       "--trainer", " ".join(FAKE_TRAINER), "--no-progress", "--parallel", "2"])
    assert code == 1
    manifest = json.loads((out / "sweep.json").read_text())
    assert [r["returncode"] for r in manifest["runs"]] == [0, 3]
    assert "failing on purpose" in (out / "logs" / f"{failing}.log").read_text()


def test_shard_cli_trains_only_its_runs(tmp_path):
    out = tmp_path / "sweep"
    base = ["--models", "preresnet8", "--p", "0.8", "0.9", "1.0", "--seeds", "1", "--data", "synthetic", "--out",
            str(out), "--trainer", " ".join(FAKE_TRAINER), "--no-progress"]
    assert sweep_main(base + ["--shard", "1/2"]) == 0
    config = SweepConfig(models=("preresnet8",), p=(0.8, 0.9, 1.0), data="synthetic", out=out)
    expected = {run.name for run in sweep.shard(sweep.expand(config), 1, 2)}
    trained = {path.parent.name for path in out.glob("*/metrics.h5")}
    assert trained == expected and len(expected) == 1
    assert (out / "sweep-shard1of2.json").is_file()


def test_unknown_model_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        sweep_main(["--models", "preresnet20", "preresnet21", "--data", "synthetic", "--out", str(tmp_path / "o")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "preresnet21" in err and "preresnet110" in err
    assert not (tmp_path / "o").exists()


def _trainer_gone(pid: int, timeout: float) -> bool:
    """Whether process pid no longer runs the fake trainer within timeout: it does not exist, is a zombie (dead,
    left for its new parent to reap), or the pid now belongs to another program (reused)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state == "Z" or b"fixtures_results.py" not in cmdline:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.parametrize("signum, code, said", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_interrupted_sweep_stops_its_trainers_and_resumes(tmp_path, signum, code, said):
    """Ctrl-C, and SIGTERM (kill, a scheduler's time limit: the default action would orphan the trainers)."""
    import os
    import signal
    import time

    out = tmp_path / "sweep"
    log = tmp_path / "events.log"
    env = {**os.environ, "FAKE_TRAIN_LOG": str(log), "FAKE_TRAIN_SLEEP": "60"}
    argv = [sys.executable, "-m", "nets.sweep", "--models", "preresnet8", "--p", "0.9", "1.0", "--data", "synthetic",
            "--out", str(out), "--trainer", " ".join(FAKE_TRAINER), "--parallel", "2", "--no-progress"]
    # SIGINT as in a terminal even when pytest runs as a background job (which inherits SIGINT ignored, and then
    # Python installs no KeyboardInterrupt handler in the sweep)
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not log.exists() or log.read_text().count("start") < 2):
        time.sleep(0.05)
    pids = [int(line.split()[3]) for line in log.read_text().splitlines()]
    assert len(pids) == 2
    process.send_signal(getattr(signal, signum))
    # communicate: a full stderr pipe cannot stall the sweep; 90 s: longer than the 30 s the sweep itself gives a
    # terminated trainer before killing it, so a slow machine shows the sweep's own message, not a test timeout
    try:
        _, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the sweep did not exit within 90 s of {signum}; its stderr: {err.decode()!r}")
    err = err.decode()
    assert process.returncode == code, err
    assert said in err and "run the same command to resume" in err
    for pid in pids:                       # the trainers it started are gone
        assert _trainer_gone(pid, timeout=5.0), f"fake trainer {pid} still running after the sweep exited"
    assert not list(out.glob("*/metrics.h5"))
    env["FAKE_TRAIN_SLEEP"] = "0"
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    assert len(list(out.glob("*/metrics.h5"))) == 2


def test_trainer_exiting_0_without_finishing_counts_as_failed(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = sweep_main(["--models", "preresnet8", "--data", "synthetic", "--out", str(out), "--trainer", "true",
                       "--no-progress"])
    assert code == 1
    assert "exit 0 but metrics.h5 does not say finished" in capsys.readouterr().err
    manifest = json.loads((out / "sweep.json").read_text())
    assert manifest["runs"][0]["returncode"] == 0 and manifest["runs"][0]["status_after"] == "pending"


@pytest.mark.parametrize("extra, word", [(["--data", "/no/such/cifar10.h5"], "data"),
                                         (["--data", "synthetic", "--lr", "0"], "lr"),
                                         (["--data", "synthetic", "--schedule", "120", "80"], "milestones")])
def test_what_the_trainer_would_refuse_is_refused_up_front(tmp_path, capsys, extra, word):
    with pytest.raises(SystemExit) as exited:
        sweep_main(["--models", "preresnet8", "--p", "0.9", "--out", str(tmp_path / "o"), *extra])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and word in err
    assert not (tmp_path / "o").exists()


def test_gpus_pin_each_slot_through_cuda_visible_devices(tmp_path):
    out = tmp_path / "sweep"
    script = "import os, sys; open(sys.argv[sys.argv.index('--out') + 1] + '.gpu', 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])"
    config = SweepConfig(models=("preresnet8",), p=(0.8, 0.9, 1.0), seeds=1, data="synthetic", out=out,
                         trainer=(sys.executable, "-c", script))
    outcomes = sweep.run_sweep(config, parallel=2, gpus=("0,1", "2,3"), progress=False)
    seen = [(out / f"{o.name}.gpu").read_text() for o in outcomes]
    assert seen[:2] == ["0,1", "2,3"] and seen[2] in ("0,1", "2,3")


def test_input_noise_enters_name_and_hash_only_when_nonzero():
    run = RunSpec(model="preresnet20", noise=None, p=None, nu=None, beta=None, stochastic_depth=None, h=0.1,
                  epochs=80, batch_size=None, seed=0, data="/data/cifar10.h5", schedule=(40, 60))
    import hashlib
    canonical = '{"data":"cifar10.h5","epochs":80,"h":0.1,"model":"preresnet20","schedule":[40,60]}'
    assert run.config_hash == hashlib.sha256(canonical.encode()).hexdigest()[:8]  # as before input_noise existed
    assert run.name == f"preresnet20-plain-h0.1-e80-s0-{run.config_hash}"
    for zero in (0, 0.0):
        assert replace(run, input_noise=zero).name == run.name
        assert replace(run, input_noise=zero).config_hash == run.config_hash
        assert "--input-noise" not in replace(run, input_noise=zero).train_args(Path("o"))
    noisy = replace(run, input_noise=0.3)
    assert noisy.config_hash != run.config_hash and replace(run, input_noise=0.5).config_hash != noisy.config_hash
    canonical_noisy = canonical[:-1].replace('"h":0.1,', '"h":0.1,"input_noise":0.3,') + "}"
    assert noisy.config_hash == hashlib.sha256(canonical_noisy.encode()).hexdigest()[:8]
    assert noisy.name == f"preresnet20-plain-h0.1-inoise0.3-e80-s0-{noisy.config_hash}"
    argv = noisy.train_args(Path("o"))
    assert float(argv[argv.index("--input-noise") + 1]) == 0.3


def test_input_noise_is_crossed_with_the_grid_and_clean_runs_keep_their_names(tmp_path):
    base = SweepConfig(models=("preresnet20",), h=(0.1, 1.0), seeds=2, epochs=(80,), schedule=(40, 60),
                       data="cifar10.h5", out=tmp_path)
    crossed = sweep.expand(replace(base, input_noise=(0.0, 0.1, 0.8)))
    assert len(crossed) == 2 * 3 * 2
    assert [(r.h, r.input_noise, r.seed) for r in crossed[:4]] == [(0.1, 0.0, 0), (0.1, 0.0, 1), (0.1, 0.1, 0),
                                                                    (0.1, 0.1, 1)]
    clean = sweep.expand(base)
    assert [r.name for r in crossed if r.input_noise == 0.0] == [r.name for r in clean]
    assert len({r.name for r in crossed}) == 12 and len({r.config_hash for r in crossed}) == 6
    with pytest.raises(ValueError, match="input_noise"):
        sweep.expand(replace(base, input_noise=(-0.1,)))
    with pytest.raises(ValueError, match="input_noise"):
        sweep.expand(replace(base, input_noise=(0.1, 0.1)))
    with pytest.raises(ValueError, match="input_noise"):
        sweep.expand(replace(base, input_noise=()))


def test_cli_input_noise_dry_run_and_bad_value(tmp_path, capsys):
    out = tmp_path / "o"
    code = sweep_main(["--models", "preresnet8", "--h", "0.1", "1.0", "--input-noise", "0", "0.5", "--data", "synthetic",
                       "--out", str(out), "--dry-run", "--trainer", " ".join(FAKE_TRAINER)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 4
    assert [("--input-noise 0.5" in line) for line in lines] == [False, True, False, True]
    assert not out.exists()
    result = subprocess.run([sys.executable, "-m", "nets.sweep", "--models", "preresnet8", "--input-noise", "-1",
                             "--data", "synthetic", "--out", str(out), "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--input-noise" in result.stderr and "Traceback" not in result.stderr


def test_sweep_with_input_noise_records_it_per_run(tmp_path):
    from figures.results import collect_runs

    config = SweepConfig(models=("preresnet8",), input_noise=(0.0, 0.3), seeds=1, epochs=(2,), data="synthetic",
                         out=tmp_path / "s", trainer=FAKE_TRAINER)
    outcomes = sweep.run_sweep(config, progress=False)
    assert all(o.ok for o in outcomes)
    records = {r.name: r for r in collect_runs(tmp_path / "s")}
    runs = sweep.expand(config)
    assert records[runs[0].name].input_noise == 0.0 and "input_noise" not in records[runs[0].name].attrs
    assert records[runs[1].name].input_noise == 0.3


def test_grad_norm_every_enters_name_and_hash_only_when_nonzero():
    run = RunSpec(model="preresnet110", noise=None, p=None, nu=None, beta=None, stochastic_depth=None, h=0.1,
                  epochs=80, batch_size=None, seed=0, data="/data/cifar10.h5", schedule=(40, 60))
    import hashlib
    canonical = '{"data":"cifar10.h5","epochs":80,"h":0.1,"model":"preresnet110","schedule":[40,60]}'
    assert run.config_hash == hashlib.sha256(canonical.encode()).hexdigest()[:8]  # as before the field existed
    assert run.name == f"preresnet110-plain-h0.1-e80-s0-{run.config_hash}"
    assert "--grad-norm-every" not in run.train_args(Path("o"))
    recorded = replace(run, grad_norm_every=10)
    canonical_gn = canonical[:-1].replace('"epochs":80,', '"epochs":80,"grad_norm_every":10,') + "}"
    assert recorded.config_hash == hashlib.sha256(canonical_gn.encode()).hexdigest()[:8]
    assert recorded.name == f"preresnet110-plain-h0.1-gn10-e80-s0-{recorded.config_hash}"
    argv = recorded.train_args(Path("o"))
    assert argv[argv.index("--grad-norm-every") + 1] == "10"
    base = SweepConfig(models=("preresnet110",), h=(0.1, 1.0), seeds=1, epochs=(80,), schedule=(40, 60),
                       data="cifar10.h5", out=Path("o"))
    plain, with_norms = sweep.expand(base), sweep.expand(replace(base, grad_norm_every=10))
    assert [r.grad_norm_every for r in with_norms] == [10, 10]  # one value for every run, not a grid axis
    assert [r.name.replace("-gn10", "") for r in with_norms] != [r.name for r in plain]  # the hash differs
    assert [r.name for r in plain] == [replace(r, grad_norm_every=0).name for r in with_norms]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="grad_norm_every"):
            sweep.expand(replace(base, grad_norm_every=bad))


def test_cli_grad_norm_every_dry_run_and_bad_value(tmp_path, capsys):
    out = tmp_path / "o"
    code = sweep_main(["--models", "preresnet8", "--h", "0.1", "1.0", "--grad-norm-every", "10", "--data", "synthetic",
                       "--out", str(out), "--dry-run", "--trainer", " ".join(FAKE_TRAINER)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2 and all("--grad-norm-every 10" in line and "-gn10-" in line for line in lines)
    result = subprocess.run([sys.executable, "-m", "nets.sweep", "--models", "preresnet8", "--grad-norm-every", "-1",
                             "--data", "synthetic", "--out", str(out), "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--grad-norm-every" in result.stderr and "Traceback" not in result.stderr


def test_eps_trains_each_kind_at_the_parameter_of_that_noise_level(tmp_path):
    import math

    from nets.models import build_model

    config = SweepConfig(models=("preresnet20", "preresnet8"), noise=("none", "bernoulli", "gaussian", "uniform"),
                         eps=(1 / 9, 0.15), data="synthetic", out=tmp_path, seeds=2)
    runs = sweep.expand(config)
    assert len(runs) == sweep.run_count(config) == 2 * (1 + 3 * 2) * 2
    for run in runs:
        if run.noise is None:
            assert run.p is None and run.nu is None and run.beta is None
            continue
        blocks = {"preresnet20": 9, "preresnet8": 3}[run.model]
        parameter = {"bernoulli": run.p, "gaussian": run.nu, "uniform": run.beta}[run.noise]
        # the model built with this parameter has the asked eps (eqs. 3.2, 3.13, 3.14 through model.epsilon())
        model = build_model(run.model, noise=run.noise, **{sweep._PARAMETER_OF[run.noise]: parameter})
        assert model.num_blocks == blocks
        assert any(math.isclose(model.epsilon(), eps, rel_tol=1e-11) for eps in config.eps)
    # closed forms at K = 9, eps = 0.15: p = 1/(1 + 9 * 0.0225), nu = 0.45, beta = 0.15 sqrt(27); 12 digits
    at = {(run.model, run.noise): run for run in runs if run.seed == 0 and run.noise and
          math.isclose({"bernoulli": math.sqrt((1 - (run.p or 1)) / ((run.p or 1) * 9)), "gaussian": (run.nu or 0) / 3,
                        "uniform": (run.beta or 0) / math.sqrt(27)}[run.noise], 0.15, rel_tol=1e-9)}
    assert at[("preresnet20", "bernoulli")].p == float(f"{1 / 1.2025:.12g}")
    assert at[("preresnet20", "gaussian")].nu == 0.45  # not 0.44999999999999996: the run `--nu 0.45` names
    assert at[("preresnet20", "uniform")].beta == float(f"{0.15 * math.sqrt(27):.12g}")
    typed = replace(at[("preresnet20", "gaussian")], seed=0)
    assert typed.name == sweep.expand(SweepConfig(models=("preresnet20",), nu=(0.45,), data="synthetic",
                                                  out=tmp_path))[0].name


def test_eps_trains_stochastic_depth_at_the_p_last_of_that_rms_level(tmp_path):
    """noise stochastic_depth with eps: no mask, p_L with rms level eps (LM-ResNet paper 3.2) for each model's K,
    rounded to 12 digits; beside Bernoulli at the same eps the two compare at matched eps (figures.noise_kinds)."""
    import math

    from nets.models import build_model

    config = SweepConfig(models=("preresnet20", "preresnet8"), noise=("bernoulli", "stochastic_depth"),
                         eps=(math.sqrt(0.15 / 0.85 / 3), 0.2), data="synthetic", out=tmp_path, seeds=2)
    runs = sweep.expand(config)
    assert len(runs) == sweep.run_count(config) == 2 * 2 * 2 * 2
    depth_runs = [run for run in runs if run.stochastic_depth is not None]
    assert len(depth_runs) == 8 and all(run.noise is None and run.p is None for run in depth_runs)
    for run in depth_runs:
        model = build_model(run.model, stochastic_depth=run.stochastic_depth)
        # the rms level by hand from the linear-decay rule p_l = 1 - (l/K)(1 - p_L), eps_l^2 = (1 - p_l)/(p_l K)
        k = model.num_blocks
        survival = [1 - (l / k) * (1 - run.stochastic_depth) for l in range(1, k + 1)]
        rms = math.sqrt(sum((1 - p) / (p * k) for p in survival) / k)
        assert math.isclose(model.stochastic_depth_epsilon(), rms, rel_tol=1e-12)
        assert any(math.isclose(rms, eps, rel_tol=1e-10) for eps in config.eps)
        assert run.stochastic_depth == float(f"{run.stochastic_depth:.12g}")
    # PreResNet-8 at Bernoulli p = 0.85's eps: the p_L of docs/experiments.md section 7, 0.78124 to 5 digits
    at_085 = [run for run in depth_runs if run.model == "preresnet8" and run.stochastic_depth < 0.8]
    assert {round(run.stochastic_depth, 5) for run in at_085} == {0.78124}
    assert "-sd0.78124-" in at_085[0].name


@pytest.mark.parametrize("change, message", [
    (dict(noise=("stochastic_depth",), p=(0.9,)), "noise stochastic_depth needs eps"),
    (dict(noise=("stochastic_depth",), eps=(0.1,), stochastic_depth=(0.5,)), "sets p_L; do not give stochastic_depth"),
    (dict(noise=("stochastic_depth",), eps=(1e-9,)), r"eps 1e-09 is out of reach for stochastic depth in "
                                                     r"preresnet20 \(K = 9 blocks\): eps must be 0 or at least 2.62e-09"),
    (dict(noise=("stochastic_depth",), eps=(1e-7,)), r"eps 1e-07 is too small for stochastic depth in preresnet20 "
                                                     r"\(K = 9 blocks\): p_L rounds to 1.0"),
])
def test_stochastic_depth_kind_refusals(tmp_path, change, message):
    config = SweepConfig(**{"models": ("preresnet20",), "data": "synthetic", "out": tmp_path, **change})
    with pytest.raises(ValueError, match=message):
        sweep.expand(config)


def test_stochastic_depth_kind_takes_the_batch_mode(tmp_path):
    config = SweepConfig(models=("preresnet8",), noise=("none", "stochastic_depth"), eps=(0.2,), data="synthetic",
                         out=tmp_path, stochastic_depth_mode="batch")
    runs = sweep.expand(config)
    assert [run.stochastic_depth_mode for run in runs] == ["sample", "batch"]
    assert runs[0].stochastic_depth is None and "sdbatch" in runs[1].name


@pytest.mark.parametrize("change, message", [
    (dict(noise=("gaussian",), eps=(0.1,), nu=(0.3,)), "do not give nu with it"),
    (dict(noise=(), eps=(0.1,)), "eps needs noise"),
    (dict(noise=("none",), eps=(0.1,)), "eps needs noise"),
    (dict(noise=("gaussian",), eps=(0.0,)), "eps values must be finite and > 0"),
    (dict(noise=("gaussian",), eps=(float("nan"),)), "eps values must be finite and > 0"),
    (dict(noise=("gaussian",), eps=(0.1, 0.1)), "eps lists a value twice"),
    (dict(noise=("uniform",), eps=(0.2,)), r"eps 0.2 is out of reach of uniform noise in preresnet20 \(K = 9 blocks\): "
                                           r"eps must be below 1/sqrt\(3K\) = 0.19245"),
    # below 1/sqrt(27) = 0.19245008972987526 but beta = eps sqrt(27) rounds to 1.0 at 12 digits: not trainable
    (dict(noise=("uniform",), eps=(0.1924500897298,)), r"beta rounds to 1.0 \(12 digits\)"),
    # p = 1/(1 + 9e-14) rounds to 1.0: a run without noise (eps 0), not the eps asked for
    (dict(noise=("bernoulli",), eps=(1e-7,)), r"eps 1e-07 is too small for bernoulli noise in preresnet20 .* p rounds to "
                                              r"1.0 \(12 digits\), which gives eps 0,"),
    (dict(models=("nosuch",), noise=("gaussian",), eps=(0.1,)), r"unknown model\(s\) nosuch; models must be among"),
    (dict(models=("mlp_resnet",), noise=("gaussian",), eps=(0.1,)), r"model 'mlp_resnet' takes feature vectors"),
])
def test_eps_refusals_name_the_problem(tmp_path, change, message):
    config = SweepConfig(**{"models": ("preresnet20",), "data": "synthetic", "out": tmp_path, **change})
    with pytest.raises(ValueError, match=message):
        sweep.expand(config)


def test_cli_eps_dry_run(tmp_path, capsys):
    code = sweep_main(["--models", "preresnet20", "--noise", "bernoulli", "gaussian", "--eps", "0.15", "--data",
                       "synthetic", "--out", str(tmp_path / "o"), "--dry-run"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "--noise gaussian --nu 0.45 " in lines[1] and "--noise bernoulli --p 0.831600831601 " in lines[0]
    assert not (tmp_path / "o").exists()
    code = sweep_main(["--models", "preresnet8", "--noise", "stochastic_depth", "--eps", "0.2", "--data", "synthetic",
                       "--out", str(tmp_path / "o"), "--dry-run"])
    assert code == 0
    line, = capsys.readouterr().out.strip().splitlines()
    assert "--noise" not in line
    p_last = float(line.split("--stochastic-depth ")[1].split()[0])
    survival = [1 - (l / 3) * (1 - p_last) for l in (1, 2, 3)]  # preresnet8: K = 3; rms eps by hand
    assert math.isclose(math.sqrt(sum((1 - p) / (3 * p) for p in survival) / 3), 0.2, rel_tol=1e-10)


def test_cli_stochastic_depth_kind_without_eps_is_one_line_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nets.sweep", "--models", "preresnet8", "--noise", "stochastic_depth",
                             "--p", "0.9", "--data", "synthetic", "--out", str(tmp_path / "o")], capture_output=True,
                            text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--noise stochastic_depth needs eps (--eps" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
