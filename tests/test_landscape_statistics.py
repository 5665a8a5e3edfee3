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


def test_equal_minima_count_once_across_a_rounding_level_bump_and_twice_across_a_real_one():
    # exact ties arise on symmetric data (J(f) = J(-f)); both twins measured their prominence to the far walls
    f = np.arange(7.0)
    assert len(landscape_statistics(f, [2, 1.5, 1, 1 + 1e-15, 1, 1.5, 2]).minima) == 1
    twins = landscape_statistics(f, [2, 1.5, 1, 1.2, 1, 1.5, 2])
    assert len(twins.minima) == 2 and twins.barriers[0].rise_left > 0.15
    # a flat run still counts as one minimum, and an equal point past a real bump as another
    plateau = landscape_statistics(np.arange(9.0), [2, 1.5, 1, 1, 1, 1.5, 1, 1.7, 2])
    assert [m.index for m in plateau.minima] == [3, 6]


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


def test_global_minimum_is_the_lowest_sample_not_a_parabola_overshoot():
    # The well at f = 3..4 is not resolved: the parabola through (2, 1), (3, .0005), (4, .0006) dips to
    # -0.124 at f = 3.5. The lowest sample is the left edge (J = 0); the global minimum used to jump to
    # the parabola's vertex while at_edge still said "grid edge".
    f = np.arange(6.0)
    J = np.array([0.0, 0.5, 1.0, 0.0005, 0.0006, 1.0])
    stats = landscape_statistics(f, J)
    assert (stats.global_f, stats.global_J, stats.at_edge) == (0.0, 0.0, True)
    (m,) = stats.minima  # the minimum keeps its refined value (documented: it may lie below global_J)
    # the parabola through (2, 1), (3, .0005), (4, .0006) is .0005 + b t + a t^2, t = f - 3, with
    # b = (.0006 - 1)/2 = -.4997 and 2a = .0006 - .001 + 1 = .9996: vertex t = .4997/.9996,
    # J = .0005 - .4997^2/(2 .9996). Its curvature: the second differences at 3 (.9996) and 4
    # (1 - .0012 + .0005 = .9993) interpolated linearly to the vertex.
    t = 0.4997 / 0.9996
    assert m.index == 3
    assert m.f == pytest.approx(3 + t, rel=1e-12, abs=1e-12)
    assert m.J == pytest.approx(0.0005 - 0.4997**2 / (2 * 0.9996), rel=1e-12, abs=1e-12)
    assert m.curvature == pytest.approx(0.9996 + t * (0.9993 - 0.9996), rel=1e-12, abs=1e-12)
    assert "global minimum J = 0 at f = 0 (grid edge)" in format_table(stats, "t")


def test_global_minimum_ties_and_unkept_wiggles():
    # a flat bottom: the global minimum is the kept minimum in the middle of the run, not the run's first sample
    stats = landscape_statistics(np.arange(5.0), np.array([1.0, 0.0, 0.0, 0.0, 1.0]))
    assert (stats.global_f, stats.global_J, stats.at_edge) == (2.0, 0.0, False)
    # an edge sample tying with an interior minimum: the refined interior minimum (below both samples)
    stats = landscape_statistics(np.arange(4.0), np.array([0.0, 1.0, 0.0, 0.5]))
    (m,) = stats.minima
    assert (stats.global_f, stats.global_J, stats.at_edge) == (m.f, m.J, False) and 2 < m.f < 3 and m.J < 0
    # the lowest sample is interior but a rounding-level wiggle (no kept minimum): the grid point itself
    J = 1.0 + 1e-16 * np.random.default_rng(0).standard_normal(200)
    stats = landscape_statistics(np.arange(200.0), J)
    g = int(np.argmin(J))
    assert stats.n_minima == 0 and (stats.global_f, stats.global_J, stats.at_edge) == (float(g), J[g], g in (0, 199))
    # a resolved well next to a lower edge: the edge wins, the well is a local minimum above it
    f = np.linspace(0.0, 4.0, 401)
    stats = landscape_statistics(f, (f - 2.0) ** 2 * (f - 4.5) ** 2 / 10 - 0.5 * f + 0.3 * f**2 - 0.05 * f**3)
    (m,) = stats.minima
    assert (stats.global_f, stats.at_edge) == (4.0, True) and 1.9 < m.f < 2.0 and m.J > stats.global_J + 0.05


_values = st.one_of(st.integers(0, 3).map(float), st.floats(-1, 1, allow_subnormal=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(_values, min_size=3, max_size=40), st.floats(-5, 5), st.floats(1e-3, 10))
def test_global_minimum_consistent_on_random_arrays(values, start, step):
    J = np.array(values)
    f = start + step * np.arange(J.size)  # uniform grid
    stats = landscape_statistics(f, J)
    lowest = J.min()
    assert stats.global_J <= lowest
    # at_edge says exactly whether the reported point is an end of the grid
    assert stats.at_edge == (stats.global_f in (f[0], f[-1]))
    kept_at_lowest = [m for m in stats.minima if J[m.index] == lowest]
    if kept_at_lowest:
        # a kept minimum at the lowest sample: the global minimum is the lowest such one, refined only
        # within the two grid steps around its sample, and no lower than the parabola there allows
        # (uniform spacing: the vertex is at most max(rise left, rise right) / 8 below the sample)
        m = min(kept_at_lowest, key=lambda m: m.J)
        assert (stats.global_f, stats.global_J) == (m.f, m.J) and not stats.at_edge
        i = m.index
        assert f[i - 1] < stats.global_f < f[i + 1]
        overshoot = max(J[i - 1] - J[i], J[i + 1] - J[i]) / 8
        assert stats.global_J >= lowest - overshoot * (1 + 1e-9) - 1e-12
    else:
        # otherwise the lowest sample itself (the leftmost of equal ones), unrefined
        g = int(np.argmin(J))
        assert (stats.global_f, stats.global_J, stats.at_edge) == (f[g], lowest, g in (0, J.size - 1))
    assert stats.global_J >= lowest - (J.max() - lowest) / 8 * (1 + 1e-9) - 1e-12


def test_grid_too_fine_for_the_curvature_is_refused_not_nan():
    # f steps of 5e-301: the divided differences overflowed and the minimum came out at f = nan, J = nan,
    # J'' = inf; now a ValueError naming f. A spacing of 5e-151 still gives the exact parabola (J'' = 8e300).
    with pytest.raises(ValueError, match=r"^f: the grid spacing 5e-301 .* exceeds the float64 range"):
        landscape_statistics(np.linspace(0.0, 1e-300, 3), np.array([1.0, 0.0, 1.0]))
    stats = landscape_statistics(np.linspace(0.0, 1e-150, 3), np.array([1.0, 0.0, 1.0]))
    (m,) = stats.minima
    assert m.f == pytest.approx(5e-151, rel=1e-15) and m.J == 0.0 and m.curvature == pytest.approx(8e300, rel=1e-14)


@pytest.mark.parametrize("f, representable", [([0.0, 1.0, 2.0], 1e300), ([0.0, 1e-10, 2e-10], 1e280)])
def test_values_whose_differences_overflow_are_refused_naming_J(f, representable):
    # J near 1e308: even at unit spacing the differences overflow; the rescaling fallback recursed without end
    with pytest.raises(ValueError, match=r"^J: the differences of its values .* exceed the float64 range"):
        landscape_statistics(np.array(f), np.array([1e308, 0.0, 1e308]))
    # large, with J'' = 2 J / h^2 representable: the exact parabola
    stats = landscape_statistics(np.array(f), np.array([representable, 0.0, representable]))
    (m,) = stats.minima
    assert m.f == f[1] and m.J == 0.0 and m.curvature == pytest.approx(2 * representable / f[1] ** 2, rel=1e-12)


def test_floor_raises_a_refined_minimum_that_dips_below_it():
    # The parabola through (-1, 10), (0, 0), (1, 0.5) is 5.25 t^2 - 4.75 t: its vertex at t = 4.75/10.5
    # has J = -4.75^2/21 < 0, below any value of a loss. With floor = 0 the well counts as unresolved and the
    # minimum is its grid point (0, 0), with J'' the second difference there, 10 - 0 + 0.5 = 10.5.
    f = np.arange(-1.0, 4.0)
    J = np.array([10.0, 0.0, 0.5, 3.0, 5.0])
    (free,) = landscape_statistics(f, J).minima
    assert free.J == pytest.approx(-4.75**2 / 21, rel=1e-12)
    stats = landscape_statistics(f, J, floor=0.0)
    (m,) = stats.minima
    assert (m.f, m.J, m.index) == (0.0, 0.0, 1)
    assert m.curvature == pytest.approx(10.5, rel=1e-12)
    assert (stats.global_f, stats.global_J) == (0.0, 0.0)
    # a floor below the parabola's dip changes nothing
    assert landscape_statistics(f, J, floor=-5.0).minima == (free,)


@pytest.mark.parametrize("floor", [float("nan"), float("inf"), True, "0"])
def test_floor_must_be_a_finite_number(floor):
    with pytest.raises(ValueError, match="floor must be a finite number or None"):
        landscape_statistics(np.arange(3.0), np.array([1.0, 0.0, 1.0]), floor=floor)


def test_loss_landscapes_on_coarse_wide_grids_report_no_negative_minimum():
    # Coarse, very wide grids on which the cross-entropy J_0's refined minimum went below 0 (-0.81 and
    # -75.7 on rugged, -1.59 on double-well), though the loss is >= 0.
    from landscape import LOSS_FLOOR, compute, get_dataset

    for name, half_width in (("rugged", 3000.0), ("rugged", 1e5), ("double-well", 3000.0)):
        data = get_dataset(name)
        f = np.linspace(-half_width, half_width, 5)
        J = compute(f, data.y, data.label, 0.0, "ce")
        free = landscape_statistics(f, J)
        assert min(m.J for m in free.minima) < 0.0  # the overshoot this guards against
        floored = landscape_statistics(f, J, floor=LOSS_FLOOR)
        assert min(m.J for m in floored.minima) >= 0.0
        assert floored.global_J >= 0.0
        for m in floored.minima:  # each minimum is either refined above the floor or its own grid sample
            assert m.J >= LOSS_FLOOR and (m.f, m.J) in {(m.f, m.J) for m in free.minima} | {(f[m.index], J[m.index])}
