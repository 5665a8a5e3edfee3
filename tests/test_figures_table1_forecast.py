"""figures.table1_forecast: the bands against independent algebra and hand values, their coverage by simulation
(a 95 % band must hold the mean of the new draws 95 % of the time), and the table on FIXTURE runs."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy import stats

from figures import table1_forecast
from figures.output import MissingResults
from figures.table1 import P_VALUES
from figures.table1_forecast import (Band, cell_forecast, fit_line, line_forecast, seed_line_band,
                                     seed_line_forecast)
from fixtures_results import grid


def test_line_band_is_the_prediction_variance_of_a_mean_of_new_values_in_matrix_form():
    rng = np.random.default_rng(0)
    x = np.repeat([0.0, 2.5, 5.0, 10.0, 15.0], 3)
    y = 15.7 + 0.03 * x + 0.3 * rng.standard_normal(x.size)
    band = line_forecast(x, y, 12.5, 2)
    design = np.column_stack([np.ones_like(x), x])
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    s2 = residual[0] / (x.size - 2)
    at = np.array([1.0, 12.5])
    half = stats.t.ppf(0.975, x.size - 2) * np.sqrt(s2 / 2 + s2 * at @ np.linalg.inv(design.T @ design) @ at)
    assert band.centre == pytest.approx(at @ coef, rel=1e-12)
    assert (band.low, band.high) == pytest.approx((at @ coef - half, at @ coef + half), rel=1e-12)


def test_values_on_a_line_give_its_value_with_no_width():
    x = [0.0, 5.0, 10.0, 15.0]
    band = line_forecast(x, [2.0 + 0.5 * v for v in x], 12.5, 4)
    assert band.centre == pytest.approx(8.25) and band.high - band.low == pytest.approx(0.0, abs=1e-12)


def test_cell_band_by_hand():
    # within-cell sums of squares 2 and 8 over 1 + 2 degrees of freedom
    band = cell_forecast([[1.0, 3.0], [2.0, 4.0, 6.0]], [1.0, 3.0], 2)
    half = stats.t.ppf(0.975, 3) * np.sqrt(10.0 / 3.0) * np.sqrt(1 / 2 + 1 / 2)
    assert band == Band(pytest.approx(2.0), pytest.approx(2.0 - half), pytest.approx(2.0 + half))


def test_readings_that_cannot_be_made_are_none():
    assert line_forecast([1.0, 2.0], [3.0, 4.0], 1.5, 1) is None
    assert line_forecast([1.0, 1.0, 1.0], [3.0, 4.0, 5.0], 1.5, 1) is None
    assert cell_forecast([[1.0, 2.0]], [], 2) is None
    assert cell_forecast([[1.0], [2.0]], [1.0], 2) is None  # no within-cell degree of freedom


@pytest.mark.parametrize("missing", [0, -1, 1.5, True])
def test_bad_missing_counts_are_refused(missing):
    with pytest.raises(ValueError, match="missing must be an integer >= 1"):
        line_forecast([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], 1.0, missing)
    with pytest.raises(ValueError, match="missing must be an integer >= 1"):
        cell_forecast([[0.0, 1.0]], [0.0, 1.0], missing)


def test_line_refuses_values_of_another_length():
    with pytest.raises(ValueError, match="one length"):
        line_forecast([0.0, 1.0, 2.0], [0.0, 1.0], 1.0, 1)


def test_the_bands_hold_the_mean_of_the_new_runs_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    x = np.repeat([0.0, 2.5, 5.0, 7.5, 10.0, 15.0], 4)
    trials, held_line, held_cell = 4000, 0, 0
    for _ in range(trials):
        y = 15.6 + 0.03 * x + 0.3 * rng.standard_normal(x.size)
        new = (15.6 + 0.03 * 12.5 + 0.3 * rng.standard_normal(2)).mean()
        line = line_forecast(x, y, 12.5, 2)
        held_line += line.low <= new <= line.high
        cells = [list(y[x == v]) for v in np.unique(x)]
        first_two = list(15.6 + 0.03 * 12.5 + 0.3 * rng.standard_normal(2))
        cell = cell_forecast(cells + [first_two], first_two, 2)
        held_cell += cell.low <= new <= cell.high
    # binomial standard error of a 95 % rate over 4000 trials: 0.0034
    assert abs(held_line / trials - 0.95) < 0.015
    assert abs(held_cell / trials - 0.95) < 0.015


def test_seed_line_band_on_a_balanced_grid_by_hand():
    """Every seed at the same k values of x: the fit is each seed's mean plus the within-seed slope, so the
    forecast of the mean of m missing seeds at x0 is their mean ybar_s + b (x0 - xbar), with variance
    s^2 (1/m + 1/(m k) + (x0 - xbar)^2 / Sxx_within): the new values, the seeds' means, the slope."""
    rng = np.random.default_rng(5)
    levels = np.array([0.0, 5.0, 10.0, 15.0])
    offsets = {0: 0.4, 1: -0.3, 2: 0.7, 3: -0.5}
    x = np.tile(levels, 4)
    seeds = np.repeat([0, 1, 2, 3], 4)
    y = 20.8 + 0.08 * x + np.array([offsets[s] for s in seeds]) + 0.3 * rng.standard_normal(x.size)
    xc = x - levels.mean()
    yc = y - np.repeat([y[seeds == s].mean() for s in range(4)], 4)
    b = np.sum(xc * yc) / np.sum(xc * xc)
    s2 = np.sum((yc - b * xc) ** 2) / (16 - 4 - 1)
    for missing_seeds in ([0, 1, 2, 3], [1, 3]):
        m = len(missing_seeds)
        centre = np.mean([y[seeds == s].mean() for s in missing_seeds]) + b * (12.5 - levels.mean())
        half = stats.t.ppf(0.975, 11) * np.sqrt(s2 * (1 / m + 1 / (m * 4) + (12.5 - levels.mean()) ** 2
                                                      / np.sum(xc * xc)))
        band = seed_line_forecast(x, seeds, y, 12.5, missing_seeds)
        assert band.centre == pytest.approx(centre, rel=1e-12)
        assert (band.low, band.high) == pytest.approx((centre - half, centre + half), rel=1e-12)
    # with every seed to come the centre is the pooled line's; the band is narrower once the seeds differ
    assert seed_line_forecast(x, seeds, y, 12.5, [0, 1, 2, 3]).centre == pytest.approx(
        line_forecast(x, y, 12.5, 4).centre, rel=1e-12)


def test_seed_line_band_on_an_unbalanced_design_is_the_dummy_variable_matrix_form():
    """Seeds with different numbers of runs at different x: centre c^T beta and variance s^2 (1/m + c^T (X^T X)^-1
    c) for the design X = [x, 1{seed = s} ...] fitted by lstsq, c = [x0, 1/m on each missing seed's column]."""
    rng = np.random.default_rng(11)
    cells = [(0.0, 0), (5.0, 0), (10.0, 0), (15.0, 0), (0.0, 1), (15.0, 1), (5.0, 2), (10.0, 2), (15.0, 2),
             (0.0, 3)]
    x = np.array([c[0] for c in cells])
    seeds = np.array([c[1] for c in cells])
    y = 20.0 + 0.08 * x + np.array([0.5, -0.2, 0.3, -0.6])[seeds] + 0.3 * rng.standard_normal(x.size)
    design = np.column_stack([x] + [(seeds == s).astype(float) for s in range(4)])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = x.size - 5
    s2 = np.sum((y - design @ coefficients) ** 2) / df
    for missing_seeds in ([3], [1, 3], [0, 2, 3]):
        m = len(missing_seeds)
        c = np.array([12.5] + [1.0 / m if s in missing_seeds else 0.0 for s in range(4)])
        half = stats.t.ppf(0.975, df) * np.sqrt(s2 * (1 / m + c @ np.linalg.inv(design.T @ design) @ c))
        band = seed_line_forecast(x, seeds, y, 12.5, missing_seeds)
        assert band.centre == pytest.approx(c @ coefficients, rel=1e-10)
        assert (band.low, band.high) == pytest.approx((c @ coefficients - half, c @ coefficients + half), rel=1e-10)


def test_seed_line_band_holds_the_mean_of_the_missing_seeds_95_percent_of_the_time():
    """New seed offsets every trial (the seeds' share is not known in advance), two of four seeds to come."""
    rng = np.random.default_rng(2)
    levels = np.array([0.0, 5.0, 10.0, 15.0])
    x, seeds = np.tile(levels, 4), np.repeat([0, 1, 2, 3], 4)
    trials, held = 4000, 0
    for _ in range(trials):
        offsets = 0.5 * rng.standard_normal(4)
        y = 20.8 + 0.08 * x + offsets[seeds] + 0.3 * rng.standard_normal(x.size)
        new = np.mean(20.8 + 0.08 * 12.5 + offsets[[1, 3]] + 0.3 * rng.standard_normal(2))
        band = seed_line_forecast(x, seeds, y, 12.5, [1, 3])
        held += band.low <= new <= band.high
    assert abs(held / trials - 0.95) < 0.015  # binomial standard error 0.0034


def test_seed_line_readings_that_cannot_be_made_and_bad_input():
    x, seeds, y = [0.0, 5.0, 0.0, 5.0, 10.0], [0, 0, 1, 1, 1], [1.0, 2.0, 1.5, 2.4, 3.1]
    assert seed_line_forecast(x, seeds, y, 2.5, [2]) is None  # seed 2 has no run to fix its intercept
    assert seed_line_forecast([0.0, 0.0, 5.0], [0, 1, 2], [1.0, 2.0, 3.0], 2.5, [0]) is None  # no seed at two x
    assert seed_line_forecast([0.0, 5.0, 0.0], [0, 0, 1], [1.0, 2.0, 3.0], 2.5, [0]) is None  # no residual df
    # one intercept per seed and a common slope, by least squares: the centre averages both seeds' lines at 2.5
    design = np.column_stack([np.equal(seeds, 0), np.equal(seeds, 1), x]).astype(float)
    (a0, a1, slope), *_ = np.linalg.lstsq(design, y, rcond=None)
    band = seed_line_forecast(x, seeds, y, 2.5, [0, 1])
    assert band.centre == pytest.approx((a0 + a1) / 2 + slope * 2.5, rel=1e-12) and band.low < band.centre < band.high
    with pytest.raises(ValueError, match="x, seeds and y"):
        seed_line_forecast(x, seeds[:-1], y, 2.5, [0])
    for bad in ([], [0, 0]):
        with pytest.raises(ValueError, match="missing_seeds must name one or more distinct seeds"):
            seed_line_forecast(x, seeds, y, 2.5, bad)


def test_fit_line_against_polyfit_and_its_residual_variance():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 15.0, 11)
    y = 2.0 - 0.4 * x + rng.standard_normal(x.size)
    line = fit_line(x, y)
    slope, intercept = np.polyfit(x, y, 1)
    assert (line.slope, line.intercept) == pytest.approx((slope, intercept), rel=1e-12)
    assert line.variance == pytest.approx(np.sum((y - np.polyval([slope, intercept], x)) ** 2) / (x.size - 2),
                                          rel=1e-12)
    assert (line.n, line.x_mean) == (11, pytest.approx(x.mean()))
    assert line.band(4.0, 3) == line_forecast(x, y, 4.0, 3)
    assert fit_line([1.0, 2.0], [3.0, 4.0]) is None
    with pytest.raises(ValueError, match="one length"):
        fit_line([0.0, 1.0, 2.0], [0.0, 1.0])


def test_seed_line_band_without_a_line_or_an_intercept_is_none_and_bad_seeds_are_refused():
    assert seed_line_band(None, 2.5, [0]) is None
    x, seeds, y = [0.0, 5.0, 0.0, 5.0, 10.0], [0, 0, 1, 1, 1], [1.0, 2.0, 1.5, 2.4, 3.6]
    from figures.seed_blocks import fit_seed_line

    line = fit_seed_line(x, seeds, y)
    assert seed_line_band(line, 2.5, [2]) is None
    assert seed_line_band(line, 2.5, [0, 1]) == seed_line_forecast(x, seeds, y, 2.5, [0, 1])
    with pytest.raises(ValueError, match="missing_seeds must name one or more distinct seeds"):
        seed_line_band(line, 2.5, [1, 1])


def test_a_row_fits_each_quantitys_lines_once_however_many_cells_it_forecasts(tmp_path, monkeypatch):
    grid(tmp_path, ["preresnet20"], [0.9, 1.0], seeds=2, seed=5)
    calls = {"line": 0, "seeds": 0}
    fit, fit_seeds = table1_forecast.fit_line, table1_forecast.fit_seed_line

    def counted(key, function):
        def wrapper(*args):
            calls[key] += 1
            return function(*args)
        return wrapper

    monkeypatch.setattr(table1_forecast, "fit_line", counted("line", fit))
    monkeypatch.setattr(table1_forecast, "fit_seed_line", counted("seeds", fit_seeds))
    forecast = table1_forecast.compute(tmp_path)
    assert {f.p for f in forecast.forecasts} == {0.925, 0.95, 0.975}  # three empty cells, three quantities
    assert calls == {"line": 3, "seeds": 3}


def test_table_forecasts_every_cell_short_of_its_rows_fullest(tmp_path):
    written = grid(tmp_path, ["preresnet20"], [0.9, 0.95, 1.0], seeds=3, seed=7)
    (tmp_path / "preresnet20-p0.95-s2" / "metrics.h5").unlink()
    forecast = table1_forecast.compute(tmp_path)
    cells = {(f.p, f.quantity): f for f in forecast.forecasts}
    assert {p for p, _ in cells} == {0.925, 0.95, 0.975}  # 0.85 and 0.875 lie beyond the runs' 0.9 to 1
    final = {key: 100.0 * (1.0 - v["test_acc"][-1]) for key, v in written.items() if key != ("preresnet20", 0.95, 2)}
    x = [100.0 * (1.0 - p) for (_, p, _) in final]
    short = cells[(0.95, "final test error (%)")]
    assert (short.runs, short.missing) == (2, 1)
    assert short.line == line_forecast(x, list(final.values()), 5.0, 1)
    by_p = {p: [v for (_, q, _), v in final.items() if q == p] for p in (0.9, 0.95, 1.0)}
    assert short.cell == cell_forecast(list(by_p.values()), by_p[0.95], 1)
    seeds = [s for (_, _, s) in final]
    def as_tuple(band):
        return band.centre, band.low, band.high

    # the seed p = 0.95 lacks (the fit's sums run in another order here: equal to rounding)
    assert as_tuple(short.seeds) == pytest.approx(
        as_tuple(seed_line_forecast(x, seeds, list(final.values()), 5.0, [2])), rel=1e-12)
    empty = cells[(0.925, "final training loss")]
    assert (empty.runs, empty.missing, empty.cell) == (0, 3, None) and empty.line is not None
    losses = [v["train_loss"][-1] for key, v in written.items() if key != ("preresnet20", 0.95, 2)]
    assert as_tuple(empty.seeds) == pytest.approx(as_tuple(seed_line_forecast(x, seeds, losses, 7.5, [0, 1, 2])),
                                                  rel=1e-12)
    files = table1_forecast.make(tmp_path / "out", results=tmp_path)
    markdown = files[0].read_text()
    assert f"| preresnet20 | 95% | 2 | 1 | final test error (%) | {short.line.centre:.2f} " in markdown
    assert "| preresnet20 | 92.5% | 0 | 3 | final training loss |" in markdown and markdown.count("\n|") == 2 + 9
    with h5py.File(files[1]) as h5:
        group = h5["preresnet20/p95"]
        assert (group.attrs["runs"], group.attrs["missing"]) == (2, 1)
        assert group["line_centre"][0] == pytest.approx(short.line.centre)
        assert np.isnan(h5["preresnet20/p92.5"]["cell_low"][:]).all()
        assert group["seeds_high"][0] == pytest.approx(short.seeds.high)
        assert "preresnet20/p87.5" not in h5


def test_a_full_table_has_nothing_to_forecast(tmp_path):
    grid(tmp_path, ["preresnet20"], list(P_VALUES), seeds=2, seed=8)
    assert table1_forecast.compute(tmp_path).forecasts == []
    markdown = table1_forecast.make(tmp_path / "out", results=tmp_path)[0].read_text()
    assert "nothing to forecast" in markdown


def test_no_runs_names_the_sweep(tmp_path):
    with pytest.raises(MissingResults, match="no finished Table 1 runs") as missing:
        table1_forecast.compute(tmp_path)
    assert "python -m nets.sweep" in missing.value.command
