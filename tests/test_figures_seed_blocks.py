"""figures.seed_blocks: the paired t-test and the line with one intercept per seed, against the formulas written out
(the t statistic of the mean difference; the least-squares fit of the full dummy-variable design by numpy's lstsq)
and against data whose line is exact."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from figures.results import Trend, noise_trend
from figures.seed_blocks import PairedDifference, fit_seed_line, paired_difference, seed_blocked_trend


def test_paired_difference_is_the_t_test_of_the_per_seed_differences_over_the_shared_seeds():
    mine = {0: 22.32, 1: 21.25, 2: 22.59, 3: 21.42, 7: 30.0}  # seed 7 has no partner: left out
    theirs = {0: 20.69, 1: 20.28, 2: 21.16, 3: 20.97, 9: 10.0}
    d = np.array([22.32 - 20.69, 21.25 - 20.28, 22.59 - 21.16, 21.42 - 20.97])
    t = d.mean() / (d.std(ddof=1) / 2.0)
    result = paired_difference(mine, theirs)
    assert result.n == 4
    assert result.difference == pytest.approx(d.mean(), rel=1e-12)
    assert result.pvalue == pytest.approx(2 * stats.t.sf(abs(t), 3), rel=1e-10)


def test_paired_difference_needs_two_shared_seeds_and_handles_constant_differences():
    assert paired_difference({0: 1.0, 1: 2.0}, {1: 1.0, 2: 3.0}) is None  # one shared seed
    assert paired_difference({}, {}) is None
    assert paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}) == PairedDifference(0.0, 1.0, 2)
    assert paired_difference({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0}) == PairedDifference(1.0, 0.0, 2)


def test_pairing_removes_a_seed_offset_that_welchs_test_cannot():
    """A shift of 0.5 at every seed on top of seed offsets of several points: Welch's test drowns in the offsets,
    the paired test sees the shift (its differences vary only by the small jitter)."""
    from figures.results import welch_difference

    offsets = {0: 0.0, 1: 3.0, 2: -2.5, 3: 5.0}
    jitter = {0: 0.02, 1: -0.03, 2: 0.01, 3: 0.0}
    plain = {s: 20.0 + offsets[s] for s in offsets}
    noisy = {s: 20.5 + offsets[s] + jitter[s] for s in offsets}
    assert welch_difference(list(noisy.values()), list(plain.values()))[1] > 0.5
    assert paired_difference(noisy, plain).pvalue < 1e-4


def _dummy_variable_fit(removed, seeds, values):
    """Slope, standard error and two-sided p-value of the slope in values ~ x + one intercept per seed, by lstsq on
    the full design matrix [x, 1{seed = s} for each s] and sigma^2 (X^T X)^-1."""
    removed, values = np.asarray(removed, float), np.asarray(values, float)
    labels = sorted(set(seeds))
    design = np.column_stack([removed] + [np.array([s == label for s in seeds], float) for label in labels])
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    residual = values - design @ coefficients
    df = len(values) - design.shape[1]
    sigma2 = residual @ residual / df
    stderr = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[0, 0])
    return coefficients[0], stderr, 2 * stats.t.sf(abs(coefficients[0] / stderr), df)


def test_seed_blocked_trend_is_the_dummy_variable_least_squares_slope():
    rng = np.random.default_rng(3)
    # an unbalanced grid: seed 2 lacks p = 0.9, seed 3 has only two p
    cells = [(p, s) for p in (0.85, 0.9, 0.95, 1.0) for s in (0, 1, 2)] + [(0.85, 3), (1.0, 3)]
    cells.remove((0.9, 2))
    survival_p = [p for p, _ in cells]
    seeds = [s for _, s in cells]
    values = [20 + 0.08 * 100 * (1 - p) + 0.6 * s + rng.normal(0, 0.3) for p, s in cells]
    slope, stderr, pvalue = _dummy_variable_fit([100 * (1 - p) for p in survival_p], seeds, values)
    trend = seed_blocked_trend(survival_p, seeds, values)
    assert trend.n == len(cells)
    assert trend.slope == pytest.approx(slope, rel=1e-10)
    assert trend.stderr == pytest.approx(stderr, rel=1e-9)
    assert trend.pvalue == pytest.approx(pvalue, rel=1e-8)


def test_fit_seed_line_gives_the_dummy_variable_intercepts_and_residual_variance():
    rng = np.random.default_rng(4)
    x = np.array([0.0, 5.0, 10.0, 15.0, 0.0, 15.0, 5.0, 10.0, 15.0])
    seeds = [0, 0, 0, 0, 1, 1, 2, 2, 2]
    y = 1.0 + 0.1 * x + np.array([0.0, 0.0, 0.0, 0.0, 2.0, 2.0, -1.0, -1.0, -1.0]) + rng.normal(0, 0.2, x.size)
    design = np.column_stack([x] + [np.array([s == label for s in seeds], float) for label in (0, 1, 2)])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    line = fit_seed_line(x, seeds, y)
    assert line.slope == pytest.approx(coefficients[0], rel=1e-10)
    assert [line.intercepts[s] for s in (0, 1, 2)] == pytest.approx(coefficients[1:], rel=1e-10)
    assert line.df == 5 and line.counts == {0: 4, 1: 2, 2: 3}
    assert line.variance == pytest.approx(np.sum((y - design @ coefficients) ** 2) / 5, rel=1e-10)
    with pytest.raises(ValueError, match="x, seeds and y"):
        fit_seed_line(x, seeds[:-1], y)


def test_seed_blocked_trend_on_an_exact_line_and_on_a_balanced_grid():
    survival_p = [0.8, 0.9, 1.0] * 3
    seeds = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    offsets = {0: 0.0, 1: 4.0, 2: -1.0}
    exact = [3.0 + 0.5 * 100 * (1 - p) + offsets[s] for p, s in zip(survival_p, seeds)]
    trend = seed_blocked_trend(survival_p, seeds, exact)
    assert trend.slope == pytest.approx(0.5, rel=1e-12)
    assert trend.stderr == pytest.approx(0.0, abs=1e-12) and trend.pvalue < 1e-9
    # every seed at every p: the same slope as the pooled line, a smaller error once the seeds differ
    rng = np.random.default_rng(0)
    noisy = [v + rng.normal(0, 0.2) for v in exact]
    blocked, pooled = seed_blocked_trend(survival_p, seeds, noisy), noise_trend(survival_p, noisy)
    assert blocked.slope == pytest.approx(pooled.slope, rel=1e-12)
    assert blocked.stderr < pooled.stderr / 3


def test_seed_blocked_trend_reports_a_slope_of_rounding_error_as_zero():
    """Each seed's values symmetric about the middle p: the within-seed slope is exactly 0, least squares gives
    about -2e-17 (as figures.results.noise_trend does for the pooled line)."""
    p = np.array([0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0])
    symmetric = np.array([2, 1, 3, 5, 3, 1, 2]) * 100 / 360
    survival_p, seeds = np.tile(p, 4), np.repeat([0, 1, 2, 3], 7)
    values = np.concatenate([symmetric + offset for offset in (0.0, 0.3, 0.7, -0.2)])
    assert fit_seed_line(100 * (1 - survival_p), seeds, values).slope != 0.0  # the rounding error
    trend = seed_blocked_trend(survival_p, seeds, values)
    assert trend.slope == 0.0 and trend.pvalue == 1.0 and trend.stderr > 0.0
    tilted = values + 1e-9 * 100 * (1 - survival_p)
    assert seed_blocked_trend(survival_p, seeds, tilted).slope == pytest.approx(1e-9, rel=1e-4)


def test_seed_blocked_trend_leaves_out_what_it_cannot_fit_and_refuses_mismatched_lengths():
    assert seed_blocked_trend([0.9, 1.0, 0.95], [0, 1, 2], [1.0, 2.0, 3.0]) is None  # no seed at two p
    assert seed_blocked_trend([0.9, 1.0, 0.9], [0, 0, 1], [1.0, 2.0, 3.0]) is None  # df = 3 - 2 seeds - 1 = 0
    # seed 1 alone varies p: its two points give the slope, 0.5 down over 10 points of p removed
    fitted = seed_blocked_trend([0.9, 0.9, 0.9, 1.0], [0, 0, 1, 1], [1.0, 1.0, 2.0, 2.5])
    assert fitted.slope == pytest.approx(-0.05, rel=1e-12) and fitted.n == 4
    assert seed_blocked_trend([0.9, 1.0, 0.9, 1.0, 0.95], [0, 0, 1, 1, 1], [5.0] * 5) == Trend(0.0, 0.0, 1.0, 5)
    with pytest.raises(ValueError, match="survival_p, seeds and values"):
        seed_blocked_trend([0.9, 1.0], [0, 0, 1], [1.0, 2.0])
