"""The `python -m figures` command: listing, unknown names, and bad settings as one-line errors."""
import sys
import types
from pathlib import Path

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


def test_save_labelled_draws_the_data_and_writes_one_group_per_label(tmp_path):
    import h5py
    import numpy as np

    from figures.output import save_labelled

    drawn = []

    def draw(data, note):
        drawn.append((data, note))
        return _tiny_figure()[1]

    data = {"LM-ResNet": {"k": np.array([0.5, -0.5])}, "p_L 0.8/0.5": {"k": np.array([1.0])}}
    written = save_labelled(draw, data, "the note", tmp_path, "labelled")
    assert drawn == [(data, "the note")] and [p.name for p in written] == ["labelled.png", "labelled.pdf", "labelled.h5"]
    with h5py.File(written[2]) as h5:
        assert sorted(h5) == ["LM-ResNet", "p_L 0.8_0.5"]  # a '/' would have made a nested group "p_L 0.8" / "0.5"
        np.testing.assert_array_equal(h5["LM-ResNet/k"][()], [0.5, -0.5])
        assert h5.attrs["note"] == "the note"


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


def _recording_figure(monkeypatch):
    """The fake figure, registered alone (so `all` is just it); returns the list of its make() calls."""
    calls = []

    def make(out_dir, fast, results):
        calls.append((out_dir, results))
        return []

    _fake_figure(monkeypatch, make)
    monkeypatch.setattr(registry, "FIGURES", {"fake": registry.FIGURES["fake"]})
    return calls


def _exit_2_one_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("names", [["fake"], ["all"]])
def test_unwritable_out_dir_is_exit_2_before_any_figure_is_computed(monkeypatch, capsys, tmp_path, names):
    calls = _recording_figure(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad in (afile, afile / "sub", Path("/proc/resnet_sde_test")):
        err = _exit_2_one_line(capsys, [*names, "--out-dir", str(bad)])
        assert f"--out-dir '{bad}'" in err
    assert calls == []
    assert afile.read_text() == "x" and sorted(tmp_path.iterdir()) == [afile]


def test_out_dir_check_creates_nothing_and_accepts_a_new_directory(monkeypatch, capsys, tmp_path):
    from figures.output import check_output_dir

    calls = _recording_figure(monkeypatch)
    check_output_dir(tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []
    assert cli.main(["fake", "--out-dir", str(tmp_path / "new")]) == 0
    assert calls == [(tmp_path / "new", Path("results"))]
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="^--out-dir .* is not a directory$"):
        check_output_dir(tmp_path / "f")


def test_os_error_while_writing_a_figure_is_one_line_naming_figure_and_out_dir(monkeypatch, capsys, tmp_path):
    import errno

    def make(out_dir, fast, results):
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "fake.png"))

    _fake_figure(monkeypatch, make)
    err = _exit_2_one_line(capsys, ["fake", "--out-dir", str(tmp_path)])
    assert "fake: No space left on device" in err and f"--out-dir {tmp_path}" in err


def test_results_given_must_be_a_directory_the_default_may_be_absent(monkeypatch, capsys, tmp_path):
    calls = _recording_figure(monkeypatch)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert f"--results {afile} is not a directory" in _exit_2_one_line(
        capsys, ["fake", "--out-dir", str(tmp_path / "o"), "--results", str(afile)])
    assert f"--results {tmp_path / 'absent'}" in _exit_2_one_line(
        capsys, ["fake", "--out-dir", str(tmp_path / "o"), "--results", str(tmp_path / "absent")])
    assert calls == []
    monkeypatch.chdir(tmp_path)  # no results/ here: the default is a quiet skip, as before
    assert cli.main(["fake", "--out-dir", str(tmp_path / "o")]) == 0
    assert calls == [(tmp_path / "o", Path("results"))]


@pytest.mark.parametrize("argv", [["list", "fig3"], ["all", "fig3"], ["fig3", "list"], ["fig3", "all"]])
def test_list_and_all_must_be_given_alone(capsys, argv):
    err = _exit_2_one_line(capsys, argv)
    word = "list" if "list" in argv else "all"
    assert f"'{word}' must be given alone" in err and "unknown figure" not in err


def test_printed_measurement_commands_take_the_sweep_runs_not_its_logs(tmp_path, monkeypatch, capsys):
    """A figure whose numbers come from measuring a sweep's runs prints `nets.sweep ... --out DIR && python -m
    nets.MEASURE DIR/GLOB/ ...`; the sweep also writes DIR/logs/ (and DIR/sweep.json), which has no checkpoint and
    stops the measurement, so the glob must take the runs (the directories the sweep's --dry-run names) and not
    logs/."""
    import glob
    import shlex

    from nets.sweep_cli import main as sweep_main

    monkeypatch.chdir(tmp_path)
    checked = 0
    for name in registry.figure_names():
        command = getattr(registry.load(name), "command", None)
        if command is None:
            continue
        text = command(tmp_path / "results")
        if " && " not in text:
            continue
        sweep, measure = text.split(" && ", 1)
        if measure.startswith("python -m nets.sweep"):  # two sweeps (noise_kinds), nothing measured
            continue
        assert sweep_main(shlex.split(sweep)[3:] + ["--dry-run"]) == 0
        runs = [line.split(" --out ")[1].split()[0] for line in capsys.readouterr().out.splitlines()
                if " --out " in line]
        assert runs, f"{name}: the sweep names no runs"
        for run in runs:
            Path(run).mkdir(parents=True)
        out = Path(runs[0]).parent
        (out / "logs").mkdir()
        (out / "sweep.json").write_text("{}")
        patterns = [w for w in shlex.split(measure) if "*" in w]
        assert patterns, f"{name}: no run glob in {measure!r}"
        for pattern in patterns:
            assert sorted(glob.glob(pattern)) == sorted(f"{run}/" for run in runs), (name, pattern)
        for run in runs:
            Path(run).rmdir()
        (out / "logs").rmdir()
        (out / "sweep.json").unlink()
        checked += 1
    assert checked >= 5  # noise_curvature, noise_jumps, noise_own, noise_dose, branch_gradients
