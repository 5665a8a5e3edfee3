"""The learned LM coefficients k_n per residual block (LM-ResNet paper, Fig. 4 and section 2.2).

The LM step u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + f_n(u_n) (its eq. 1) has the modified equation (1 + k_n)
u' + (1 - k_n)(dt / 2) u'' = f (its eq. 3): k_n <= 0 adds acceleration, and the two-step scheme is stable for
-1 <= k_n <= 1. (a): the last epoch's k_n against the block index n, mean +- std over seeds, per LM model (and
stochastic-depth setting, and starting value u_{-1}: with lm_start "rest" the first block is an Euler step and
its k_0 gets no gradient: only weight decay moves it); (b): k_n of every block during training of one run.
Read from the `lm_k` dataset (epochs x blocks) of LM runs' metrics.h5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.lm_table import command, is_lm_table_run
from figures.output import MissingResults, count_of_runs, save_labelled, wrapped_suptitle
from figures.results import RunRecord, group_by, mean_and_std, results_root, select

SUMMARY = "LM-ResNet paper Fig. 4: learned k_n per block, final and during training (from sweep results)"


def _is_lm_run(record: RunRecord) -> bool:
    """An LM-ResNet run of lm_table's kind (no noise injection, h = 1; stochastic depth either way) that
    recorded its k_n: runs with noise or another h learn other coefficients and are not pooled with these."""
    return (is_lm_table_run(record) and record.is_lm and record.lm_k is not None and record.lm_k.ndim == 2
            and record.lm_k.shape[1] > 0)


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """label -> {block, k_mean, k_std, n_runs, model, stochastic_depth, lm_start}, plus 'trajectory' of one run
    (of the deepest network; a run starting from zero, lm_start "zero", before one with an Euler first step)."""
    selection = select(results, _is_lm_run)
    if not selection.records:
        raise MissingResults(f"no finished LM-ResNet runs with lm_k under {results_root(results)}", command(results))
    groups = group_by(selection.records, lambda r: (r.depth or 0, r.model, r.stochastic_depth, r.lm_start))
    data: dict[str, dict] = {}
    for depth, model, sd, start in sorted(groups, key=lambda k: (k[0], k[2] or 0.0, k[3] == "rest")):
        runs = groups[(depth, model, sd, start)]
        final = np.vstack([r.lm_k[-1] for r in runs])
        k_mean, k_std = mean_and_std(final)
        label = model + ("" if sd is None else f", SD p_L = {sd:g}") + (", u_{-1} = u_0" if start == "rest" else "")
        data[label] = {"model": model, "stochastic_depth": sd, "lm_start": start, "n_runs": len(runs),
                       "block": np.arange(1, final.shape[1] + 1), "k_mean": k_mean, "k_std": k_std}
    deepest = max(selection.records, key=lambda r: (r.lm_k.shape[1], r.lm_start == "zero", -r.seed))
    data["trajectory"] = {"model": deepest.model, "seed": deepest.seed, "run": deepest.name,
                          "epoch": np.arange(1, deepest.lm_k.shape[0] + 1), "lm_k": deepest.lm_k}
    return data, selection.note()


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the learned k_n from sweep results; `fast` changes nothing (the numbers are read)."""
    return save_labelled(draw, *compute(results), out_dir, "lm_coefficients")


def draw(data: dict[str, dict], note: str):
    """The figure of compute()'s data: (a) final k_n per block, (b) one run's k_n per epoch. Block numbers
    are whole on both axes that show them (a three-block network gets ticks 1, 2, 3, not 1.25). Runs with an
    Euler first block (lm_start "rest") are drawn from block 2: their k_0 has no effect (the data keep it)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax_final, ax_path) = plt.subplots(1, 2, figsize=(11, 4))
    for label, d in data.items():
        if label == "trajectory":
            continue
        first = 1 if d.get("lm_start") == "rest" else 0  # an Euler first block: its k_0 acts on nothing
        ax_final.errorbar(d["block"][first:], d["k_mean"][first:], yerr=d["k_std"][first:], marker="o", ms=3,
                          capsize=2, label=f"{label} ({count_of_runs(d['n_runs'])})")
    trajectory = data["trajectory"]
    k = trajectory["lm_k"]
    colors = plt.cm.viridis(np.linspace(0, 1, k.shape[1]))
    for n in range(k.shape[1]):
        ax_path.plot(trajectory["epoch"], k[:, n], color=colors[n], lw=1)
    scalar = plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(1, k.shape[1]))
    fig.colorbar(scalar, ax=ax_path, label="block n", ticks=MaxNLocator(integer=True))
    ax_final.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_final, ax_path):
        ax.axhspan(-1, 1, color="0.9", zorder=0, label="stable: -1 <= k_n <= 1" if ax is ax_final else None)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.grid(alpha=0.3)
    ax_final.set(xlabel="block n", ylabel="$k_n$ (last epoch)", title="(a) learned $k_n$ per block, mean $\\pm$ std")
    ax_final.legend(fontsize=8)
    ax_path.set(xlabel="epoch", ylabel="$k_n$", title=f"(b) $k_n$ during training, {trajectory['model']} seed {trajectory['seed']}")
    wrapped_suptitle(fig, note, fontsize=8)
    fig.tight_layout()
    return fig
