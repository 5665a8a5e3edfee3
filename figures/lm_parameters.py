"""Test error against the number of parameters, ResNet against LM-ResNet (LM-ResNet paper, Fig. 2).

The paper's Fig. 2 plots its Table 1 (CIFAR-10, depths 20 to 164) against the parameter count: the
LM-architecture (its eq. 1) adds one scalar k_n per block, so at equal size the LM-ResNet errs less, and
LM-ResNet 56 matches ResNet 110. Here, from sweep results: one point per depth (the runs' recorded
num_parameters against the mean final test error, the sample standard deviation over seeds as error bar),
one line per lm_table column (family, starting value, stochastic depth) that has runs at two or more depths,
each point labelled with its depth. The runs are lm_table's (figures.lm_table).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.lm_table import column_label, column_order, select_lm_table_runs
from figures.output import MissingResults, save_labelled, wrapped_suptitle
from figures.results import Aggregate, group_by, results_root, sweep_command

SUMMARY = "LM-ResNet paper Fig. 2: test error against the number of parameters, ResNet vs LM-ResNet (from sweep results)"
DEPTHS = (20, 32, 44, 56, 110)  # the paper's CIFAR-10 depths (and 164, a bottleneck network, not built here)
MIN_DEPTHS = 2  # a line per column needs two sizes; a column at one depth only is left out
_COLORS = {None: "tab:blue", "zero": "tab:red", "rest": "tab:green"}


def command(results: Path | None) -> str:
    """The sweep behind the figure: both families at the paper's CIFAR-10 depths, its 160-epoch recipe."""
    models = [f"{prefix}preresnet{depth}" for depth in DEPTHS for prefix in ("", "lm_")]
    return sweep_command(models, results_root(results) / "lm_depths", seeds=4, epochs=160, schedule=(80, 120))


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """column label -> depth, num_parameters, error_mean, error_std (%), n_runs (arrays over the depths present,
    shallowest first), lm_start, stochastic_depth; and the selection's note. Columns with runs at fewer than
    MIN_DEPTHS depths are left out; MissingResults unless an LM-ResNet column remains."""
    selection = select_lm_table_runs(results)
    columns = group_by(selection.records, lambda r: (r.lm_start, r.stochastic_depth))
    columns = {key: runs for key, runs in columns.items() if len({r.depth for r in runs}) >= MIN_DEPTHS}
    if not any(start is not None for start, _ in columns):
        depths = sorted({r.depth for r in selection.records if r.is_lm})
        found = f"LM-ResNet runs of depth {', '.join(map(str, depths))} only" if depths else "no LM-ResNet runs"
        raise MissingResults(f"{found} under {results_root(results)}; the figure needs LM-ResNet runs at "
                             f"{MIN_DEPTHS} or more depths", command(results))
    data: dict[str, dict] = {}
    for start, sd in sorted(columns, key=column_order):
        by_depth = group_by(columns[(start, sd)], lambda r: r.depth)
        depths = sorted(by_depth)
        errors = [Aggregate.of([r.final_test_error for r in by_depth[d]]) for d in depths]
        parameters = []
        for depth in depths:
            counts = {int(r.attrs["num_parameters"]) for r in by_depth[depth] if r.attrs.get("num_parameters") is not None}
            if len(counts) != 1:
                raise ValueError(f"lm_parameters: runs of {by_depth[depth][0].model} record {len(counts)} parameter "
                                 f"counts ({sorted(counts)}); expected one (were they trained by different code?)")
            parameters.append(counts.pop())
        data[column_label(start, sd)] = {
            "lm_start": start, "stochastic_depth": sd, "depth": np.array(depths), "num_parameters": np.array(parameters),
            "error_mean": np.array([e.mean for e in errors]), "error_std": np.array([e.std for e in errors]),
            "n_runs": np.array([e.n for e in errors])}
    return data, selection.note()


def draw(data: dict[str, dict], note: str):
    """One line per column: mean final test error against the parameter count (log axis), points labelled by depth."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for label, d in data.items():
        style = "-" if d["stochastic_depth"] is None else "--"
        runs = "/".join(str(n) for n in sorted(set(d["n_runs"].tolist())))
        ax.errorbar(d["num_parameters"], d["error_mean"], yerr=d["error_std"], color=_COLORS[d["lm_start"]],
                    linestyle=style, marker="o", ms=4, capsize=3, label=f"{label} ({runs} runs per depth)")
        for x, y, depth in zip(d["num_parameters"], d["error_mean"], d["depth"]):
            ax.annotate(str(depth), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8,
                        color=_COLORS[d["lm_start"]])
    ax.set_xscale("log")
    ax.set(xlabel="number of parameters", ylabel="test error (%)",
           title="Test error against size: ResNet and LM-ResNet (labels: depth)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    wrapped_suptitle(fig, "Mean $\\pm$ std over seeds; " + note, fontsize=8)
    fig.tight_layout()
    return fig


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot test error against size from sweep results; `fast` changes nothing (the numbers are read)."""
    return save_labelled(draw, *compute(results), out_dir, "lm_parameters")
