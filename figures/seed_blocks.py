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

from figures.results import RunRecord, Trend


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


def seed_blocked_trend(survival_p: Sequence[float], seeds: Sequence[int], values: Sequence[float]) -> Trend | None:
    """The least-squares line of values against 100 (1 - p) with one intercept per seed (the within-seed slope):
    x and the values are centred within each seed, slope = sum(x y) / sum(x^2) over the centred ones, its
    standard error from the residuals with n - g - 1 degrees of freedom (g seeds), and the two-sided p-value
    of slope = 0 from t. Where every seed's runs span all p alike this is figures.results.noise_trend's slope
    with the seeds' scatter taken out of its error. None where no seed has runs at two p or no residual degree
    of freedom is left; values that do not vary have slope 0 and p-value 1, an exact line p-value 0.

    Raises:
        ValueError: the three sequences of different lengths.
    """
    from scipy import stats

    removed = 100.0 * (1.0 - np.asarray(survival_p, dtype=float))
    values = np.asarray(values, dtype=float)
    seeds = np.asarray(seeds)
    if not (removed.shape == values.shape == seeds.shape) or removed.ndim != 1:
        raise ValueError(f"survival_p, seeds and values must be three sequences of one length, got "
                         f"{removed.shape}, {seeds.shape} and {values.shape}")
    x, y = removed.copy(), values.copy()
    labels = np.unique(seeds)
    for seed in labels:
        mask = seeds == seed
        x[mask] -= x[mask].mean()
        y[mask] -= y[mask].mean()
    sxx = float(np.sum(x * x))
    df = values.size - labels.size - 1
    if df < 1 or sxx <= 1e-12 * max(1.0, float(np.sum(removed ** 2))):
        return None
    if np.ptp(values) == 0.0:
        return Trend(0.0, 0.0, 1.0, int(values.size))
    slope = float(np.sum(x * y) / sxx)
    residual = y - slope * x
    stderr = float(np.sqrt(np.sum(residual ** 2) / df / sxx))
    if stderr == 0.0:
        return Trend(slope, 0.0, 0.0, int(values.size))
    return Trend(slope, stderr, float(2 * stats.t.sf(abs(slope / stderr), df)), int(values.size))
