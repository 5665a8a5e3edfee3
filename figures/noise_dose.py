"""Flatness against the dose of training noise: c of the eps^2 law at one eps against the survival probability p.

At fixed weights the noisy objective exceeds the clean one by c eps^2 + o(eps^2) (the 1/2 eps^2 g g^T : grad^2 u
term of the backward Kolmogorov equation (3.6); figures.noise_curvature draws the law itself). The main paper's
claim is that training with noise, eps^2 = (1 - p) / (p K) of (3.1)-(3.3), flattens the landscape the network
ends in; measured at one common eps on networks trained at several p, c says by how much, dose by dose. The
numbers are what `python -m nets.noise_response --save` measured and saved under RESULTS/noise_response/ (any
sub-folder but the two-point masks' jumps/); this module only reads and plots them.

A family (data set and model) is drawn when its networks trained without noise or with Bernoulli masks were
measured at one eps at three or more p; where several eps or estimators qualify, the one with the most p is drawn,
the control variate's first. One row per family: (a) c per mask kind against p, mean +- sample std over runs,
each run a dot; (b) the mask-averaged 1/c of each run (1 / the mean of its kinds' c) with the least-squares line
against the points of p removed, a summary over the measured range, not a law; (c) J_0, the clean loss on the
same images: what the flatness cost in fit.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from figures.noise_curvature import KIND_COLORS
from figures.noise_jumps import FOLDER as JUMPS_FOLDER
from figures.output import NOISE_FREE, MissingResults, save_labelled, wrapped_suptitle
from figures.results import results_root

SUMMARY = ("Flatness against the training noise: c of the eps^2 law at one eps against the survival probability p "
           "the networks trained with (from nets.noise_response)")
FOLDER = Path("noise_response")
MIN_SURVIVAL_PROBABILITIES = 3
_BERNOULLI = re.compile(r"bernoulli p=(?P<p>[0-9.eE+-]+)")


def command(results: Path | None) -> str:
    """What produces the figure's numbers: digits PreResNet-20 runs at four p (CPU, minutes), then their c at
    eps 0.04 along three masks with the control variate, saved where the figure reads it."""
    out = results_root(results) / FOLDER / "digits_preresnet20_dose.json"
    return ("python -m nets.sweep --models preresnet20 --p 1.0 0.95 0.9 0.85 --seeds 4 --data digits "
            "--out runs/digits_dose && python -m nets.noise_response runs/digits_dose/*/ --eps 0.04 "
            "--kinds bernoulli gaussian uniform --estimator control-variate --images 1437 --draws 8 "
            f"--save {out}")


def survival_of(trained_with: str) -> float | None:
    """The Bernoulli survival probability p a network trained with (nets.noise_response.trained_with's label):
    1.0 for "no noise", p for "bernoulli p=P" alone; None for any other noise (it is not a dose of this one)."""
    if trained_with == NOISE_FREE:
        return 1.0
    match = _BERNOULLI.fullmatch(trained_with)
    return float(match["p"]) if match else None


def _measurement_files(results: Path | None) -> list[Path]:
    folder = results_root(results) / FOLDER
    jumps = results_root(results) / JUMPS_FOLDER
    if not folder.is_dir():
        return []
    return [path for path in sorted(folder.rglob("*.json")) if not path.is_relative_to(jumps)]


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """family -> p (decreasing, the distinct survival probabilities), kinds, eps, estimator, runs (per p),
    c_mean / c_std (p x kinds), run_p, run_c (runs x kinds), run_inverse_c (mask-averaged), run_clean_loss,
    clean_mean / clean_std (per p), line_intercept, line_slope (per point of p removed), line_stderr, line_r2,
    line_pvalue; and the note. MissingResults when nothing is saved or no family has three p at one eps;
    ValueError naming a file that is not nets.noise_response's JSON."""
    from figures.noise_curvature import family as family_of
    from nets.noise_response import load_saved

    files = _measurement_files(results)
    if not files:
        raise MissingResults(f"no noise-response measurements (*.json) under {results_root(results) / FOLDER}",
                             command(results))
    cells: dict[tuple[str, str, float], dict[str, tuple]] = {}
    other_noise = 0
    for record in load_saved(files):
        p = survival_of(record.trained_with) if record.batchnorm == "recorded" else None
        if p is None:
            other_noise += 1
            continue
        for level in sorted({k.eps for k in record.kinds}):
            curvature = {k.kind: k.curvature(record.clean_loss) for k in record.kinds if k.eps == level}
            key = (family_of(record.data, record.model), record.estimator, level)
            cells.setdefault(key, {}).setdefault(str(record.run), (p, curvature, record.clean_loss))
    best: dict[str, tuple] = {}
    for (name, estimator, level), runs in cells.items():
        rank = (len({p for p, _, _ in runs.values()}), estimator == "control-variate", len(runs), -level)
        if name not in best or rank > best[name][0]:
            best[name] = (rank, estimator, level, list(runs.values()))
    data = {name: _family(estimator, level, runs) for name, (rank, estimator, level, runs) in best.items()
            if rank[0] >= MIN_SURVIVAL_PROBABILITIES}
    data = {name: values for name, values in data.items() if values is not None}
    if not data:
        raise MissingResults(f"no network family measured at one eps at {MIN_SURVIVAL_PROBABILITIES} or more "
                             f"survival probabilities under {results_root(results) / FOLDER}", command(results))
    counts = "; ".join(f"{name}: {len(d['run_p'])} runs at p = {', '.join(f'{p:g}' for p in d['p'])}, eps "
                       f"{d['eps']:g}, {d['estimator']} estimator" for name, d in data.items())
    note = (f"c = (J_eps - J_0) / eps^2 on the runs' own training images, noise drawn as in training, BatchNorm in "
            f"eval mode; mean +- sample std over runs; {counts}; the line is least squares over runs, a summary of "
            f"the measured range, not a law; {other_noise} measured network(s) trained with other noise left out; "
            f"from {', '.join(str(p.relative_to(results_root(results) / FOLDER)) for p in files)}")
    return data, note


def _family(estimator: str, level: float, runs: list[tuple]) -> dict | None:
    """The arrays of one family's drawn measurement (compute's docstring); None when its runs share no kind."""
    from scipy import stats

    kinds = [k for k in runs[0][1] if all(k in curvature for _, curvature, _ in runs)]
    if not kinds:
        return None
    run_p = np.array([p for p, _, _ in runs])
    run_c = np.array([[curvature[k] for k in kinds] for _, curvature, _ in runs])
    run_clean = np.array([clean for _, _, clean in runs])
    survival = np.array(sorted(set(run_p.tolist()), reverse=True))
    at = [run_p == p for p in survival]
    spread = lambda rows: np.std(rows, axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1:])  # noqa: E731
    inverse_c = 1.0 / run_c.mean(axis=1)
    line = stats.linregress(100.0 * (1.0 - run_p), inverse_c)
    return {"p": survival, "kinds": kinds, "eps": float(level), "estimator": estimator,
            "runs": np.array([int(mask.sum()) for mask in at]),
            "c_mean": np.array([run_c[mask].mean(axis=0) for mask in at]),
            "c_std": np.array([spread(run_c[mask]) for mask in at]),
            "run_p": run_p, "run_c": run_c, "run_inverse_c": inverse_c, "run_clean_loss": run_clean,
            "clean_mean": np.array([run_clean[mask].mean() for mask in at]),
            "clean_std": np.array([spread(run_clean[mask][:, None])[0] for mask in at]),
            "line_intercept": float(line.intercept), "line_slope": float(line.slope),
            "line_stderr": float(line.stderr), "line_r2": float(line.rvalue ** 2), "line_pvalue": float(line.pvalue)}


def draw(data: dict[str, dict], note: str):
    """Per family a row of three panels against p (%): c per kind, the mask-averaged 1/c with its line, J_0."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(data), 3, figsize=(18, 4.8 * len(data)), squeeze=False)
    for (ax_c, ax_inverse, ax_clean), (name, d) in zip(axes, data.items()):
        percent, run_percent = 100.0 * d["p"], 100.0 * d["run_p"]
        shift = 0.12 * (np.ptp(percent) or 1.0) / max(len(percent), 2)  # kinds side by side at each p
        for index, kind in enumerate(d["kinds"]):
            color = KIND_COLORS.get(kind)
            offset = (index - (len(d["kinds"]) - 1) / 2) * shift
            ax_c.plot(run_percent + offset, d["run_c"][:, index], "o", color=color, ms=3, alpha=0.35)
            ax_c.errorbar(percent + offset, d["c_mean"][:, index], yerr=d["c_std"][:, index], color=color,
                          marker="o", ms=5, capsize=3, label=kind.replace("_", " "))
        ax_c.set(ylabel="c = (J_eps - J_0) / eps^2", title=f"(a) {name}: c at eps = {d['eps']:g}")
        ax_c.set_ylim(bottom=min(0.0, float(d["run_c"].min())))
        ax_inverse.plot(run_percent, d["run_inverse_c"], "o", color="0.4", ms=4, alpha=0.6, label="one run")
        grid = np.linspace(percent.min(), percent.max(), 50)
        ax_inverse.plot(grid, d["line_intercept"] + d["line_slope"] * (100.0 - grid), color="tab:red",
                        label=(f"1/c = {d['line_intercept']:.3g} + {d['line_slope']:.3g} per point of p removed "
                               f"(r^2 = {d['line_r2']:.2f}, {len(run_percent)} runs)"))
        ax_inverse.set(ylabel="1 / (c averaged over the masks)", title=f"(b) {name}: 1/c, flatter upwards")
        ax_inverse.set_ylim(bottom=0)
        ax_clean.plot(run_percent, d["run_clean_loss"], "o", color="0.4", ms=4, alpha=0.6)
        ax_clean.errorbar(percent, d["clean_mean"], yerr=d["clean_std"], color="black", marker="o", ms=5, capsize=3)
        ax_clean.set(ylabel="J_0 (clean loss, same images)", title=f"(c) {name}: the fit it costs")
        for ax in (ax_c, ax_inverse, ax_clean):
            ax.set_xlabel("survival probability p the networks trained with (%)")
            ax.grid(alpha=0.3)
        ax_c.legend(fontsize=8)
        ax_inverse.legend(fontsize=8, loc="upper right")
    wrapped_suptitle(fig, "Fixed trained weights (nets.noise_response); " + note, fontsize=8)
    fig.tight_layout()
    return fig


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the saved noise-response measurements against the training p; `fast` changes nothing (they are read)."""
    return save_labelled(draw, *compute(results), out_dir, "noise_dose")
