"""Landscape statistics on landscapes with known minima, curvatures and barriers."""
import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape import format_table, landscape_statistics
from landscape.statistics import statistics_arrays, write_statistics_group


def test_tilted_double_well_exact():
    # J = (f^2 - 1)^2 + 0.3 f: J' = 4f^3 - 4f + 0.3, J'' = 12 f^2 - 4; roots of J' are the two minima and the barrier top.
    f = np.linspace(-2.0, 2.0, 2001)
    J = (f**2 - 1) ** 2 + 0.3 * f
    roots = np.sort(np.roots([4.0, 0.0, -4.0, 0.3]).real)
    exact_J = (roots**2 - 1) ** 2 + 0.3 * roots
    stats = landscape_statistics(f, J)
    assert stats.n_minima == 2
    h = f[1] - f[0]
    for m, r, v in zip(stats.minima, roots[[0, 2]], exact_J[[0, 2]]):
        assert m.f == pytest.approx(r, abs=h**2 * 10)
        assert m.J == pytest.approx(v, abs=1e-8)
        assert m.curvature == pytest.approx(12 * r * r - 4, rel=1e-5)
    (barrier,) = stats.barriers
    assert barrier.f == pytest.approx(roots[1], abs=h**2 * 10)
    assert barrier.rise_left == pytest.approx(exact_J[1] - exact_J[0], abs=1e-8)
    assert barrier.rise_right == pytest.approx(exact_J[1] - exact_J[2], abs=1e-8)
    assert stats.largest_barrier == pytest.approx(exact_J[1] - max(exact_J[0], exact_J[2]), abs=1e-8)
    assert stats.global_f == pytest.approx(roots[0], abs=h**2 * 10)  # the tilt lowers the left well
    assert not stats.at_edge


def test_cosine_minima_and_barriers():
    # J = cos(f) on [0, 6 pi]: minima at pi, 3 pi, 5 pi (value -1, curvature 1), barriers of height 2.
    f = np.linspace(0.0, 6 * np.pi, 3001)
    stats = landscape_statistics(f, np.cos(f))
    assert [round(m.f / np.pi, 6) for m in stats.minima] == [1.0, 3.0, 5.0]
    for m in stats.minima:
        assert m.J == pytest.approx(-1.0, abs=1e-9)
        assert m.curvature == pytest.approx(1.0, rel=1e-5)
    assert [b.height for b in stats.barriers] == pytest.approx([2.0, 2.0], abs=1e-9)
    assert [b.f / np.pi for b in stats.barriers] == pytest.approx([2.0, 4.0], abs=1e-9)


def test_monotone_has_no_minimum_and_global_at_edge():
    f = np.linspace(0, 1, 50)
    stats = landscape_statistics(f, np.exp(-f))
    assert stats.n_minima == 0 and stats.barriers == () and stats.largest_barrier == 0.0
    assert stats.at_edge and stats.global_f == 1.0


def test_flat_bottom_and_rounding_wiggles():
    f = np.linspace(-3, 3, 61)
    J = np.maximum(np.abs(f) - 1.0, 0.0) ** 2  # flat run on [-1, 1]
    stats = landscape_statistics(f, J)
    assert stats.n_minima == 1 and stats.minima[0].f == pytest.approx(0.0, abs=1e-12)
    # a saturated plateau with rounding-level noise is not a landscape of many minima
    noisy = 1.0 + 1e-16 * np.random.default_rng(0).standard_normal(200)
    assert landscape_statistics(np.arange(200.0), noisy).n_minima == 0


def test_nonuniform_grid_curvature():
    f = np.sort(np.concatenate([np.linspace(-1, 1, 101), [0.0013, -0.0271]]))
    stats = landscape_statistics(f, 3.0 * (f - 0.1) ** 2)
    (m,) = stats.minima
    assert m.f == pytest.approx(0.1, abs=1e-12)
    assert m.curvature == pytest.approx(6.0, rel=1e-10)


@pytest.mark.parametrize(
    "f,J,match",
    [
        (np.arange(2.0), np.arange(2.0), "length >= 3"),
        (np.arange(5.0), np.arange(4.0), "same length"),
        (np.array([0.0, 2.0, 1.0]), np.zeros(3), "strictly increasing"),
        (np.arange(3.0), np.array([0.0, np.nan, 1.0]), "finite"),
    ],
)
def test_bad_input(f, J, match):
    with pytest.raises(ValueError, match=match):
        landscape_statistics(f, J)


def test_table_and_h5(tmp_path):
    f = np.linspace(0.0, 6 * np.pi, 601)
    stats = landscape_statistics(f, np.cos(f))
    table = format_table(stats, "cos")
    assert "3 local minima" in table and "largest barrier 2" in table
    with h5py.File(tmp_path / "s.h5", "w") as h5:
        write_statistics_group(h5.create_group("g"), stats)
    with h5py.File(tmp_path / "s.h5", "r") as h5:
        g = h5["g"]
        np.testing.assert_allclose(g["minima_f"][()], [m.f for m in stats.minima])
        np.testing.assert_allclose(g["barrier_height"][()], [2.0, 2.0], atol=1e-6)
        assert g.attrs["n_minima"] == 3
        assert set(statistics_arrays(stats)) - {"n_minima", "largest_barrier", "global_f", "global_J", "global_at_edge"} == set(g)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=2, max_size=6), st.integers(101, 801))
def test_invariants_on_random_trigonometric_landscapes(coefs, n):
    f = np.linspace(0.0, 2 * np.pi, n)
    J = sum(c * np.cos((k + 1) * f + 0.3 * k) for k, c in enumerate(coefs))
    stats = landscape_statistics(f, J)
    locations = [m.f for m in stats.minima]
    assert locations == sorted(locations)
    assert stats.global_J <= J.min() + 1e-12
    assert len(stats.barriers) == max(0, stats.n_minima - 1)
    for b in stats.barriers:
        left, right = stats.minima[b.left], stats.minima[b.right]
        assert left.f < b.f < right.f
        assert b.rise_left >= 0 and b.rise_right >= 0 and b.height == min(b.rise_left, b.rise_right)
    for m in stats.minima:
        i = m.index
        assert J[i] <= J[i - 1] and J[i] <= J[i + 1]
        assert m.curvature >= -1e-6 * (np.abs(coefs).sum() * 36)  # a minimum is not concave (up to rounding)
