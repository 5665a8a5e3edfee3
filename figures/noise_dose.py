"""Flatness against the dose of training noise: c of the eps^2 law at one eps against the survival probability p.

At fixed weights the noisy objective exceeds the clean one by c eps^2 + o(eps^2) (the 1/2 eps^2 g g^T : grad^2 u
term of the backward Kolmogorov equation (3.6); figures.noise_curvature draws the law itself). The main paper's
claim is that training with noise, eps^2 = (1 - p) / (p K) of (3.2)-(3.4), flattens the landscape the network
ends in; measured at one common eps on networks trained at several p, c says by how much, dose by dose. The
numbers are what `python -m nets.noise_response --save` measured and saved under RESULTS/noise_response/ (any
sub-folder but the two-point masks' jumps/); this module only reads and plots them.

A family (data set and model) is drawn when its networks trained without noise or with Bernoulli masks were
measured at one eps at three or more p; where several eps or estimators qualify, the one with the most p is drawn,
the control variate's first. Four panels per family: (a) c per mask kind against p, mean +- sample std over runs,
each run a dot; (b) the mask-averaged 1/c of each run (1 / the mean of its kinds' c) with the least-squares line
against the points of p removed, a summary over the measured range, not a law; (c) J_0, the clean loss on the
same images: what the flatness cost in fit; (d) the final test error of each run (its metrics.h5 under RESULTS,
matched by run name, model and p) against its mask-averaged c, with the correlation over runs and within each p:
does the flatter network generalize better? noise_dose.md also forecasts, for each Table 1 p inside the measured
range whose runs are fewer than the fullest p's, the mean 1/c of the runs still to come, as
figures.table1_forecast does for the test error: by the line and by the p's own runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from figures.noise_curvature import FOLDER, KIND_COLORS
from figures.noise_jumps import FOLDER as JUMPS_FOLDER
from figures.output import MissingResults, count_of_runs, save_labelled, survival_of, wrapped_suptitle
from figures.results import mean_and_std, results_root
from figures.table1 import P_VALUES
from figures.table1_forecast import Band, cell_forecast, line_forecast

SUMMARY = ("Flatness against the training noise: c of the eps^2 law at one eps against the survival probability p "
           "the networks trained with (from nets.noise_response)")
MIN_SURVIVAL_PROBABILITIES = 3


def command(results: Path | None) -> str:
    """What produces the figure's numbers: digits PreResNet-20 runs at four p (CPU, minutes), then their c at
    eps 0.04 along three masks with the control variate, saved where the figure reads it."""
    out = results_root(results) / FOLDER / "digits_preresnet20_dose.json"
    return ("python -m nets.sweep --models preresnet20 --p 1.0 0.95 0.9 0.85 --seeds 4 --data digits "
            "--out runs/digits_dose && python -m nets.noise_response runs/digits_dose/preresnet20-*/ --eps 0.04 "
            "--kinds bernoulli gaussian uniform --estimator control-variate --images 1437 --draws 8 "
            f"--save {out}")


@dataclass(frozen=True)
class MeasuredRun:
    """One trained network's c per mask kind at one eps (nets.noise_response), with what finds its training run."""

    p: float  # the survival probability it trained with (1.0: no noise)
    curvature: dict[str, float]  # kind -> c = (J_eps - J_0) / eps^2
    clean_loss: float  # J_0 on the measured images
    name: str  # its run directory's name
    model: str


def measurement_files(results: Path | None, command_text: str) -> list[Path]:
    """The saved measurements under RESULTS/noise_response/, any sub-folder but the two-point masks' jumps/;
    MissingResults naming command_text (what produces them) when there are none."""
    folder = results_root(results) / FOLDER
    jumps = results_root(results) / JUMPS_FOLDER
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    files = [path for path in files if not path.is_relative_to(jumps)]
    if not files:
        raise MissingResults(f"no noise-response measurements (*.json) under {folder}", command_text)
    return files


def measured_twice(group: str, run: object, estimator: str, level: float) -> ValueError:
    """The refusal of a run measured twice at one eps with one estimator within one family: which copy to draw
    is not a figure's to guess (noise_dose, noise_own; noise_jumps refuses alike)."""
    return ValueError(f"{group}: {run} is measured twice ({estimator} estimator, eps {level:g}); one measurement "
                      "per run")


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """family -> p (decreasing, the distinct survival probabilities), kinds, eps, estimator, runs (per p),
    c_mean / c_std (p x kinds), run_p, run_c (runs x kinds), run_inverse_c (1 / the mean over kinds; NaN where
    that mean is not positive), run_clean_loss, clean_mean / clean_std (per p), line_intercept, line_slope (per
    point of p removed), line_stderr, line_r2, line_pvalue (NaN without 3 runs of positive c at 2 p), line_runs
    (the runs it is fitted to), run_test_error (NaN where not one training run matches), matched, error_r /
    error_pvalue (Pearson over the matched runs), error_within_r / error_within_pvalue / error_within_df
    (within_p_correlation); and the note. MissingResults when nothing is saved or no family has three p at one
    eps; ValueError naming a file that is not nets.noise_response's JSON or a run measured twice at one eps
    with one estimator."""
    from figures.noise_curvature import family as family_of
    from nets.noise_response import load_saved

    files = measurement_files(results, command(results))
    cells: dict[tuple[str, str, float], dict[str, MeasuredRun]] = {}
    left_out = 0
    for record in load_saved(files):
        p = survival_of(record.trained_with) if record.batchnorm == "recorded" else None
        if p is None:
            left_out += 1
            continue
        for level in sorted({k.eps for k in record.kinds}):
            curvature = {k.kind: k.curvature(record.clean_loss) for k in record.kinds if k.eps == level}
            key = (family_of(record.data, record.model, record.split), record.estimator, level)
            measured = MeasuredRun(p, curvature, record.clean_loss, record.run.name, record.model)
            runs = cells.setdefault(key, {})
            if str(record.run) in runs:
                raise measured_twice(key[0], record.run, record.estimator, level)
            runs[str(record.run)] = measured
    best: dict[str, tuple] = {}
    for (name, estimator, level), runs in cells.items():
        rank = (len({run.p for run in runs.values()}), estimator == "control-variate", len(runs), -level)
        if name not in best or rank > best[name][0]:
            best[name] = (rank, estimator, level, list(runs.values()))
    trained = _trained_runs(results)
    data = {name: _family(estimator, level, runs, trained) for name, (rank, estimator, level, runs) in best.items()
            if rank[0] >= MIN_SURVIVAL_PROBABILITIES}
    data = {name: values for name, values in data.items() if values is not None}
    if not data:
        raise MissingResults(f"no network family measured at one eps at {MIN_SURVIVAL_PROBABILITIES} or more "
                             f"survival probabilities under {results_root(results) / FOLDER}", command(results))
    counts = "; ".join(f"{name}: {len(d['run_p'])} runs at p = {', '.join(f'{p:g}' for p in d['p'])}, eps "
                       f"{d['eps']:g}, {d['estimator']} estimator, {d['matched']} with their training run found"
                       for name, d in data.items())
    note = (f"c = (J_eps - J_0) / eps^2 on the runs' own training images (unless a family says test split), noise "
            f"drawn as in training, BatchNorm in eval mode; mean +- sample std over runs; {counts}; the line is least "
            f"squares over runs, a summary of the measured range, not a law; {left_out} measured network(s) trained "
            f"with other noise or with re-estimated BatchNorm statistics left out; "
            f"from {', '.join(str(p.relative_to(results_root(results) / FOLDER)) for p in files)}")
    return data, note


def _trained_runs(results: Path | None) -> dict[str, list]:
    """run directory name -> the finished runs of that name under the results root (figures.results.RunRecord)."""
    from figures.results import collect_runs

    by_name: dict[str, list] = {}
    for record in collect_runs(results_root(results)):
        by_name.setdefault(record.name, []).append(record)
    return by_name


def _test_error(trained: dict[str, list], name: str, model: str, p: float) -> float:
    """The final test error (%) of the one finished run called `name` of this model trained at survival p; NaN when
    there is none, or more than one (the measurement does not say which)."""
    matches = [r for r in trained.get(name, []) if r.model == model and r.survival_p == p]
    return matches[0].final_test_error if len(matches) == 1 else float("nan")


def within_p_correlation(run_p: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Pearson's r of x and y after subtracting each p's mean from both (the association at fixed training noise,
    the partial correlation given the p's), its two-sided p-value from t = r sqrt(df / (1 - r^2)) and df =
    runs - distinct p - 1; (nan, nan, df) when df < 1 or either has no spread left."""
    from scipy import stats

    x, y = np.array(x, dtype=float), np.array(y, dtype=float)
    for value in np.unique(run_p):
        at = run_p == value
        x[at] -= x[at].mean()
        y[at] -= y[at].mean()
    df = len(run_p) - len(np.unique(run_p)) - 1
    if df < 1 or not np.any(x) or not np.any(y):
        return float("nan"), float("nan"), df
    r = float(np.clip(np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)), -1.0, 1.0))
    t = r * np.sqrt(df / max(1.0 - r * r, 1e-300))
    return r, float(2.0 * stats.t.sf(abs(t), df)), df


def inverse_c_forecasts(run_p: np.ndarray, inverse_c: np.ndarray,
                        ps: Sequence[float] = P_VALUES) -> dict[str, np.ndarray]:
    """For each p of ps inside the measured range whose runs with a 1/c are fewer than the fullest p's: that p, its
    runs, the runs to come, and the line and cell forecasts (figures.table1_forecast) of their mean 1/c as rows
    (centre, low, high), NaN where a reading cannot be made. Runs whose 1/c is NaN (c <= 0) are left out."""
    kept = ~np.isnan(inverse_c)
    run_p, inverse_c = np.asarray(run_p, dtype=float)[kept], np.asarray(inverse_c, dtype=float)[kept]
    cells = {p: inverse_c[run_p == p] for p in np.unique(run_p)}
    rows = {"forecast_p": [], "forecast_runs": [], "forecast_missing": [], "forecast_line": [], "forecast_cell": []}
    if not cells:
        return {key: np.zeros((0, 3) if key in ("forecast_line", "forecast_cell") else 0) for key in rows}
    fullest = max(values.size for values in cells.values())
    nan = Band(np.nan, np.nan, np.nan)
    for p in ps:
        here = cells.get(p, np.zeros(0))
        if not run_p.min() <= p <= run_p.max() or here.size >= fullest:
            continue
        missing = fullest - here.size
        line = line_forecast(100.0 * (1.0 - run_p), inverse_c, 100.0 * (1.0 - p), missing) or nan
        cell = cell_forecast(list(cells.values()), here, missing) or nan
        for key, value in (("forecast_p", p), ("forecast_runs", here.size), ("forecast_missing", missing),
                           ("forecast_line", [line.centre, line.low, line.high]),
                           ("forecast_cell", [cell.centre, cell.low, cell.high])):
            rows[key].append(value)
    return {key: np.array(values, dtype=float).reshape((-1, 3) if key in ("forecast_line", "forecast_cell") else -1)
            for key, values in rows.items()}


def _family(estimator: str, level: float, runs: list[MeasuredRun], trained: dict[str, list]) -> dict | None:
    """The arrays of one family's drawn measurement (compute's docstring); None when its runs share no kind."""
    from scipy import stats

    kinds = [k for k in runs[0].curvature if all(k in run.curvature for run in runs)]
    if not kinds:
        return None
    run_p = np.array([run.p for run in runs])
    run_c = np.array([[run.curvature[k] for k in kinds] for run in runs])
    run_clean = np.array([run.clean_loss for run in runs])
    run_error = np.array([_test_error(trained, run.name, run.model, run.p) for run in runs])
    matched = ~np.isnan(run_error)
    mean_c = run_c.mean(axis=1)
    across = stats.pearsonr(mean_c[matched], run_error[matched]) if matched.sum() >= 3 else None
    within = within_p_correlation(run_p[matched], mean_c[matched], run_error[matched])
    survival = np.array(sorted(set(run_p.tolist()), reverse=True))
    at = [run_p == p for p in survival]
    c_cells = [mean_and_std(run_c[mask]) for mask in at]
    clean_cells = [mean_and_std(run_clean[mask]) for mask in at]
    positive = mean_c > 0  # 1/c only where the noise raised the loss
    inverse_c = np.divide(1.0, mean_c, out=np.full_like(mean_c, np.nan), where=positive)
    fitted = len(np.unique(run_p[positive])) >= 2 and positive.sum() >= 3
    line = stats.linregress(100.0 * (1.0 - run_p[positive]), inverse_c[positive]) if fitted else None
    line_value = lambda field: float(getattr(line, field)) if line else float("nan")  # noqa: E731
    return {"p": survival, "kinds": kinds, "eps": float(level), "estimator": estimator,
            "runs": np.array([int(mask.sum()) for mask in at]),
            "c_mean": np.array([mean for mean, _ in c_cells]), "c_std": np.array([std for _, std in c_cells]),
            "run_p": run_p, "run_c": run_c, "run_inverse_c": inverse_c, "run_clean_loss": run_clean,
            "clean_mean": np.array([mean for mean, _ in clean_cells]),
            "clean_std": np.array([std for _, std in clean_cells]),
            "line_intercept": line_value("intercept"), "line_slope": line_value("slope"),
            "line_stderr": line_value("stderr"), "line_r2": line_value("rvalue") ** 2,
            "line_pvalue": line_value("pvalue"), "line_runs": int(positive.sum()) if line else 0,
            "run_test_error": run_error, "matched": int(matched.sum()),
            "error_r": float(across.statistic) if across else float("nan"),
            "error_pvalue": float(across.pvalue) if across else float("nan"),
            "error_within_r": within[0], "error_within_pvalue": within[1], "error_within_df": within[2],
            **inverse_c_forecasts(run_p, inverse_c)}


def draw(data: dict[str, dict], note: str):
    """Per family two rows of two panels: c per kind, the mask-averaged 1/c with its line and J_0 against p (%);
    the test error against c."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(data), 2, figsize=(14, 9.6 * len(data)), squeeze=False)
    for row, (name, d) in enumerate(data.items()):
        (ax_c, ax_inverse), (ax_clean, ax_error) = axes[2 * row], axes[2 * row + 1]
        _draw_curvature(ax_c, d, name)
        _draw_inverse(ax_inverse, d, name)
        _draw_clean(ax_clean, d, name)
        _draw_test_error(ax_error, d, name)
        for ax in (ax_c, ax_inverse, ax_clean):
            ax.set_xlabel("survival probability p the networks trained with (%)")
        for ax in (ax_c, ax_inverse, ax_clean, ax_error):
            ax.grid(alpha=0.3)
    wrapped_suptitle(fig, "Fixed trained weights (nets.noise_response); " + note, fontsize=8)
    fig.tight_layout()
    return fig


def _draw_curvature(ax, d: dict, name: str) -> None:
    percent, run_percent = 100.0 * d["p"], 100.0 * d["run_p"]
    shift = 0.12 * (np.ptp(percent) or 1.0) / max(len(percent), 2)  # kinds side by side at each p
    for index, kind in enumerate(d["kinds"]):
        color = KIND_COLORS.get(kind)
        offset = (index - (len(d["kinds"]) - 1) / 2) * shift
        ax.plot(run_percent + offset, d["run_c"][:, index], "o", color=color, ms=3, alpha=0.35)
        ax.errorbar(percent + offset, d["c_mean"][:, index], yerr=d["c_std"][:, index], color=color, marker="o",
                    ms=5, capsize=3, label=kind.replace("_", " "))
    ax.set(ylabel="c = (J_eps - J_0) / eps^2", title=f"(a) {name}: c at eps = {d['eps']:g}")
    ax.set_ylim(bottom=min(0.0, float(d["run_c"].min())))
    ax.legend(fontsize=8)


def _draw_inverse(ax, d: dict, name: str) -> None:
    percent = 100.0 * d["p"]
    ax.plot(100.0 * d["run_p"], d["run_inverse_c"], "o", color="0.4", ms=4, alpha=0.6, label="one run")
    if d["line_runs"]:
        grid = np.linspace(percent.min(), percent.max(), 50)
        ax.plot(grid, d["line_intercept"] + d["line_slope"] * (100.0 - grid), color="tab:red",
                label=(f"1/c = {d['line_intercept']:.3g} + {d['line_slope']:.3g} per point of p removed "
                       f"(r^2 = {d['line_r2']:.2f}, {d['line_runs']} runs)"))
    ax.set(ylabel="1 / (c averaged over the masks)", title=f"(b) {name}: 1/c, flatter upwards")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right")


def _draw_clean(ax, d: dict, name: str) -> None:
    ax.plot(100.0 * d["run_p"], d["run_clean_loss"], "o", color="0.4", ms=4, alpha=0.6)
    ax.errorbar(100.0 * d["p"], d["clean_mean"], yerr=d["clean_std"], color="black", marker="o", ms=5, capsize=3)
    ax.set(ylabel="J_0 (clean loss, same images)", title=f"(c) {name}: the fit it costs")


def _draw_test_error(ax, d: dict, name: str) -> None:
    ax.set(xlabel="c averaged over the masks (sharper to the right)", ylabel="final test error (%)",
           title=f"(d) {name}: test error against c")
    if d["matched"] < 3:
        ax.text(0.5, 0.5, "fewer than 3 of these runs have their training run under the results folder",
                ha="center", va="center", transform=ax.transAxes, fontsize=9)
        return
    mean_c = d["run_c"].mean(axis=1)
    colors = _viridis(len(d["p"]))
    for value, color in zip(d["p"], colors):
        at = (d["run_p"] == value) & ~np.isnan(d["run_test_error"])
        if at.any():
            ax.plot(mean_c[at], d["run_test_error"][at], "o", color=color, ms=6, label=f"p = {value:g}")
    ax.set_title(f"(d) {name}: test error against c\nPearson r over {d['matched']} runs {d['error_r']:.2f} "
                 f"(p = {d['error_pvalue']:.2g}); within each p {d['error_within_r']:.2f} "
                 f"(p = {d['error_within_pvalue']:.2g}, {d['error_within_df']} df)", fontsize=10)
    ax.legend(fontsize=8, loc="best")


def _viridis(n: int) -> list:
    """n colours from dark (the first, least noise) to light along viridis."""
    import matplotlib

    return [matplotlib.colormaps["viridis"](x) for x in np.linspace(0.0, 0.9, n)]


def to_markdown(data: dict[str, dict], note: str) -> str:
    """Per family a table with one row per p: runs, c per kind (mean +- sample std), the mean over runs of the
    mask-averaged 1/c, J_0 and the final test error of the runs whose training run was found; then the line and
    the correlations."""
    blocks = []
    for name, d in data.items():
        errors = [d["run_test_error"][d["run_p"] == p] for p in d["p"]]
        inverse = [d["run_inverse_c"][d["run_p"] == p] for p in d["p"]]
        lines = [f"**{name}: c = (J_eps - J_0) / eps^2 at eps = {d['eps']:g} ({d['estimator']} estimator) against the "
                 f"survival probability p the networks trained with.** Mean +- sample std over runs.", "",
                 "| p | runs | " + " | ".join(f"c, {kind.replace('_', ' ')}" for kind in d["kinds"])
                 + " | 1/c (mask-averaged) | J_0 | final test error (%) |",
                 "|" + "---|" * (len(d["kinds"]) + 5)]
        for row, p in enumerate(d["p"]):
            found = errors[row][~np.isnan(errors[row])]
            partly = f" ({count_of_runs(found.size)})" if 0 < found.size < d["runs"][row] else ""
            lines.append("| " + " | ".join(
                [f"{p:g}", str(int(d["runs"][row]))]
                + [f"{d['c_mean'][row, k]:.3g} +- {d['c_std'][row, k]:.2g}" for k in range(len(d["kinds"]))]
                + [_mean_or_dash(inverse[row], "{:.3f}"), f"{d['clean_mean'][row]:.4f} +- {d['clean_std'][row]:.2g}",
                   _mean_or_dash(errors[row], "{:.2f}") + partly])
                + " |")
        summary = []
        if d["line_runs"]:
            summary.append(f"least squares over {d['line_runs']} runs: 1/c = {d['line_intercept']:.4g} + "
                           f"{d['line_slope']:.4g} per point of p removed (r^2 = {d['line_r2']:.3f})")
        if d["matched"] >= 3:
            summary.append(f"final test error against mask-averaged c: Pearson r = {d['error_r']:.2f} over "
                           f"{d['matched']} runs (p = {d['error_pvalue']:.2g}), {d['error_within_r']:.2f} within each "
                           f"p (p = {d['error_within_pvalue']:.2g}, {d['error_within_df']} df)")
        for row, p in enumerate(d["forecast_p"]):
            summary.append(f"forecast of the mask-averaged 1/c of the {count_of_runs(int(d['forecast_missing'][row]))} "
                           f"still to come at p = {p:g} ({int(d['forecast_runs'][row])} measured): line "
                           f"{_band_text(d['forecast_line'][row])}, the p's own runs "
                           f"{_band_text(d['forecast_cell'][row])}")
        blocks.append("\n".join(lines) + ("\n\n" + "; ".join(summary) + "." if summary else ""))
    return "\n\n".join(blocks) + f"\n\n{note}.\n"


def _band_text(row: np.ndarray) -> str:
    """'centre (low to high)' of a forecast row (95 % band), '–' where it could not be made."""
    return "–" if np.isnan(row[0]) else f"{row[0]:.3f} ({row[1]:.3f} to {row[2]:.3f})"


def _mean_or_dash(values: np.ndarray, form: str) -> str:
    values = values[~np.isnan(values)]
    return form.format(values.mean()) if values.size else "–"


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the saved noise-response measurements against the training p and write noise_dose.md; `fast` changes
    nothing (they are read)."""
    from figures.table1 import write_text

    data, note = compute(results)
    written = save_labelled(draw, data, note, out_dir, "noise_dose")
    written.append(write_text(Path(out_dir) / "noise_dose.md", to_markdown(data, note)))
    return written
