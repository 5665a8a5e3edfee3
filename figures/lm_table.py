"""ResNet against LM-ResNet, with and without stochastic depth (LM-ResNet paper, Tables 1 and 3).

The LM-architecture u_{n+1} = (1 - k_n) u_n + k_n u_{n-1} + f_n(u_n) (its eq. 1) is a two-step
discretization of u_t = f(u); stochastic depth (its section 3.2) drops block n with probability
(n / L)(1 - p_L), a weak approximation of dX = p(t) f dt + sqrt(p(t)(1 - p(t))) f dB. Rows are depths,
columns the families (ResNet, LM-ResNet, and LM-ResNet with an Euler first step (lm_start "rest") when such
runs are present; each also with stochastic depth p_L for every p_L present); cells hold the mean final
test error (%) over seeds with the best run in brackets, best per row in bold; the note compares each LM
column with the families before it (difference of means, Welch's p).
Written as lm_table.md, lm_table.tex and lm_table.h5 from sweep results.
"""
from __future__ import annotations

import re
from pathlib import Path

from figures.output import MissingResults
from figures.results import (Aggregate, RunRecord, Selection, group_by, recipe_label, results_root, select,
                             sweep_command, welch_difference)
from figures.seed_blocks import PairedDifference, paired_runs
from figures.table1 import ErrorTable, save_table

SUMMARY = "LM-ResNet vs ResNet, with and without stochastic depth: CIFAR test error (from sweep results)"
MODELS = ("preresnet56", "lm_preresnet56", "preresnet110", "lm_preresnet110")
STOCHASTIC_DEPTH = ("none", 0.8, 0.5)
_FAMILY = re.compile(r"^(lm_)?preresnet\d+$")
PAPER_SD_RECIPE = ("the LM-ResNet paper trained its stochastic-depth columns 500 epochs "
                   "(lr divided by 10 at epochs 250 and 375)")


def command(results: Path | None) -> str:
    """The sweep behind the LM table: both families, depths 56 and 110, with and without stochastic depth.

    The LM-ResNet paper trains 160 epochs with the learning rate divided by 10 at epochs 80 and 120; its
    stochastic-depth runs (Table 3) train 500 epochs, divided at 250 and 375. One recipe serves every column
    here, and the table's note says so (recipe_note).
    """
    return sweep_command(MODELS, results_root(results) / "lm", seeds=4, stochastic_depth=STOCHASTIC_DEPTH,
                         epochs=160, schedule=(80, 120))


def is_lm_table_run(record: RunRecord) -> bool:
    """PreResNet or LM-PreResNet without noise injection (p = 1) and h = 1; stochastic depth either way."""
    return bool(_FAMILY.match(record.model)) and record.survival_p == 1.0 and record.h == 1.0


#: Column family of a run's RunRecord.lm_start (None: not an LM-ResNet), in column order.
FAMILIES = {None: "ResNet", "zero": "LM-ResNet", "rest": "LM-ResNet, Euler first step (u_{-1} = u_0)"}


def column_label(lm_start: str | None, stochastic_depth: float | None) -> str:
    family = FAMILIES[lm_start]
    return family if stochastic_depth is None else f"{family} + SD (p_L = {stochastic_depth:g})"


def column_order(column: tuple[str | None, float | None]) -> tuple:
    """Sort key of a column (lm_start, stochastic_depth): the columns without stochastic depth first, then by
    p_L falling (0.8 before 0.5); within each, the families in FAMILIES' order."""
    start, stochastic_depth = column
    return stochastic_depth is not None, -(stochastic_depth or 0.0), list(FAMILIES).index(start)


def recipe_note(records: list[RunRecord]) -> str:
    """The caption's statement that one recipe serves every column, unlike the LM-ResNet paper."""
    stated = " (stated above)" if recipe_label(records) else ""
    return f"all columns share one recipe{stated}; {PAPER_SD_RECIPE}"


def comparisons(groups: dict[tuple, list[RunRecord]]) -> list[str]:
    """One clause per LM column and depth against each family before it in FAMILIES (ResNet; for the Euler
    first step also LM-ResNet) of the same depth and stochastic depth: the difference of the mean final test
    error (points) and of the mean final training loss, each with Welch's two-sided p-value
    (figures.results.welch_difference) and, over the seeds both hold, the paired t-test's
    (figures.seed_blocks.paired_runs: runs of one seed see the same mini-batches); pairs with fewer than 2 runs
    on either side are left out."""
    clauses = []
    families = list(FAMILIES)
    for (depth, start, sd), runs in groups.items():
        for other in families[:families.index(start)]:
            baseline = groups.get((depth, other, sd), [])
            error = welch_difference([r.final_test_error for r in runs], [r.final_test_error for r in baseline])
            loss = welch_difference([r.final_train_loss for r in runs], [r.final_train_loss for r in baseline])
            if error is None or loss is None:
                continue
            error_paired = paired_runs(runs, baseline, lambda r: r.final_test_error)
            loss_paired = paired_runs(runs, baseline, lambda r: r.final_train_loss)
            clauses.append(f"{column_label(start, sd)} minus {column_label(other, sd)} at depth {depth} "
                           f"({len(runs)} against {len(baseline)} runs): test error {error[0]:+.2f} points "
                           f"(Welch p = {error[1]:.2g}{_paired_text(error_paired)}), final training loss "
                           f"{loss[0]:+.4f} (p = {loss[1]:.2g}{_paired_text(loss_paired)})")
    return clauses


def _paired_text(paired: PairedDifference | None) -> str:
    return "" if paired is None else f", paired over {paired.n} seeds p = {paired.pvalue:.2g}"


def select_lm_table_runs(results: Path | None) -> Selection:
    """The table's runs (is_lm_table_run) under results, of one recipe: among recipes, one with LM runs."""
    return select(results, is_lm_table_run, score=lambda runs: any(r.is_lm for r in runs))


def compute(results: Path | None) -> ErrorTable:
    """The table from the finished runs under results; MissingResults unless both families are present."""
    selection = select_lm_table_runs(results)
    if not any(r.is_lm for r in selection.records):
        raise MissingResults(f"no finished LM-ResNet runs under {results_root(results)}", command(results))
    groups = group_by(selection.records, lambda r: (r.depth, r.lm_start, r.stochastic_depth))
    depths = sorted({depth for depth, _, _ in groups})
    col_keys = sorted({(start, sd) for _, start, sd in groups}, key=column_order)
    cells = {}
    for (depth, start, sd), runs in groups.items():
        cells[(depths.index(depth), col_keys.index((start, sd)))] = Aggregate.of([r.final_test_error for r in runs])
    return ErrorTable(title="Top-1 test error (%): ResNet against LM-ResNet, with and without stochastic depth (SD)",
                      row_labels=[f"{depth}, pre-act" for depth in depths],
                      col_labels=[column_label(start, sd) for start, sd in col_keys], cells=cells,
                      note="; ".join([selection.note(), recipe_note(selection.records), *comparisons(groups)]))


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Write the LM table from sweep results; `fast` changes nothing (the numbers are read)."""
    return save_table(compute(results), out_dir, "lm_table", "depth", "depth")
