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


def _tiny_figure():
    import matplotlib.pyplot as plt  # Agg: tests/conftest.py sets MPLBACKEND

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1, 2], [1, 0, 1])
    return plt, fig


def test_save_outputs_writes_png_pdf_h5_and_closes_the_figure(tmp_path):
    import h5py
    import numpy as np

    from figures.output import save_outputs

    plt, fig = _tiny_figure()
    values = np.array([1.5, 2.5, 3.5])
    written = save_outputs(fig, tmp_path, "tiny", {"curve": {"y": values, "seed": 3}}, attrs={"note": "hello"})
    assert written == [tmp_path / "tiny.png", tmp_path / "tiny.pdf", tmp_path / "tiny.h5"]
    assert all(path.is_file() and path.stat().st_size > 0 for path in written)
    with h5py.File(written[2]) as h5:
        np.testing.assert_array_equal(h5["curve/y"][()], values)
        assert h5["curve"].attrs["seed"] == 3
        assert h5.attrs["note"] == "hello"
    assert not plt.fignum_exists(fig.number)


def test_save_outputs_closes_the_figure_when_saving_fails(tmp_path, monkeypatch):
    from figures import output

    def broken(*args, **kwargs):
        raise OSError("disk full")

    for failing in ("save_data", "save_figure"):
        plt, fig = _tiny_figure()
        with monkeypatch.context() as patch:
            patch.setattr(output, failing, broken)
            with pytest.raises(OSError, match="disk full"):
                output.save_outputs(fig, tmp_path, "tiny", {"curve": {"y": [[1.0]]}})
        assert not plt.fignum_exists(fig.number), failing
