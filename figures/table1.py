"""Table 1 of the main paper (section 4.2.2): top-1 test error (%) of PreResNet-20/56/110 on CIFAR-10
against the survival probability p of the stochastic training (4.2); p = 100% is the plain network.

Each cell is the mean over seeds of the last epoch's test error with the best run (lowest error) in
brackets; the best mean of each row is bold. The caption says how sure each row's differences are (Fig. 6's
question, read off the same runs): the least-squares slope of the final test error and training loss per
percentage point of p removed, and each p < 1 against p = 1 by Welch's t-test, on the last epoch and on the
mean of the last quarter of the epochs (less of one epoch's luck; row_statements), each also paired by seed
(runs of one seed share their initial weights and batches; figures.seed_blocks). Written as
Markdown (table1.md), LaTeX (table1.tex) and HDF5 (table1.h5) from the runs of `python -m nets.sweep` under
--results.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from kolmogorov._atomic import atomic_output
from figures.output import MissingResults, count_of_runs, save_data
from figures.results import (Aggregate, RunRecord, Selection, Trend, final_value_trends, group_by,
                             is_preresnet_architecture, late_window, results_root, select, sweep_command,
                             welch_difference)
from figures.seed_blocks import paired_runs, seed_blocked_trend

SUMMARY = "Table 1: CIFAR-10 test error of PreResNet-20/56/110 vs survival probability p (from sweep results)"
MODELS = ("preresnet20", "preresnet56", "preresnet110")
P_VALUES = (0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0)


def command(results: Path | None) -> str:
    """The sweep that produces Table 1 under results/table1."""
    return sweep_command(MODELS, results_root(results) / "table1", seeds=4, p=P_VALUES)


def is_table1_run(record: RunRecord) -> bool:
    """A plain-architecture PreResNet with Bernoulli (or no) injection, h = 1, no stochastic depth."""
    return (is_preresnet_architecture(record) and record.survival_p is not None
            and record.stochastic_depth is None and record.h == 1.0)


def select_table1_runs(results: Path | None, keep_model: Callable[[str], bool] | None = None) -> Selection:
    """The finished Table 1 runs (is_table1_run) whose model passes keep_model (all when None), of one recipe.

    Of the recipes present, the one with the most survival probabilities is kept: a Table 1 sweep, not the
    p = 1 runs that other sweeps (robust-ResNet h = 1, LM-ResNet without stochastic depth) leave under the
    same results root with their own recipes.
    """
    return select(results, lambda r: is_table1_run(r) and (keep_model is None or keep_model(r.model)),
                  score=lambda runs: len({r.survival_p for r in runs}))


@dataclass
class ErrorTable:
    """Cells (row, column) -> Aggregate of the final test error (%) over seeds; None where no run."""

    title: str
    row_labels: list[str]
    col_labels: list[str]
    cells: dict[tuple[int, int], Aggregate]
    note: str

    def best_in_row(self, row: int) -> set[int]:
        """The columns of the row's lowest mean as printed (two decimals: means that print alike tie, and all
        are bold); empty for a row of fewer than two cells, where nothing was compared."""
        present = {c: round(agg.mean, 2) for (r, c), agg in self.cells.items() if r == row}
        if len(present) < 2:
            return set()
        lowest = min(present.values())
        return {c for c, mean in present.items() if mean == lowest}

    def counts_note(self) -> str:
        """How many runs each mean averages: the usual count (the most frequent; the larger on a tie), then the
        cells that hold another number, e.g. 'mean of 4 runs per cell, except PreResNet-20 97.5%: 2 runs'."""
        counts = Counter(agg.n for agg in self.cells.values())
        usual = max(counts, key=lambda n: (counts[n], n))
        note = f"mean of {count_of_runs(usual)} per cell"
        others = [f"{self.row_labels[r]} {self.col_labels[c]}: {count_of_runs(a.n)}"
                  for (r, c), a in sorted(self.cells.items()) if a.n != usual]
        return note + (f", except {', '.join(others)}" if others else "")


def row_statements(label: str, by_p: dict[float, list[RunRecord]]) -> list[str]:
    """How sure one row's differences are: over all its runs the least-squares slope of the final test error and
    of the final training loss per percentage point of p removed (figures.results.final_value_trends: two-sided
    p-values, runs as independent draws) and, where seeds repeat across p, the same line with one intercept per
    seed (figures.seed_blocks.seed_blocked_trend: "within seeds"); then each p < 1 against p = 1: the
    difference of the mean test errors with Welch's two-sided p-value (figures.results.welch_difference) and,
    over the seeds both cells hold, the paired t-test (figures.seed_blocks.paired_difference: runs of one seed
    share their initial weights and batches), and the same two for each run's mean test error over the last
    quarter of the epochs (figures.results.late_window, e.g. epochs 19-24 of 24; left out when that is the last
    epoch alone). A slope needs 3 runs at 2 or more p, a difference 2 runs on each side, a paired one 2 shared
    seeds; what cannot be computed is left out."""
    runs = [run for p in sorted(by_p) for run in by_p[p]]
    trends = final_value_trends(runs)
    error, loss = trends["test_error"], trends["train_loss"]
    statements = []
    if error is not None and loss is not None:
        survival_p, seeds = [r.survival_p for r in runs], [r.seed for r in runs]
        blocked_error = seed_blocked_trend(survival_p, seeds, [r.final_test_error for r in runs])
        blocked_loss = seed_blocked_trend(survival_p, seeds, [r.final_train_loss for r in runs])
        statements.append(f"{label} over {error.n} runs: test error {error.slope:+.2g} points per point of p removed "
                          f"(p = {error.pvalue:.2g}{_within_seeds(blocked_error)}), final training loss "
                          f"{loss.slope:+.2g} (p = {loss.pvalue:.2g}{_within_seeds(blocked_loss)})")
    window = late_window(min(run.epochs for runs in by_p.values() for run in runs)) if by_p else 1
    plain = by_p.get(1.0, [])
    for p in sorted(by_p):
        if p >= 1.0:
            continue
        difference = welch_difference([r.final_test_error for r in by_p[p]], [r.final_test_error for r in plain])
        if difference is None:
            continue
        final = paired_runs(by_p[p], plain, lambda r: r.final_test_error)
        text = (f"{label} {100 * p:g}% minus 100%: {difference[0]:+.2f} points (Welch p = {difference[1]:.2g}"
                + (f"; paired over {final.n} seeds: {final.difference:+.2f}, p = {final.pvalue:.2g}" if final else ""))
        if window > 1:
            late = welch_difference([r.late_test_error(window) for r in by_p[p]],
                                    [r.late_test_error(window) for r in plain])
            late_paired = paired_runs(by_p[p], plain, lambda r: r.late_test_error(window))
            text += f"; mean of the last {window} epochs: {late[0]:+.2f}, p = {late[1]:.2g}"
            if late_paired:
                text += f", paired {late_paired.difference:+.2f}, p = {late_paired.pvalue:.2g}"
        statements.append(text + ")")
    return statements


def _within_seeds(trend: Trend | None) -> str:
    return "" if trend is None else f"; within seeds {trend.slope:+.2g}, p = {trend.pvalue:.2g}"


def depth_order(models: Iterable[str]) -> list[str]:
    """The distinct model names, shallowest first (by the depth their name carries: preresnet8, preresnet20, ...)."""
    return sorted(set(models), key=lambda m: (int(re.sub(r"\D", "", m)), m))


def table1_rows(results: Path | None) -> tuple[Selection, dict[str, dict[float, list[RunRecord]]]]:
    """The finished Table 1 runs under results by row and column: {model: {p: runs}}, models shallowest first;
    MissingResults (with the sweep command) when none."""
    selection = select_table1_runs(results)
    if not selection.records:
        raise MissingResults(f"no finished Table 1 runs under {results_root(results)}", command(results))
    groups = group_by(selection.records, lambda r: (r.model, r.survival_p))
    return selection, {model: {p: runs for (m, p), runs in groups.items() if m == model}
                       for model in depth_order(model for model, _ in groups)}


def compute(results: Path | None) -> ErrorTable:
    """Table 1 from the finished runs under results; MissingResults (with the sweep command) when none."""
    selection, rows = table1_rows(results)
    models = list(rows)
    ps = sorted({p for by_p in rows.values() for p in by_p})
    cells = {(models.index(m), ps.index(p)): Aggregate.of([r.final_test_error for r in runs])
             for m, by_p in rows.items() for p, runs in by_p.items()}
    row_labels = [f"PreResNet-{re.sub(r'[^0-9]', '', m)}" for m in models]
    statements = [statement for model, label in zip(models, row_labels)
                  for statement in row_statements(label, rows[model])]
    return ErrorTable(title="Top-1 test error (%) against the survival probability p", row_labels=row_labels,
                      col_labels=[f"{100 * p:g}%" for p in ps], cells=cells,
                      note="; ".join([selection.note(), *statements]))


def _cell_text(agg: Aggregate) -> str:
    return f"{agg.mean:.2f} ({agg.best:.2f})"


def _row_cells(table: ErrorTable, row: int, missing: str, bold: Callable[[str], str]) -> list[str]:
    """The row's cells as mean (best run), `missing` where no run, the best mean(s) of the row through `bold`."""
    best = table.best_in_row(row)
    cells = []
    for c in range(len(table.col_labels)):
        agg = table.cells.get((row, c))
        text = missing if agg is None else _cell_text(agg)
        cells.append(bold(text) if c in best else text)
    return cells


def to_markdown(table: ErrorTable, row_header: str = "p") -> str:
    """Markdown: mean (best run) per cell, the best mean of each row in bold."""
    lines = [f"**{table.title}.** Mean of seeds (best run in brackets); best mean per row in bold (means that print alike all bold; none in a row of one cell); "
             f"{table.counts_note()}; {table.note}.", "",
             "| " + " | ".join([row_header, *table.col_labels]) + " |",
             "|" + "---|" * (len(table.col_labels) + 1)]
    for r, label in enumerate(table.row_labels):
        cells = _row_cells(table, r, "–", lambda text: f"**{text}**")
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("%", r"\%").replace("_", r"\_").replace("&", r"\&").replace("#", r"\#")


def to_latex(table: ErrorTable, row_header: str = "$p$") -> str:
    """A booktabs tabular inside a table environment; the best mean of each row in bold."""
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * len(table.col_labels) + "}", r"\toprule",
             " & ".join([row_header, *[_latex_escape(c) for c in table.col_labels]]) + r" \\", r"\midrule"]
    for r, label in enumerate(table.row_labels):
        cells = _row_cells(table, r, "--", lambda text: rf"\textbf{{{text}}}")
        lines.append(" & ".join([_latex_escape(label), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{_latex_escape(table.title)}. Mean of seeds (best run in brackets); best mean per row in bold (means that print alike all bold; none in a row of one cell); "
              rf"{_latex_escape(table.counts_note())}; {_latex_escape(table.note)}.}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> Path:
    """Write text to path atomically (temporary file, then os.replace)."""
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def save_table(table: ErrorTable, out_dir: Path, name: str, row_header_md: str, row_header_tex: str) -> list[Path]:
    """table -> out_dir/name.md, name.tex and name.h5 (one group per row: mean, std, best, n per column)."""
    groups = {}
    for r, label in enumerate(table.row_labels):
        columns = [c for c in range(len(table.col_labels)) if (r, c) in table.cells]
        groups[label] = {"columns": np.array([table.col_labels[c] for c in columns], dtype="S"),
                         "mean_error_percent": np.array([table.cells[(r, c)].mean for c in columns]),
                         "std_error_percent": np.array([table.cells[(r, c)].std for c in columns]),
                         "best_error_percent": np.array([table.cells[(r, c)].best for c in columns]),
                         "n_runs": np.array([table.cells[(r, c)].n for c in columns])}
    return [write_text(Path(out_dir) / f"{name}.md", to_markdown(table, row_header_md)),
            write_text(Path(out_dir) / f"{name}.tex", to_latex(table, row_header_tex)),
            save_data(out_dir, name, groups, attrs={"title": table.title, "note": table.note})]


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Write Table 1 from sweep results (`fast` changes nothing: the numbers are read, not computed)."""
    return save_table(compute(results), out_dir, "table1", "p", "$p$")
