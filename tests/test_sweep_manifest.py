"""The sweep's manifest (OUT/sweep.json) is merged: sweeps sharing one --out keep each other's runs listed.

The runs are trained by the fake trainer of tests/fixtures_results.py (it writes a finished metrics.h5).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from nets import sweep, sweep_run
from nets.sweep import SweepConfig
from nets.sweep_cli import main as sweep_main

FAKE_TRAINER = (sys.executable, str(Path(__file__).with_name("fixtures_results.py")))


def bernoulli_argv(out: Path) -> list[str]:
    return ["--models", "preresnet8", "--p", "0.9", "1.0", "--data", "synthetic:64:32", "--out", str(out),
            "--trainer", " ".join(FAKE_TRAINER), "--no-progress"]


def gaussian_argv(out: Path) -> list[str]:
    return ["--models", "preresnet8", "--noise", "gaussian", "--nu", "0.3", "--data", "synthetic:64:32", "--out",
            str(out), "--trainer", " ".join(FAKE_TRAINER), "--no-progress"]


def names(argv: list[str], out: Path) -> list[str]:
    """The run names of the sweep argv describes (through the CLI's own parser)."""
    from nets.sweep_cli import build_parser, config_from_args

    return [run.name for run in sweep.expand(config_from_args(build_parser().parse_args(argv)))]


def manifest(out: Path) -> dict:
    return json.loads((out / "sweep.json").read_text())


def test_two_sweeps_on_one_out_are_both_listed(tmp_path, capsys):
    out = tmp_path / "x"
    first, second = names(bernoulli_argv(out), out), names(gaussian_argv(out), out)
    assert len(first) == 2 and len(second) == 1 and not set(first) & set(second)
    assert sweep_main(bernoulli_argv(out)) == 0
    assert sweep_main(gaussian_argv(out)) == 0
    written = manifest(out)
    listed = [entry["name"] for entry in written["runs"]]
    assert sorted(listed) == sorted(first + second) and len(listed) == 3
    assert written["sweep"]["noise"] == ["gaussian"]                      # the configuration of the last sweep
    kept = {entry["name"]: entry for entry in written["runs"]}
    for name in first:                                                   # the first sweep's entries as they were
        assert kept[name]["returncode"] == 0 and kept[name]["status_after"] == "finished"
        assert kept[name]["status"] == "finished"                        # refreshed from disk
        assert "--p" in kept[name]["command"]
    assert kept[second[0]]["status"] == "finished" and "--nu" in kept[second[0]]["command"]
    assert "warning" not in capsys.readouterr().err


def test_rerunning_a_sweep_does_not_duplicate_its_entries(tmp_path):
    out = tmp_path / "x"
    assert sweep_main(bernoulli_argv(out)) == 0
    assert sweep_main(gaussian_argv(out)) == 0
    assert sweep_main(bernoulli_argv(out)) == 0
    assert sweep_main(gaussian_argv(out)) == 0
    listed = [entry["name"] for entry in manifest(out)["runs"]]
    assert len(listed) == len(set(listed)) == 3
    rerun = {entry["name"]: entry for entry in manifest(out)["runs"]}
    assert all(rerun[name]["status_before"] == "finished" for name in names(gaussian_argv(out), out))


def test_runs_whose_directory_is_gone_are_dropped(tmp_path):
    out = tmp_path / "x"
    assert sweep_main(bernoulli_argv(out)) == 0
    gone, stays = names(bernoulli_argv(out), out)
    shutil.rmtree(out / gone)
    assert sweep_main(gaussian_argv(out)) == 0
    listed = [entry["name"] for entry in manifest(out)["runs"]]
    assert gone not in listed and stays in listed and len(listed) == 2


def test_another_sweeps_runs_not_started_yet_are_kept(tmp_path):
    """A run another sweep listed as pending has no directory yet: it stays listed, still pending; a deleted
    finished run (same missing directory, recorded as finished) is dropped."""
    out = tmp_path / "x"
    assert sweep_main(gaussian_argv(out)) == 0
    other = manifest(out)
    template = other["runs"][0]
    other["runs"] += [dict(template, name="queued-elsewhere", status="pending", status_after=None, returncode=None),
                      dict(template, name="deleted-finished", status="finished")]
    (out / "sweep.json").write_text(json.dumps(other))
    assert sweep_main(bernoulli_argv(out)) == 0
    kept = {entry["name"]: entry for entry in manifest(out)["runs"]}
    assert "deleted-finished" not in kept and len(kept) == 4
    assert kept["queued-elsewhere"]["status"] == "pending"
    assert not (out / "queued-elsewhere").exists()


def test_a_concurrent_sweeps_entries_written_meanwhile_survive(tmp_path):
    """write_manifest reads the file again, so entries another sweep added after this one started are kept."""
    out = tmp_path / "x"
    assert sweep_main(gaussian_argv(out)) == 0
    config = SweepConfig(models=("preresnet8",), p=(0.9, 1.0), data="synthetic:64:32", out=out, trainer=FAKE_TRAINER)
    plan = sweep.plan(config)
    other = json.loads((out / "sweep.json").read_text())
    other["runs"].append(dict(other["runs"][0], name="added-meanwhile"))
    (out / "added-meanwhile").mkdir()
    (out / "sweep.json").write_text(json.dumps(other))
    sweep_run.write_manifest(plan, {})
    listed = [entry["name"] for entry in manifest(out)["runs"]]
    assert "added-meanwhile" in listed and len(listed) == 4


@pytest.mark.parametrize("content", ["{not json", "\xff\xfe", "[1, 2]", '{"runs": []}',
                                     '{"tool": "nets.sweep", "runs": [{"name": "../escape"}]}',
                                     '{"tool": "nets.sweep", "runs": {"name": "a"}}'],
                         ids=["truncated", "not-utf8", "a-list", "foreign", "bad-name", "runs-not-a-list"])
def test_a_corrupt_or_foreign_manifest_is_replaced_with_one_warning(tmp_path, capsys, content):
    out = tmp_path / "x"
    out.mkdir()
    (out / "sweep.json").write_bytes(content.encode("latin-1"))
    assert sweep_main(gaussian_argv(out)) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(err) == 1 and "sweep.json" in err[0] and "fresh" in err[0]
    written = manifest(out)
    assert written["tool"] == "nets.sweep" and [e["name"] for e in written["runs"]] == names(gaussian_argv(out), out)
    assert written["runs"][0]["status_after"] == "finished"
    assert sweep_main(bernoulli_argv(out)) == 0                          # the fresh manifest merges as usual
    assert len(manifest(out)["runs"]) == 3 and "warning" not in capsys.readouterr().err


def test_a_rewrite_between_anothers_read_and_write_is_not_lost(tmp_path, monkeypatch):
    """Two sweeps on one out rewriting the manifest at once: B writes its entry while A is between reading the
    manifest and replacing it. A must not write back what it read before B's write (manifest_lock)."""
    import os
    import subprocess
    import time

    out = tmp_path / "x"
    assert sweep_main(gaussian_argv(out)) == 0
    plan_a = sweep.plan(SweepConfig(models=("preresnet8",), p=(0.9, 1.0), data="synthetic:64:32", out=out,
                                    trainer=FAKE_TRAINER))
    config_b = dict(models=("preresnet8",), noise=("gaussian",), nu=(0.7,), data="synthetic:64:32")
    (name_b,) = [run.name for run in sweep.expand(SweepConfig(out=out, trainer=FAKE_TRAINER, **config_b))]
    for name in [name_b] + [run.name for run in plan_a.runs]:
        (out / name).mkdir()
    ready = tmp_path / "b-ready"
    script = (f"import pathlib, sys\nfrom nets import sweep, sweep_run\n"
              f"plan = sweep.plan(sweep.SweepConfig(out=pathlib.Path({str(out)!r}), trainer={FAKE_TRAINER!r}, "
              f"**{config_b!r}))\npathlib.Path({str(ready)!r}).touch()\nsweep_run.write_manifest(plan, {{}})\n")
    started = []
    real_code_version = sweep_run.code_version

    def code_version():  # A has read the manifest; B rewrites it now (or waits for A, holding the lock)
        if not started:
            started.append(subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[1],
                                            env=dict(os.environ, OMP_NUM_THREADS="1")))
            deadline = time.monotonic() + 120
            while not ready.exists() and started[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            try:
                started[0].wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass  # blocked on the lock A holds
        return real_code_version()

    monkeypatch.setattr(sweep_run, "code_version", code_version)
    sweep_run.write_manifest(plan_a, {})
    assert started[0].wait(timeout=120) == 0
    listed = [entry["name"] for entry in manifest(out)["runs"]]
    assert name_b in listed
    assert sorted(listed) == sorted(names(gaussian_argv(out), out) + [run.name for run in plan_a.runs] + [name_b])


def listed_by_manifest(out: Path) -> dict[str, list[str]]:
    """Manifest file name -> the run names it lists."""
    return {path.name: [entry["name"] for entry in json.loads(path.read_text())["runs"]]
            for path in sorted(out.glob("sweep*.json"))}


def test_each_run_is_listed_by_one_manifest_after_resharding(tmp_path):
    """Shards of 2, then shards of 3, then the whole sweep unsharded: every run is listed once, by the
    manifest of the last sweep that planned it; manifests left listing nothing are removed."""
    out = tmp_path / "x"
    argv = [*bernoulli_argv(out), "--seeds", "3"]
    every = names(argv, out)
    assert len(every) == 6
    for spec in ("0/2", "1/2"):
        assert sweep_main([*argv, "--shard", spec]) == 0
    assert sorted(listed_by_manifest(out)) == ["sweep-shard0of2.json", "sweep-shard1of2.json"]
    assert sweep_main([*argv, "--shard", "0/3"]) == 0
    listed = listed_by_manifest(out)
    assert len(listed["sweep-shard0of3.json"]) == 2
    assert sorted(sum(listed.values(), [])) == sorted(every)             # moved, not copied
    for spec in ("1/3", "2/3"):
        assert sweep_main([*argv, "--shard", spec]) == 0
    listed = listed_by_manifest(out)
    assert sorted(listed) == ["sweep-shard0of3.json", "sweep-shard1of3.json", "sweep-shard2of3.json"]
    assert sorted(sum(listed.values(), [])) == sorted(every)
    assert sweep_main(argv) == 0
    assert listed_by_manifest(out) == {"sweep.json": listed_by_manifest(out)["sweep.json"]}
    assert sorted(listed_by_manifest(out)["sweep.json"]) == sorted(every)


def test_unreadable_and_unrelated_json_files_are_left_alone(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "sweep-shard1of2.json").write_text("{not json")
    (out / "sweep-notes.json").write_text(json.dumps({"tool": "nets.sweep", "runs": []}))
    assert sweep_main(bernoulli_argv(out)) == 0
    assert (out / "sweep-shard1of2.json").read_text() == "{not json"
    assert json.loads((out / "sweep-notes.json").read_text()) == {"tool": "nets.sweep", "runs": []}
    assert len(manifest(out)["runs"]) == 2
