"""`python -m landscape.plot`: the happy path writes the figure and the HDF5 it promises; every bad
input is one line on stderr, exit status 2, and no file."""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from landscape import compute, get_dataset, landscape_statistics
from landscape.plot import main
from landscape.report import PlotConfig, display_available

FAST = ["--n-f", "201", "--no-show"]


def test_default_command_writes_default_png(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--eps", "0.5", "--loss", "l2", "--no-show"]) == 0
    out = capsys.readouterr().out
    assert "J_0: 3 local minima" in out and "J_eps, eps=0.5: 1 local minimum" in out
    with Image.open(tmp_path / "landscape_l2_eps0.5.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landscape_l2_eps0.5.png"]


def test_h5_contents(tmp_path, capsys):
    png, h5 = tmp_path / "a.png", tmp_path / "a.h5"
    args = ["--eps", "0.5", "--eps", "0.25", "--loss", "l1", "--dataset", "double-well", "--f-min", "-10",
            "--f-max", "5", "--sgd", "--steps", "20", "--batch-size", "2", "--out", str(png), "--h5", str(h5), *FAST]
    assert main(args) == 0
    data = get_dataset("double-well")
    with h5py.File(h5, "r") as f:
        grid = f["f"][()]
        np.testing.assert_allclose(grid, np.linspace(-10, 5, 201))
        np.testing.assert_allclose(f["J0"][()], compute(grid, data.y, data.label, 0.0, "l1"), atol=1e-14)
        np.testing.assert_allclose(f["eps"][()], [0.5, 0.25])
        assert f["Jeps"].shape == (2, 201)
        np.testing.assert_allclose(f["Jeps"][1], compute(grid, data.y, data.label, 0.25, "l1"), atol=1e-14)
        attrs = dict(f.attrs)
        for key in ("loss", "dataset", "solver", "objective", "f_min", "f_max", "n_f", "sgd", "batch_size", "steps", "lr", "out", "h5", "seed"):
            assert key in attrs, key
        assert attrs["loss"] == "l1" and attrs["batch_size"] == 2 and attrs["steps"] == 20
        stats = landscape_statistics(grid, f["J0"][()])
        assert f["statistics/J0"].attrs["n_minima"] == stats.n_minima == 2
        np.testing.assert_allclose(f["statistics/J0/minima_f"][()], [m.f for m in stats.minima])
        assert f["sgd/eps_0.5/f"].shape == (21,)
        np.testing.assert_allclose(f["sgd/J0/J"][()], compute(f["sgd/J0/f"][()], data.y, data.label, 0.0, "l1"), atol=1e-14)
    assert png.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_mc_solver_and_user_csv(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("y,label\n-2,0\n-0.5,1\n1,0\n3,1\n")
    h5 = tmp_path / "m.h5"
    assert main(["--dataset", str(csv), "--solver", "mc", "--n-samples", "500", "--objective", "expected",
                 "--out", str(tmp_path / "m.png"), "--h5", str(h5), *FAST]) == 0
    with h5py.File(h5, "r") as f:
        assert f["Jeps_stderr"].shape == (1, 201) and np.all(f["Jeps_stderr"][()] > 0)
        np.testing.assert_array_equal(f["y"][()], [-2, -0.5, 1, 3])
        grid, sampled, stderr = f["f"][()], f["Jeps"][0], f["Jeps_stderr"][0]
        labels = np.array([0, 1, 0, 1])
        # the Monte Carlo landscape against the exact expected objective (checked against quadrature elsewhere)
        exact = compute(grid, f["y"][()], labels, 0.5, "l2", objective="expected")
        assert np.all(np.abs(sampled - exact) < 5 * stderr + 1e-12)
        np.testing.assert_allclose(f["J0"][()], compute(grid, f["y"][()], labels, 0.0, "l2"), rtol=0, atol=1e-12)


BAD = [
    (["--eps", "-1"], "eps must be >= 0"),
    (["--eps", "nan"], "must be finite"),
    (["--eps", "inf"], "must be finite"),
    (["--eps", "abc"], "not a number"),
    (["--loss", "l3"], "invalid choice"),
    (["--solver", "exact"], "invalid choice"),
    (["--objective", "mean"], "invalid choice"),
    (["--dataset", "moons"], "unknown dataset 'moons'"),
    (["--dataset", "missing.csv"], "does not exist"),
    (["--dataset", "BAD_CSV"], "header 'y,label'"),
    (["--dataset", "BAD_LABELS"], "label must be 0 or 1, found 3"),
    (["--dataset", "JUNK_NPZ"], "not an .npz archive"),
    (["--p", "0.8", "--blocks", "1", "--p", "0.9", "--blocks", "4"], "argument --blocks: given twice (1 and 4)"),
    (["--f-min", "3", "--f-max", "1"], "empty f-range"),
    (["--f-min", "1", "--f-max", "1"], "empty f-range"),
    (["--f-min", "20"], "empty f-range"),
    (["--n-f", "2"], "must be >= 3"),
    (["--n-f", "100000000"], "n_f must be between 3 and 1000000"),
    (["--out", "x.txt"], "must end in one of .png, .pdf, .svg"),
    (["--out", "no/such/dir/x.png"], "does not exist"),
    (["--h5", "x.txt"], "must end in one of .h5, .hdf5"),
    (["--sgd", "--batch-size", "100"], "batch_size must be between 1 and the number of samples"),
    (["--sgd", "--lr", "0"], "must be > 0"),
    (["--sgd", "--lr-end", "-1"], "must be > 0"),
    (["--steps", "0"], "must be >= 1"),
    (["--frobnicate"], "unrecognized arguments"),
    (["--p", "0.9"], "together with the survival probability"),
    (["--p", "0", "--blocks", "3"], "p must be in (0, 1]"),
    (["--blocks", "3"], "only used with the survival probability"),
    (["--solver", "network"], "solver 'network' needs the number of dropout blocks K"),
    (["--jump", "0.9"], "jump: the masks' jump a goes with solver 'network' only"),
    (["--jump", "0", "--solver", "network", "--blocks", "3"], "argument --jump: jump must be in (0, 1] (1: dropout)"),
    (["--jump", "0.5", "--solver", "network", "--blocks", "3"],
     "jump 0.5 at eps = 0.5 with K = 3: jump must be a number in [sqrt(K eps^2), 1] = [0.866025, 1]; got 0.5"),
    (["--jump", "0.9", "--solver", "network", "--blocks", "5"],
     "jump 0.9 at eps = 0.5 with K = 5: eps must be at most 1/sqrt(K) = 0.447214 for K = 5 blocks"),
    (["--mask", "uniform"], "mask: the network's masks go with solver 'network' only"),
    (["--mask", "gaussian", "--solver", "network", "--blocks", "3"], "argument --mask: invalid choice"),
    (["--mask", "uniform", "--solver", "network", "--blocks", "3"],
     "mask 'uniform' at eps = 0.5 with K = 3: its half-width beta = eps sqrt(3K) = 1.5 must be < 1 (a mask that "
     "keeps its sign), so eps < 0.3333"),
    (["--mask", "uniform", "--eps", "0.25", "--solver", "network", "--blocks", "3", "--f-min", "-2000", "--f-max",
      "2000"], "mask 'uniform' at eps = 0.25 with K = 3: the quadrature of its law (kolmogorov.uniform_sum) reaches "
               "|f| beta / K of about 150, |f| <= 600; got |f| up to 2000 (narrow the f range)"),
    (["--mask", "uniform", "--jump", "0.9", "--solver", "network", "--blocks", "1"],
     "jump: the masks' jump a goes with mask 'dropout' only"),
    (["--mask", "stochastic_depth", "--solver", "network", "--blocks", "17"],
     "mask 'stochastic_depth' with K = 17: its exact law has 2^K atoms, so K must be <= 16"),
    (["--mask", "stochastic_depth", "--jump", "0.9", "--solver", "network", "--blocks", "2"],
     "jump: the masks' jump a goes with mask 'dropout' only (stochastic_depth masks have no jump size)"),
    (["--p", "0.9", "--blocks", "0"], "must be >= 1"),
    (["--eps", "1e-300", "--mask", "stochastic_depth", "--solver", "network", "--blocks", "3"],
     "eps must be 0 or at least 4.97e-09 for stochastic depth with n_blocks=3"),  # was a ZeroDivisionError
    (["--eps", "1e-300", "--jump", "0.5", "--solver", "network", "--blocks", "3"],
     "eps must be at least 8.61e-155 for K = 3 blocks"),  # was "variance must be ...", naming neither option
    (["--dataset", "TRUNC_NPZ"], "trunc.npz: not a readable .npz file"),
    (["--dataset", "BIN_CSV"], "bin.csv: not a UTF-8 text .csv file"),
    (["--dataset", "CPLX_NPZ"], "cplx.npz: y must be real"),
    (["--dataset", "DIR_CSV"], "dataset file 'dir.csv' is a directory"),
    (["--dataset", "BIG_NPZ"], "dataset big.npz (its samples set the default f-range; give f_min/f_max): the f-range "
                               "[-1.7e+308, 1.7e+308] must lie within [-1e+12, 1e+12]"),
    (["--f-min=-1e308", "--f-max=1e308"], "argument --f-min: must be a finite number in [-1e+12, 1e+12]; got '-1e308'"),
    (["--f-min=-1", "--f-max=1e13", "--solver", "fd"], "argument --f-max: must be a finite number in [-1e+12, 1e+12]"),
    (["--sgd", "--f0", "1e300"], "argument --f0: must be a finite number in [-1e+12, 1e+12]; got '1e300'"),
    (["--out", "AFILE/x.png"], "out 'afile/x.png': 'afile' is not a directory"),
    (["--h5", "AFILE/x.h5"], "h5 'afile/x.h5': 'afile' is not a directory"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_no_file(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("x,label\n1,0\n2,1\n")
    (tmp_path / "labels.csv").write_text("y,label\n1,0\n2,3\n")
    (tmp_path / "junk.npz").write_text("junk\n")
    np.savez(tmp_path / "ok.npz", y=np.array([-1.0, 2.0]), label=np.array([0, 1]))
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:100])
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    np.savez(tmp_path / "cplx.npz", y=np.array([1 + 1j, 2]), label=np.array([0, 1]))
    np.savez(tmp_path / "big.npz", y=np.array([-1.7e308, 1.7e308]), label=np.array([0, 1]))
    (tmp_path / "dir.csv").mkdir()
    (tmp_path / "afile").write_text("")
    names = {"BAD_CSV": "bad.csv", "BAD_LABELS": "labels.csv", "JUNK_NPZ": "junk.npz", "TRUNC_NPZ": "trunc.npz",
             "BIN_CSV": "bin.csv", "CPLX_NPZ": "cplx.npz", "DIR_CSV": "dir.csv", "BIG_NPZ": "big.npz",
             "AFILE/x.png": "afile/x.png", "AFILE/x.h5": "afile/x.h5"}
    args = [names.get(a, a) for a in args]
    before = set(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--h5", "out.h5", "--no-show"] if "--h5" not in args else [*args, "--no-show"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m landscape.plot: error: ")
    assert message in err
    assert set(tmp_path.iterdir()) == before


def test_running_out_of_memory_is_one_line_naming_the_sizes(monkeypatch, capsys):
    # e.g. --solver network --blocks 1000000000000 asked numpy for 7 TiB
    import landscape.report

    def too_big(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(landscape.report, "run_plot", too_big)
    with pytest.raises(SystemExit) as exit_info:
        main(["--solver", "network", "--blocks", "1000000000000", "--no-show"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("python -m landscape.plot: error: not enough memory") and "--blocks" in err


def test_subprocess_exit_status_and_single_line(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "landscape.plot", "--eps", "-0.5", "--loss", "l2"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "eps must be >= 0" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_huge_f_range_is_one_line_without_warnings(tmp_path):
    # the user's ends were finite, but np.linspace overflowed: five RuntimeWarning lines, then
    # "f must be finite"; with --solver fd the int64 step count overflowed ("Maximum allowed size exceeded")
    env = dict(os.environ, MPLBACKEND="Agg")
    for extra in ([], ["--solver", "fd"]):
        proc = subprocess.run([sys.executable, "-W", "default", "-m", "landscape.plot", "--n-f", "11", "--no-show",
                               "--out", "o.png", "--f-min=-1e300", "--f-max=1e300", *extra],
                              cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2
        assert proc.stderr == ("python -m landscape.plot: error: argument --f-min: must be a finite number in "
                               "[-1e+12, 1e+12]; got '-1e300'\n")
    assert list(tmp_path.iterdir()) == []


def test_library_refuses_f_range_beyond_limit():
    from landscape.report import F_LIMIT

    with pytest.raises(ValueError, match=r"^f_max must be a finite number in \[-1e\+12, 1e\+12\], got 1e\+300$"):
        PlotConfig(f_min=0.0, f_max=1e300)
    with pytest.raises(ValueError, match=r"^f0 must be a finite number in \[-1e\+12, 1e\+12\], got -1e\+300$"):
        PlotConfig(f0=-1e300)
    config = PlotConfig(f_min=-F_LIMIT, f_max=F_LIMIT, n_f=11, f0=F_LIMIT)  # the bound itself is allowed
    assert config.f_max == F_LIMIT and config.f0 == F_LIMIT


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_out_in_a_directory_that_takes_no_files(tmp_path, capsys):
    # /proc exists and is a directory, but no file can be created in it (root ignores permission bits,
    # so this is the portable way to get an unwritable directory); the error used to name the temporary file
    for option, target in (("--out", "/proc/x.png"), ("--h5", "/proc/x.h5")):
        with pytest.raises(SystemExit) as info:
            main(["--n-f", "11", "--no-show", "--out", str(tmp_path / "o.png"), option, target])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err == (f"python -m landscape.plot: error: {option.lstrip('-')} '{target}': cannot create files in "
                       "'/proc' (No such file or directory)\n")
    assert list(tmp_path.iterdir()) == []


def test_compare_refuses_bad_data_and_targets_in_one_line(tmp_path, monkeypatch, capsys):
    from landscape.compare import main as compare_main

    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "ok.npz", y=np.array([-1.0, 2.0]), label=np.array([0, 1]))
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:100])
    np.savez(tmp_path / "cplx.npz", y=np.array([1.0, 2.0]), label=np.array([0, 1 + 1j]))
    np.savez(tmp_path / "big.npz", y=np.array([-1e300, 1e300]), label=np.array([0, 1]))
    (tmp_path / "afile").write_text("")
    (tmp_path / "x.png").mkdir()
    cases = [
        (["--dataset", "trunc.npz"], "trunc.npz: not a readable .npz file (File is not a zip file)"),
        (["--dataset", "cplx.npz"], "cplx.npz: label must be real, got complex values (complex128)"),
        (["--dataset", "big.npz"], "dataset big.npz (its samples set the f-range): the f-range [-1e+300, 1e+300] "
                                   "must lie within [-1e+12, 1e+12]"),
        (["--out", "afile/x.png"], "--out 'afile/x.png': 'afile' is not a directory"),
        (["--out", "afile/sub/x.png"], f"cannot write {tmp_path / 'afile/sub/x.png'}: {tmp_path / 'afile'} is not a directory"),
        (["--out", "x.png"], "--out 'x.png' is a directory"),
    ]
    if os.path.isdir("/proc/self"):
        cases.append((["--out", "/proc/x.png"], "--out '/proc/x.png': cannot create files in '/proc'"))
    before = sorted(tmp_path.iterdir())
    for args, message in cases:
        with pytest.raises(SystemExit) as info:
            compare_main(["--out", "c.png", *args] if "--out" not in args else args)
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.count("\n") == 1 and message in err, (args, err)
    assert sorted(tmp_path.iterdir()) == before


def test_no_window_without_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("MPLBACKEND", "")
    if sys.platform.startswith("linux"):
        assert not display_available()
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert not display_available()


def test_config_defaults_and_names():
    assert PlotConfig().output_path() == Path("landscape_l2_eps0.5.png")
    assert PlotConfig(eps=(0.5, 0.25, 0.5), loss="ce").output_path() == Path("landscape_ce_eps0.5_0.25.png")
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        PlotConfig(eps=(-1.0,))


def test_compare_command(tmp_path, capsys):
    from landscape.compare import main as compare_main, objective_comparison

    c = objective_comparison(n_f=51)
    assert np.all(c["gap"] >= -1e-12)  # Jensen: E(sigma - h)^2 >= (E sigma - h)^2
    out = tmp_path / "c.png"
    assert compare_main(["--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
    with pytest.raises(SystemExit) as info:
        compare_main(["--out", str(tmp_path / "c.txt")])
    assert info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_survival_probability_gives_dropout_noise_level(tmp_path):
    # K dropout blocks with survival probability p: eps^2 = (1 - p) / (p K), main paper (3.2)-(3.4)
    h5 = tmp_path / "p.h5"
    assert main(["--p", "0.9", "--p", "0.5", "--blocks", "9", "--eps", "0.2", "--out", str(tmp_path / "p.png"),
                 "--h5", str(h5), *FAST]) == 0
    with h5py.File(h5, "r") as f:
        np.testing.assert_allclose(f["eps"][()], [0.2, np.sqrt(0.1 / 8.1), np.sqrt(0.5 / 4.5)], rtol=1e-14)
        np.testing.assert_allclose(f.attrs["survival_p"], [0.9, 0.5])
        assert f.attrs["blocks"] == 9


def test_show_path_uses_pyplot_when_a_display_exists(tmp_path, monkeypatch):
    # with a display the figure is made through pyplot and shown after saving; under the Agg backend
    # of the tests plt.show() returns at once, so this runs the code path without opening a window
    import matplotlib.pyplot as plt

    import landscape.report as report

    monkeypatch.setattr(report, "display_available", lambda: True)
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    out = tmp_path / "s.png"
    report.run_plot(PlotConfig(n_f=101, out=str(out)), show=True)
    assert out.is_file() and shown == [True]
    plt.close("all")


def _groups(h5, name):
    return {key: h5[name][key].attrs["eps"] for key in h5[name]}


def test_eps_equal_to_rounding_is_one_curve(tmp_path):
    # --p 0.8 --blocks 1 is eps = sqrt(0.2 / 0.8) = 0.49999999999999994: the eps = 0.5 already asked for.
    # Both used to get the group name eps_0.5 and h5py failed with "name already exists".
    h5 = tmp_path / "e.h5"
    assert main(["--eps", "0.5", "--p", "0.8", "--blocks", "1", "--sgd", "--steps", "3", "--out", str(tmp_path / "e.png"),
                 "--h5", str(h5), *FAST]) == 0
    with h5py.File(h5, "r") as f:
        assert f["eps"][()].tolist() == [0.5] and f["Jeps"].shape == (1, 201)
        assert _groups(f, "statistics") == {"J0": 0.0, "eps_0.5": 0.5}
        assert set(f["sgd"]) == {"J0", "eps_0.5"} and f["sgd/eps_0.5"].attrs["eps"] == 0.5
    # p alone: the group keeps the short name, its attribute the computed value
    h5p = tmp_path / "p.h5"
    assert main(["--p", "0.8", "--blocks", "1", "--out", str(tmp_path / "p.png"), "--h5", str(h5p), *FAST]) == 0
    with h5py.File(h5p, "r") as f:
        assert _groups(f, "statistics") == {"J0": 0.0, "eps_0.5": 0.49999999999999994}


def test_close_but_distinct_eps_get_distinct_groups(tmp_path):
    h5 = tmp_path / "d.h5"
    assert main(["--eps", "0.5", "--eps", "0.5000000001", "--eps", "0.25", "--sgd", "--steps", "3",
                 "--out", str(tmp_path / "d.png"), "--h5", str(h5), *FAST]) == 0
    with h5py.File(h5, "r") as f:
        assert f["eps"][()].tolist() == [0.5, 0.5000000001, 0.25] and f["Jeps"].shape == (3, 201)
        expected = {"J0": 0.0, "eps_0.5": 0.5, "eps_0.5000000001": 0.5000000001, "eps_0.25": 0.25}
        assert _groups(f, "statistics") == expected
        assert {key: f["sgd"][key].attrs["eps"] for key in f["sgd"]} == expected
        for key, eps in expected.items():  # each group holds the statistics of its own curve
            J = f["J0"][()] if eps == 0 else f["Jeps"][f["eps"][()].tolist().index(eps)]
            assert f[f"statistics/{key}"].attrs["global_J"] == landscape_statistics(f["f"][()], J).global_J


def test_unique_eps_and_curve_keys():
    from landscape.report import curve_keys, unique_eps

    assert unique_eps([0.5, 0.49999999999999994, 0.25, 0.5 + 1e-13, 0.5000000001, 0.0, 0.0]) == (0.5, 0.25, 0.5000000001, 0.0)
    assert curve_keys([0.0, 0.5, 0.25]) == ["J0", "eps_0.5", "eps_0.25"]
    assert curve_keys([0.0, 0.5, 0.5000000001, 1e-7, 1.0000001e-7]) == [
        "J0", "eps_0.5", "eps_0.5000000001", "eps_1e-07", "eps_1.0000001e-07"]
    values = [0.1 + k * 1e-12 for k in range(50)]
    assert len(set(curve_keys(values))) == 50


def test_negative_numbers_in_exponent_notation_are_values(capsys):
    # argparse (Python < 3.13) took '-1e3' for an option: '--f-min -1e3' failed with "expected one argument"
    from landscape.plot import build_parser

    args = build_parser().parse_args(["--f-min", "-1e3", "--f-max", "5", "--f0", "-2.5E2"])
    assert (args.f_min, args.f_max, args.f0) == (-1000.0, 5.0, -250.0)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--f-min", "-1e13"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --f-min: must be a finite number in [-1e+12, 1e+12]; got '-1e13'" in err
