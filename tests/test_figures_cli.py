"""The `python -m figures` command: listing, unknown names, and bad settings as one-line errors."""
import sys
import types

import pytest

from figures import cli, registry


def test_list_names_every_registered_figure(capsys):
    assert cli.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == registry.figure_names()
    assert len(lines) >= 12


def test_unknown_figure_is_exit_2_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["no_such_figure"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown figure 'no_such_figure'" in err


def _fake_figure(monkeypatch, make):
    module = types.ModuleType("figures._fake_for_test")
    module.SUMMARY = "fake"
    module.make = make
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(registry.FIGURES, "fake", module.__name__)


def test_value_error_from_a_figure_is_exit_2_one_line(monkeypatch, capsys, tmp_path):
    def make(out_dir, fast, results):
        raise ValueError("RESNET_SDE_WORKERS must be a positive integer, got 'x'")

    _fake_figure(monkeypatch, make)
    with pytest.raises(SystemExit) as stop:
        cli.main(["fake", "--out-dir", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RESNET_SDE_WORKERS" in err
    assert list(tmp_path.iterdir()) == []


def test_missing_results_is_reported_not_fatal(monkeypatch, capsys, tmp_path):
    from figures.output import MissingResults

    def make(out_dir, fast, results):
        raise MissingResults("no runs under results/x", "python -m nets.sweep --models preresnet20 ...")

    _fake_figure(monkeypatch, make)
    assert cli.main(["fake", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped, no results" in out and "python -m nets.sweep" in out
