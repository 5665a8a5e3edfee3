"""The eps^2 law's c against the size of a mask's jumps at fixed variance and trained weights.

Two-point masks of mean one and variance K eps^2 take the values 1 - a and 1 + K eps^2 / a; the jump a runs from
sqrt(K eps^2) (a fair coin of small moves: the Gaussian mask's c to leading order) to 1 (the Bernoulli mask of
(3.1)). To second order in m - 1 every mask has the same c; a c that changes with a shows the terms beyond it
(docs/models.md, "jump size at fixed variance"). The numbers are what `python -m nets.two_point_masks --save`
measured and saved under RESULTS/noise_response/jumps/; this module only reads and plots them.

One panel per data set and model: c against a, mean +- sample std over the runs of each training setting (solid
for the noise-free networks), each run's own curve thin behind it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, count_of_runs, in_noise_order, save_labelled, wrapped_suptitle
from figures.results import results_root

SUMMARY = ("c of the eps^2 law against the jump size of two-point masks of one variance, from small moves to "
           "dropout (from nets.two_point_masks)")
FOLDER = Path("noise_response") / "jumps"
_STYLES = ("-", "--", ":", "-.")
_COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive")


def line_look(index: int) -> tuple[str, str]:
    """(color, linestyle) of a panel's index-th line: no two of the first len(_COLORS) x len(_STYLES) lines alike
    (the style shifts by one each time the colours wrap around)."""
    return _COLORS[index % len(_COLORS)], _STYLES[(index + index // len(_COLORS)) % len(_STYLES)]


def command(results: Path | None) -> str:
    """What produces the figure's numbers: the digits PreResNet-20 runs at p = 1.0 and 0.9 (CPU, minutes), then
    their c at eps 0.04 under the default jumps, saved where the figure reads it."""
    out = results_root(results) / FOLDER / "digits_preresnet20.json"
    return ("python -m nets.sweep --models preresnet20 --p 1.0 0.9 --seeds 4 --data digits --out runs/digits_nr "
            "&& python -m nets.two_point_masks runs/digits_nr/preresnet20-*/ --eps 0.04 --images 1437 --draws 8 "
            f"--save {out}")


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """label "family, setting" (family: data set and model) -> family, setting, eps, jump (increasing), c_mean,
    c_std, runs, c_runs (runs x jumps); and the note. MissingResults when no JSON is saved; ValueError naming a
    file that is not nets.two_point_masks' JSON, or a family measured at several eps."""
    from figures.noise_curvature import family as family_of
    from nets.trained_run import read_saved
    from nets.two_point_masks import from_json

    folder = results_root(results) / FOLDER
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise MissingResults(f"no two-point-mask measurements (*.json) under {folder}", command(results))
    groups: dict[tuple[str, str], list] = {}
    levels_of: dict[str, set[float]] = {}
    for r in read_saved(files, from_json):
        family = family_of(r.data, r.model, r.split)
        runs = groups.setdefault((family, r.trained_with), [])
        if any(other.run == r.run for other in runs):
            raise ValueError(f"{family}, {r.trained_with}: {r.run} is measured twice; one measurement per run")
        runs.append(r)
        levels_of.setdefault(family, set()).add(r.eps)
    for family, levels in levels_of.items():  # one panel per family, titled by its eps
        if len(levels) > 1:
            raise ValueError(f"{family}: measured at several eps ({sorted(levels)}); one eps per family")
    data: dict[str, dict] = {}
    for (family, setting), runs in groups.items():
        levels = {r.eps for r in runs}
        jumps = sorted({round(j.jump, 9) for r in runs for j in r.jumps})
        c = np.full((len(runs), len(jumps)), np.nan)
        for i, r in enumerate(runs):
            for j in r.jumps:
                c[i, jumps.index(round(j.jump, 9))] = j.curvature(r.clean_loss, r.eps)
        counts = np.sum(~np.isnan(c), axis=0)
        spread = np.array([np.nanstd(column, ddof=1) if n > 1 else 0.0 for column, n in zip(c.T, counts)])
        data[f"{family}, {setting}"] = {"family": family, "setting": setting, "eps": float(levels.pop()),
                                        "jump": np.array(jumps), "c_mean": np.nanmean(c, axis=0), "c_std": spread,
                                        "runs": counts, "c_runs": c}
    counts = ", ".join(f"{d['family']} {d['setting']} ({count_of_runs(int(d['runs'].max()))}, eps {d['eps']:g})"
                       for d in data.values())
    note = (f"c = (J_eps - J_0) / eps^2 under two-point masks of variance K eps^2 (control variate, the runs' own "
            f"training images unless a family says test split, BatchNorm in eval mode); mean +- sample std over "
            f"runs: {counts}; from {', '.join(p.name for p in files)}")
    return data, note


def draw(data: dict[str, dict], note: str):
    """One panel per family: c against the jump a, a line per training setting (the noise-free one solid)."""
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(d["family"] for d in data.values()))
    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 4.8), squeeze=False)
    for ax, family in zip(axes[0], families):
        lines = in_noise_order((d for d in data.values() if d["family"] == family), lambda d: d["setting"])
        for index, d in enumerate(lines):
            color, style = line_look(index)
            for run in d["c_runs"]:
                ax.plot(d["jump"], run, color=color, linestyle=style, alpha=0.25, linewidth=0.8)
            ax.errorbar(d["jump"], d["c_mean"], yerr=d["c_std"], color=color, linestyle=style, marker="o", ms=4,
                        capsize=3, label=f"{d['setting']} ({count_of_runs(int(d['runs'].max()))})")
        eps = lines[0]["eps"]
        ax.set(xlabel="jump a (sqrt(K eps^2): small moves ... 1: dropout)", ylabel="c = (J_eps - J_0) / eps^2",
               title=f"{family}, eps = {eps:g}")
        low = min(float(np.nanmin(d["c_runs"])) for d in lines)
        if low >= 0:  # from 0 unless a measured c is negative (noise that lowers the loss): never clip a run
            ax.set_ylim(bottom=0)
        else:
            ax.axhline(0.0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    wrapped_suptitle(fig, "Two-point masks at fixed weights (nets.two_point_masks); " + note, fontsize=8)
    fig.tight_layout()
    return fig


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the saved two-point-mask measurements; `fast` changes nothing (the numbers are read)."""
    return save_labelled(draw, *compute(results), out_dir, "noise_jumps")
