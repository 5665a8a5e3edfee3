"""What the runs still missing from Table 1 should give, from the runs already there: a forecast to write down
(and commit) before those runs train, and to check them against afterwards.

Table 1 of the main paper (section 4.2.2) reads the test error along the survival probability p of (4.2);
Fig. 6 reads the training loss along it. For each row of Table 1 (figures.table1.select_table1_runs) and each
p of table1.P_VALUES inside the row's range of p whose cell holds fewer runs than the row's fullest cell, the
mean of the m runs still to come is forecast two ways, for the final test error (%), the mean test error over
the last quarter of the epochs (figures.results.late_window) and the final training loss:

- line: the least-squares line of the row's runs against x = 100 (1 - p), the points of p removed, at the
  cell's x0, with the 95 % band of a mean of m new runs,
  y(x0) +- t(n - 2) s sqrt(1/m + 1/n + (x0 - mean x)^2 / Sxx)
  (the new runs' scatter around the line and the line's own uncertainty; runs as independent draws);
- cell: where the cell already holds runs, their mean with the 95 % band of a mean of m new runs if those
  are typical of the cell, mean +- t(df) s_pooled sqrt(1/n_cell + 1/m), s_pooled the within-cell standard
  deviation pooled over the row's cells (df = the runs minus the cells that hold them);
- seeds: the line with one intercept per seed (figures.seed_blocks: runs of one seed share their initial weights
  and mini-batches at every p) at x0, averaged over the seeds the cell still lacks, each of which must have runs
  elsewhere in the row; its 95 % band for the mean of those m runs is t(n - g - 1) s sqrt(1/m + c^T (X^T X)^-1 c),
  X the dummy-variable design [x, one column per seed], c = [x0, 1/m for each missing seed] (seed_line_forecast).

Where the readings disagree the outcome tells them apart. All are summaries of the measured range, not laws: a
line does not know that the dose response bends near p = 1 (docs/experiments.md section 7). Written as
Markdown (table1_forecast.md) and HDF5 (table1_forecast.h5).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from figures.output import save_data
from figures.results import RunRecord, late_window
from figures.seed_blocks import SeedLine, fit_seed_line
from figures.table1 import P_VALUES, table1_rows, write_text
from kolmogorov._checks import check_int

SUMMARY = ("Table 1 forecast: the mean of each cell's missing runs, from the line through its row and from its "
           "own runs, with 95 % bands (from sweep results)")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Band:
    """A forecast centre with its two-sided 95 % band for the mean of the runs to come."""

    centre: float
    low: float
    high: float


@dataclass(frozen=True)
class CellForecast:
    """One quantity of one cell: what the line through the row and the cell's own runs say of the mean of the
    `missing` runs still to come (None where a reading cannot be made)."""

    model: str
    p: float
    runs: int
    missing: int
    quantity: str
    line: Band | None
    cell: Band | None
    seeds: Band | None = None


def _t_quantile(df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


@dataclass(frozen=True)
class Line:
    """The least-squares line y = intercept + slope x through n values, with the mean x, the sum of squares Sxx
    of x about it and the residual variance s^2 (n - 2 degrees of freedom)."""

    slope: float
    intercept: float
    x_mean: float
    sxx: float
    variance: float
    n: int

    def band(self, x0: float, missing: int) -> Band:
        """The line at x0 with the 95 % band for the mean of `missing` new values there:
        y(x0) +- t(n - 2) s sqrt(1/missing + 1/n + (x0 - mean x)^2 / Sxx)."""
        centre = self.intercept + self.slope * float(x0)
        half = _t_quantile(self.n - 2) * np.sqrt(
            self.variance * (1.0 / missing + 1.0 / self.n + (float(x0) - self.x_mean) ** 2 / self.sxx))
        return Band(centre, centre - half, centre + half)


def fit_line(x: Sequence[float], y: Sequence[float]) -> Line | None:
    """The least-squares line of y on x; None with fewer than 3 values or fewer than 2 distinct x.

    Raises:
        ValueError: x and y of different lengths.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be two sequences of one length, got {x.shape} and {y.shape}")
    n = x.size
    if n < 3 or np.ptp(x) == 0.0:
        return None
    x_mean = float(x.mean())
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    residual = y - (intercept + slope * x)
    return Line(slope, intercept, x_mean, sxx, float((residual ** 2).sum() / (n - 2)), n)


def line_forecast(x: Sequence[float], y: Sequence[float], x0: float, missing: int) -> Band | None:
    """The least-squares line of y on x at x0 (fit_line), with the 95 % band for the mean of `missing` new values
    there (Line.band, t with n - 2 degrees of freedom); None with fewer than 3 values or fewer than 2 distinct x.

    Raises:
        ValueError: x and y of different lengths, or missing not an integer >= 1 (kolmogorov._checks.check_int).
    """
    line = fit_line(x, y)
    missing = check_int("missing", missing, 1)
    return None if line is None else line.band(x0, missing)


def seed_line_band(line: SeedLine | None, x0: float, missing_seeds: Sequence[int]) -> Band | None:
    """A fitted line with one intercept per seed at x0, averaged over missing_seeds, with the 95 % band of
    seed_line_forecast; None when there is no line or a missing seed has no intercept in it.

    Raises:
        ValueError: missing_seeds empty or repeating a seed.
    """
    missing_seeds = list(missing_seeds)
    if not missing_seeds or len(set(missing_seeds)) != len(missing_seeds):
        raise ValueError(f"missing_seeds must name one or more distinct seeds, got {missing_seeds}")
    if line is None or any(seed not in line.intercepts for seed in missing_seeds):
        return None
    centre, spread = line.at(x0, missing_seeds)
    half = _t_quantile(line.df) * np.sqrt(line.variance * (1.0 / len(missing_seeds) + spread))
    return Band(centre, centre - half, centre + half)


def seed_line_forecast(x: Sequence[float], seeds: Sequence[int], y: Sequence[float], x0: float,
                       missing_seeds: Sequence[int]) -> Band | None:
    """The least-squares line of y on x with one intercept per seed (figures.seed_blocks.fit_seed_line), at x0,
    averaged over missing_seeds: the forecast of the mean of one new value per missing seed, with its 95 % band
    (t with n - g - 1 degrees of freedom, g seeds). Its variance is s^2 (1/m + (1/m^2) sum 1/n_s + (x0 - mean
    xbar_s)^2 / Sxx_within) over the m missing seeds s with n_s runs at mean x xbar_s: the new values' scatter,
    the seeds' means and the slope. None when a missing seed has no value to fix its intercept, when no seed has
    values at two x, or when no residual degree of freedom is left.

    Raises:
        ValueError: x, seeds and y of different lengths, or missing_seeds empty or repeating a seed.
    """
    return seed_line_band(fit_seed_line(x, seeds, y), x0, missing_seeds)


def cell_forecast(cells: Sequence[Sequence[float]], cell: Sequence[float], missing: int) -> Band | None:
    """The mean of `cell` with the 95 % band for the mean of `missing` new values drawn like it: the within-cell
    standard deviation pooled over `cells` (each a sequence of values; `cell` is usually one of them), t with
    sum(len - 1) degrees of freedom. None when `cell` is empty or the pooled deviation has no degree of freedom.

    Raises:
        ValueError: missing not an integer >= 1 (kolmogorov._checks.check_int).
    """
    missing = check_int("missing", missing, 1)
    groups = [np.asarray(values, dtype=float) for values in cells if len(values) > 0]
    df = sum(values.size - 1 for values in groups)
    if len(cell) == 0 or df < 1:
        return None
    pooled = np.sqrt(sum(float(((values - values.mean()) ** 2).sum()) for values in groups) / df)
    centre = float(np.mean(cell))
    half = _t_quantile(df) * pooled * np.sqrt(1.0 / len(cell) + 1.0 / missing)
    return Band(centre, centre - half, centre + half)


def quantities(window: int) -> dict[str, Callable[[RunRecord], float]]:
    """The forecast quantities: name -> the value of one run."""
    return {"final test error (%)": lambda r: r.final_test_error,
            f"test error, last {window} epochs (%)": lambda r: r.late_test_error(window),
            "final training loss": lambda r: r.final_train_loss}


def row_forecasts(model: str, by_p: dict[float, list[RunRecord]], ps: Sequence[float] = P_VALUES) -> list[CellForecast]:
    """The forecasts of one row: each p of ps inside the row's measured range of p whose cell holds fewer runs
    than the row's fullest cell (a line fitted to the range does not speak for p beyond it). The runs to come
    are taken to be the seeds of the fullest cell (the first one, at the highest p, where several are full)
    that the cell lacks, as a sweep over the same --seeds trains them; the seeds reading needs them."""
    target = max(len(runs) for runs in by_p.values())
    lowest, highest = min(by_p), max(by_p)
    window = late_window(min(run.epochs for runs in by_p.values() for run in runs))
    fullest = {run.seed for run in by_p[max(q for q, rs in by_p.items() if len(rs) == target)]}
    x = [100.0 * (1.0 - q) for q, rs in by_p.items() for _ in rs]
    seeds = [run.seed for rs in by_p.values() for run in rs]
    values = {name: {q: [value(r) for r in rs] for q, rs in by_p.items()} for name, value in quantities(window).items()}
    pooled = {name: [v for cell in cells.values() for v in cell] for name, cells in values.items()}
    lines = {name: fit_line(x, y) for name, y in pooled.items()}
    seed_lines = {name: fit_seed_line(x, seeds, y) for name, y in pooled.items()}
    forecasts = []
    for p in ps:
        runs = by_p.get(p, [])
        if len(runs) >= target or not lowest <= p <= highest:
            continue
        missing = target - len(runs)
        x0 = 100.0 * (1.0 - p)
        missing_seeds = sorted(fullest - {run.seed for run in runs})
        seeds_known = len(missing_seeds) == missing
        for name, cells in values.items():
            line = lines[name]
            forecasts.append(CellForecast(
                model, p, len(runs), missing, name, None if line is None else line.band(x0, missing),
                cell_forecast(list(cells.values()), cells.get(p, []), missing),
                seed_line_band(seed_lines[name], x0, missing_seeds) if seeds_known else None))
    return forecasts


@dataclass
class Forecast:
    """Every row's forecasts, with the note saying which runs they rest on."""

    forecasts: list[CellForecast]
    note: str


def compute(results: Path | None) -> Forecast:
    """The forecast from the finished Table 1 runs under results; MissingResults (with the sweep) when none."""
    selection, rows = table1_rows(results)
    forecasts = [forecast for model, by_p in rows.items() for forecast in row_forecasts(model, by_p)]
    return Forecast(forecasts, selection.note())


def _band_text(band: Band | None, digits: int) -> str:
    if band is None:
        return "–"
    return f"{band.centre:.{digits}f} ({band.low:.{digits}f} to {band.high:.{digits}f})"


def to_markdown(forecast: Forecast) -> str:
    """One Markdown table of every cell still missing runs, a row per quantity."""
    lines = [f"**Table 1 forecast: the mean of the runs still missing from each cell, with 95 % bands.** Line: the "
             "least-squares line of the row's runs against the points of p removed; cell: the cell's own runs, if "
             "those to come are typical of it (within-cell deviation pooled over the row); both with the runs as "
             "independent draws; seeds: the line with one intercept per seed (runs of one seed share their "
             "initial weights and mini-batches), averaged over the seeds still to come; "
             f"{forecast.note}.", ""]
    if not forecast.forecasts:
        return "\n".join(lines + ["Every cell holds as many runs as its row's fullest: nothing to forecast."]) + "\n"
    lines += ["| model | p | runs | to come | quantity | line | cell | seeds |", "|---|---|---|---|---|---|---|---|"]
    for f in forecast.forecasts:
        digits = 4 if "loss" in f.quantity else 2
        lines.append(f"| {f.model} | {100 * f.p:g}% | {f.runs} | {f.missing} | {f.quantity} | "
                     f"{_band_text(f.line, digits)} | {_band_text(f.cell, digits)} | {_band_text(f.seeds, digits)} |")
    return "\n".join(lines) + "\n"


def save(forecast: Forecast, out_dir: Path) -> list[Path]:
    """forecast -> out_dir/table1_forecast.md and .h5 (a group per model and p, a row per quantity; NaN where a
    reading cannot be made)."""
    by_cell: dict[tuple[str, float], list[CellForecast]] = {}
    for f in forecast.forecasts:
        by_cell.setdefault((f.model, f.p), []).append(f)
    nan = Band(np.nan, np.nan, np.nan)
    groups: dict[str, dict] = {}
    for (model, p), rows in by_cell.items():
        groups[f"{model}/p{100 * p:g}"] = {
            "runs": rows[0].runs, "missing": rows[0].missing,
            "quantity": np.array([f.quantity for f in rows], dtype="S"),
            **{f"{reading}_{part}": np.array([getattr(getattr(f, reading) or nan, part) for f in rows])
               for reading in ("line", "cell", "seeds") for part in ("centre", "low", "high")}}
    return [write_text(Path(out_dir) / "table1_forecast.md", to_markdown(forecast)),
            save_data(out_dir, "table1_forecast", groups, attrs={"note": forecast.note, "confidence": CONFIDENCE})]


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Write the forecast from sweep results (`fast` changes nothing: the numbers are read, not computed)."""
    return save(compute(results), out_dir)
