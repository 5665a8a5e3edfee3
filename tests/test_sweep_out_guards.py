"""nets.sweep: an --out the sweep cannot write into, seeds beyond the trainer's range and too many runs are
refused up front (one line, exit 2, --dry-run included), never a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from nets import sweep, sweep_run
from nets.sweep import SweepConfig
from nets.sweep_cli import main as sweep_main
from cli_checks import assert_one_line_exit_2

BASE = ["--models", "preresnet8", "--data", "synthetic:64:32", "--epochs", "1", "--no-progress", "--device", "cpu"]


def _layout(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    (tmp_path / "sw1").mkdir()
    (tmp_path / "sw1" / "logs").write_text("")
    (tmp_path / "sw5" / "sweep.json").mkdir(parents=True)


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("where", ["afile", "afile/sub", "/proc/sw", "sw1", "sw5"])
def test_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch, where, dry_run):
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    err = assert_one_line_exit_2(capsys, sweep_main, [*BASE, "--out", where, *(["--dry-run"] if dry_run else [])])
    assert f"error: --out '{where}'" in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = assert_one_line_exit_2(capsys, sweep_main, [*BASE, "--out", "", "--dry-run"])
    assert "--out" in err and "non-empty" in err
    with pytest.raises(ValueError, match="^out must be a non-empty path"):
        sweep_run.check_out("")


def test_execute_checks_out_too(tmp_path):
    (tmp_path / "afile").write_text("")
    config = SweepConfig(models=("preresnet8",), data="synthetic:64:32", out=tmp_path / "afile", epochs=(1,))
    with pytest.raises(ValueError, match="exists and is not a directory"):
        sweep_run.execute(sweep_run.plan(config), progress=False)


def test_seeds_beyond_the_trainers_range(tmp_path, capsys):
    err = assert_one_line_exit_2(capsys, sweep_main, [*BASE, "--out", str(tmp_path / "x"), "--dry-run", "--seeds", "2",
                                   "--seed-start", "4294967295"])
    assert "seeds" in err and "4294967296" in err and "2**32 - 1" in err
    one = SweepConfig(models=("preresnet8",), data="synthetic", out=tmp_path, seeds=1, seed_start=2**32 - 1)
    assert [run.seed for run in sweep.expand(one)] == [2**32 - 1]


def test_too_many_runs_refused_before_expanding(tmp_path):
    big = SweepConfig(models=("preresnet8",), data="synthetic", out=tmp_path, p=(0.5, 0.9), seeds=10**8)
    assert sweep.run_count(big) == 2 * 10**8
    with pytest.raises(ValueError, match=r"^seeds: the sweep would hold 200000000 runs .*at most 100000 runs"):
        sweep.validate(big)
    ok = SweepConfig(models=("preresnet8",), data="synthetic", out=tmp_path, p=(0.5, 0.9), seeds=3,
                     h=(None, 0.5), epochs=(1, 2))
    assert sweep.run_count(ok) == len(sweep.expand(ok)) == 24


def test_dry_run_over_an_existing_read_only_out_writes_and_probes_nothing(tmp_path, capsys, monkeypatch):
    import nets.trainer

    out = tmp_path / "ro"
    out.mkdir()

    def read_only(path, *args, **kwargs):  # what the probe says of a read-only directory (root ignores permissions)
        raise ValueError(f"{path!r}: cannot create files in {path!r} (Read-only file system)")

    monkeypatch.setattr(nets.trainer, "check_writable", read_only)
    assert sweep_main([*BASE, "--p", "0.9", "--out", str(out), "--dry-run"]) == 0
    assert "0 finished, 0 partial (resumed), 1 pending" in capsys.readouterr().err
    assert list(out.iterdir()) == []
