"""Comparisons that pair runs by seed: runs of one seed are not independent draws.

The trainer seeds the initial weights and, with a generator of its own (nets.augment.Augmenter), the order of the
mini-batches and the crops and flips from --seed alone; the survival probability p of (4.2) changes only the
noise masks. So the runs of a Table 1 row that share a seed start from the same weights and see the same batches,
and a seed that trains well at one p tends to train well at the others (docs/experiments.md section 6: on the
CPU PreResNet-8 runs a two-way analysis of variance gives the seed term F = 6.7, p = 0.007). Welch's test and the
least-squares line of figures.results treat every run as an independent draw, which for comparisons between p at
the same seeds overstates their error; the paired t-test and the line with one intercept per seed here take the
seed's share out (a randomized block design, the seed as the block). Both pay in degrees of freedom: the paired
test has n - 1 for n seeds where Welch's has up to 2n - 2, so with four seeds it is sharper only where the seed
term is large; the line within seeds keeps n - g - 1 of the pooled line's n - 2 (g seeds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from figures.results import RunRecord, Trend, without_roundoff


@dataclass(frozen=True)
class PairedDifference:
    """mine minus theirs over the seeds both hold: the mean of the per-seed differences, the paired t-test's
    two-sided p-value (t with n - 1 degrees of freedom) and the number n of seeds paired."""

    difference: float
    pvalue: float
    n: int


def paired_difference(mine: Mapping[int, float], theirs: Mapping[int, float]) -> PairedDifference | None:
    """The paired t-test of mine[seed] - theirs[seed] over the seeds both mappings hold; None with fewer than
    2 shared seeds. Differences that do not vary have no t statistic: p is 1 when they are all 0, else 0 (as
    figures.results.welch_difference does for two constant samples)."""
    from scipy import stats

    shared = sorted(set(mine) & set(theirs))
    if len(shared) < 2:
        return None
    differences = np.array([mine[seed] - theirs[seed] for seed in shared], dtype=float)
    mean = float(differences.mean())
    if np.ptp(differences) == 0.0:
        return PairedDifference(mean, 1.0 if mean == 0.0 else 0.0, len(shared))
    t = mean / (differences.std(ddof=1) / np.sqrt(len(shared)))
    return PairedDifference(mean, float(2 * stats.t.sf(abs(t), len(shared) - 1)), len(shared))


def paired_runs(mine: Sequence[RunRecord], theirs: Sequence[RunRecord], value: Callable[[RunRecord], float]
                ) -> PairedDifference | None:
    """paired_difference of value(run) between two groups of runs, matched by seed (a group holds one run per
    seed: figures.results.select keeps each configuration once)."""
    return paired_difference({r.seed: value(r) for r in mine}, {r.seed: value(r) for r in theirs})


@dataclass(frozen=True)
class SeedLine:
    """The least-squares line y = slope x + intercepts[seed], one intercept per seed (a randomized block design).
    Per seed: the number of values `counts[seed]` and the mean x `x_means[seed]`, so that intercepts[seed] =
    mean y of the seed - slope x_means[seed]. `variance` is the residual variance s^2 with `df` = n - g - 1
    degrees of freedom (g seeds) and `sxx_within` the sum of squares of x about each seed's mean x; the slope's
    variance is s^2 / sxx_within, and each intercept's fitted value at x0 has variance s^2 (1 / counts[seed] +
    (x0 - x_means[seed])^2 / sxx_within)."""

    slope: float
    intercepts: dict[int, float]
    counts: dict[int, int]
    x_means: dict[int, float]
    variance: float
    df: int
    sxx_within: float

    def at(self, x0: float, seeds: Sequence[int]) -> tuple[float, float]:
        """The fitted value at x0 averaged over `seeds` (distinct, each fitted) and its variance divided by s^2:
        (1/m^2) sum 1/counts[seed] + (x0 - mean of their x_means)^2 / sxx_within, the seeds' means and the slope
        being uncorrelated."""
        m = len(seeds)
        centre = float(np.mean([self.intercepts[seed] for seed in seeds])) + self.slope * float(x0)
        x_bar = float(np.mean([self.x_means[seed] for seed in seeds]))
        spread = sum(1.0 / self.counts[seed] for seed in seeds) / m ** 2 + (float(x0) - x_bar) ** 2 / self.sxx_within
        return centre, spread


def fit_seed_line(x: Sequence[float], seeds: Sequence[int], y: Sequence[float]) -> SeedLine | None:
    """The least-squares line of y on x with one intercept per seed: x and y centred within each seed, slope =
    sum(x y) / sum(x^2) over the centred ones (the within-seed slope). None where no seed has values at two x
    (within a relative 1e-12 of x's scale) or no residual degree of freedom is left (n - g - 1 < 1).

    Raises:
        ValueError: the three sequences of different lengths.
    """
    x, y, seeds = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(seeds)
    if not (x.shape == y.shape == seeds.shape) or x.ndim != 1:
        raise ValueError(f"x, seeds and y must be three sequences of one length, got {x.shape}, {seeds.shape} "
                         f"and {y.shape}")
    labels = [int(label) for label in np.unique(seeds)]
    masks = {label: seeds == label for label in labels}
    x_means = {label: float(x[mask].mean()) for label, mask in masks.items()}
    y_means = {label: float(y[mask].mean()) for label, mask in masks.items()}
    xc = x - np.array([x_means[int(seed)] for seed in seeds])
    yc = y - np.array([y_means[int(seed)] for seed in seeds])
    sxx = float(np.sum(xc * xc))
    df = x.size - len(labels) - 1
    if df < 1 or sxx <= 1e-12 * max(1.0, float(np.sum(x * x))):
        return None
    slope = float(np.sum(xc * yc) / sxx)
    residual = yc - slope * xc
    return SeedLine(slope=slope, intercepts={label: y_means[label] - slope * x_means[label] for label in labels},
                    counts={label: int(mask.sum()) for label, mask in masks.items()}, x_means=x_means,
                    variance=float(np.sum(residual ** 2) / df), df=df, sxx_within=sxx)


def seed_blocked_trend(survival_p: Sequence[float], seeds: Sequence[int], values: Sequence[float]) -> Trend | None:
    """The least-squares line of values against 100 (1 - p) with one intercept per seed (fit_seed_line): the
    within-seed slope, its standard error from the residuals with n - g - 1 degrees of freedom (g seeds), and
    the two-sided p-value of slope = 0 from t. Where every seed's runs span all p alike this is
    figures.results.noise_trend's slope with the seeds' scatter taken out of its error. None where no seed has
    runs at two p or no residual degree of freedom is left; values that do not vary, or whose slope is only
    rounding error (figures.results.without_roundoff), have slope 0 and p-value 1; an exact line p-value 0.

    Raises:
        ValueError: the three sequences of different lengths.
    """
    from scipy import stats

    survival_p, values = np.asarray(survival_p, dtype=float), np.asarray(values, dtype=float)
    if not (survival_p.shape == values.shape == np.shape(seeds)) or values.ndim != 1:
        raise ValueError(f"survival_p, seeds and values must be three sequences of one length, got "
                         f"{survival_p.shape}, {np.shape(seeds)} and {values.shape}")
    removed = 100.0 * (1.0 - survival_p)
    line = fit_seed_line(removed, seeds, values)
    if line is None:
        return None
    if np.ptp(values) == 0.0:
        return Trend(0.0, 0.0, 1.0, int(values.size))
    stderr = float(np.sqrt(line.variance / line.sxx_within))
    slope = without_roundoff(line.slope, removed, values)
    if slope == 0.0:
        return Trend(0.0, stderr, 1.0, int(values.size))
    if stderr == 0.0:
        return Trend(slope, 0.0, 0.0, int(values.size))
    return Trend(slope, stderr, float(2 * stats.t.sf(abs(slope / stderr), line.df)), int(values.size))
