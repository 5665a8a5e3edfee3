"""landscape.fd: time steps chosen from the drift (Courant number <= fd.COURANT), bounded work, CLI."""
import numpy as np
import pytest
from scipy.special import expit

import landscape.fd as fd
from landscape import compute
from landscape.datasets import builtin_dataset
from landscape.plot import main

# The reviewer's 4-point data set: the sigmoid's transition sits at f ~ +-37, where the old fixed
# 200 steps gave Courant 3.7 and the Crank-Nicolson solve hit a zero pivot near |f| = 40.
Y4 = np.array([-37.0, -5.0, 5.0, 37.0])
H4 = np.array([0.0, 1.0, 0.0, 1.0])
F_WIDE = np.array([-41.0, -40.0, -38.2, -37.0, -20.0, -5.0, 0.0, 5.0, 15.0, 37.0, 38.2, 40.0, 41.0])


def test_steps_follow_the_drift():
    # n = 200 k, least k >= 1 with |f| / (200 k) / 0.05 <= 1.5: |f| <= 15 keeps 200 (its old numbers)
    f = np.array([0.0, -15.0, 15.0, 15.01, 30.0, -30.01, 40.0, -50.0, 1e3])
    assert fd.fd_steps(f).tolist() == [200, 200, 200, 400, 400, 600, 600, 800, 13400]
    courant = np.abs(f) / fd.fd_steps(f) / fd.DX
    assert np.all(courant <= fd.COURANT + 1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.5])
@pytest.mark.parametrize("loss, objective", [("l1", "ensemble"), ("l2", "ensemble"), ("l2", "expected"), ("ce", "expected")])
def test_fd_matches_closed_where_the_fixed_steps_failed(eps, loss, objective):
    # Tolerance: worst |J_fd - J_closed| measured on these data over f in [-50, 50] (step 1, and +-38.2)
    # is 1.3e-5 (l2, eps = 0, f = -38; l1 8.9e-6); eps = 0.5: 2e-9. It used to raise (ZeroDivisionError).
    got = compute(F_WIDE, Y4, H4, eps, loss, "fd", objective)
    exact = compute(F_WIDE, Y4, H4, eps, loss, "closed", objective)
    np.testing.assert_allclose(got, exact, rtol=0, atol=3e-5)


def test_absurd_f_range_is_refused_quickly():
    with pytest.raises(ValueError, match=r"^f_min/f_max: the f range \[-100000, 100000\] is too wide for the fd solver"):
        fd.fd_terminal_expectations(np.array([-1e5, 0.0, 1e5]), Y4, 0.0, expit)


def _read_h5(path):
    import h5py

    with h5py.File(path, "r") as h5:
        return {key: h5[key][()] for key in ("f", "J0", "Jeps", "eps", "y", "label")}


def test_cli_four_point_csv_and_the_f_range_near_40(tmp_path, capsys):
    # The landscapes the CLI writes (fd solver) against the closed form, at the tolerance of
    # test_fd_matches_closed_where_the_fixed_steps_failed (measured worst 1.3e-5 at eps = 0).
    csv = tmp_path / "four.csv"
    csv.write_text("y,label\n-37,0\n-5,1\n5,0\n37,1\n")
    assert main(["--eps", "0.5", "--loss", "l2", "--dataset", str(csv), "--solver", "fd", "--n-f", "41",
                 "--no-show", "--out", str(tmp_path / "a.png"), "--h5", str(tmp_path / "a.h5")]) == 0
    got = _read_h5(tmp_path / "a.h5")
    np.testing.assert_array_equal(got["y"], Y4)
    np.testing.assert_array_equal(got["label"], H4)
    assert got["f"].size == 41 and np.all(np.diff(got["f"]) > 0) and got["eps"].tolist() == [0.5]
    np.testing.assert_allclose(got["Jeps"][0], compute(got["f"], Y4, H4, 0.5, "l2", "closed"), rtol=0, atol=3e-5)
    np.testing.assert_allclose(got["J0"], compute(got["f"], Y4, H4, 0.0, "l2", "closed"), rtol=0, atol=3e-5)
    # the default (rugged) data set and eps, on the f range where the fixed 200 steps had a zero pivot
    assert main(["--f-min", "-41", "--f-max", "-39", "--n-f", "3", "--solver", "fd", "--no-show",
                 "--out", str(tmp_path / "b.png"), "--h5", str(tmp_path / "b.h5")]) == 0
    got = _read_h5(tmp_path / "b.h5")
    rugged = builtin_dataset("rugged")
    np.testing.assert_array_equal(got["y"], rugged.y)
    np.testing.assert_array_equal(got["label"], rugged.label)
    np.testing.assert_array_equal(got["f"], [-41.0, -40.0, -39.0])
    assert got["eps"].tolist() == [0.5]
    np.testing.assert_allclose(got["Jeps"][0], compute(got["f"], rugged.y, rugged.label, 0.5, "l2", "closed"),
                               rtol=0, atol=3e-5)
    capsys.readouterr()


def test_cli_refuses_an_absurd_f_range_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--f-min=-1e5", "--f-max=1e5", "--n-f", "3", "--solver", "fd", "--no-show", "--out", str(tmp_path / "c.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "f_min/f_max" in err and "too wide for the fd solver" in err
    assert not (tmp_path / "c.png").exists()


def test_cli_refuses_before_solving_any_curve(tmp_path, capsys, monkeypatch):
    """The work limit is checked at the largest eps before the first curve: a range that eps = 0 could solve
    but eps = 50 could not is refused without any fd solve having run."""
    def no_solve(*args, **kwargs):
        raise AssertionError("an fd solve ran before the range was refused")

    monkeypatch.setattr(fd, "_solve_once", no_solve)
    fd.check_fd_work(np.linspace(-300, 300, 3), np.array([-1.0, 1.0]), 0.0)  # fine at eps = 0
    with pytest.raises(SystemExit) as exit_info:
        main(["--eps", "0.5", "--eps", "50", "--f-min=-300", "--f-max=300", "--n-f", "3", "--solver", "fd",
              "--no-show", "--out", str(tmp_path / "d.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too wide for the fd solver at eps=50" in err
    assert not (tmp_path / "d.png").exists()


def test_work_check_on_huge_f_names_the_range_without_overflow():
    # |f| = 1e300 overflowed the int64 step count (numpy RuntimeWarnings, then "Maximum allowed size
    # exceeded" naming no argument); the check must refuse it in its own words
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^f_min/f_max: the f range \[-1e\+300, 1e\+300\] is too wide for the fd solver"):
            fd.check_fd_work(np.array([-1e300, 0.0, 1e300]), Y4, 0.5)
        with pytest.raises(ValueError, match=r"^f_min/f_max: .* too wide"):
            fd.check_fd_work(np.array([-1.7e308, 1.7e308]), Y4, 2.0)
    assert fd.check_fd_work(np.array([0.0, 15.0, 30.0]), Y4, 0.5).tolist() == [200, 200, 400]
