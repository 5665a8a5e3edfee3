"""Noise kinds at a matched noise level: does only eps matter? (main paper, section 3.4)

A residual block with any mean-one multiplicative mask on its branch, X_{k+1} = X_k + F(X_k) m_k, is one
Euler-Maruyama step of the same SDE dX = f dt + eps g dW, with eps^2 = Var(m_k) / K for K blocks: Bernoulli
eps^2 = (1 - p) / (p K) (eq. 3.2), Gaussian eps = nu / sqrt(K) (3.13), uniform eps = beta / sqrt(3K) (3.14).
To first weak order the kind of noise enters only through eps, so runs of different kinds at one eps should
train alike. This figure puts that to the test on sweep results: final training loss and test error against
eps, one series per noise kind and one row per depth, and a table (noise_kinds.md) comparing, at each eps
where several kinds were trained, each kind with Bernoulli (difference of means, Welch's t-test).

Stochastic depth joins as a fourth kind: block l keeps its whole branch with probability
p_l = 1 - (l/K)(1 - p_L), an Euler-Maruyama step of dX = f dt + eps(t) f dW with eps_l^2 = (1 - p_l)/(p_l K)
(LM-ResNet paper section 3.2). Its eps is the rms level eps_rms^2 = (1/K) sum_l eps_l^2 (the same integrated
diffusion; kolmogorov.stochastic_depth_epsilon), and its diffusion is rank one (one draw per branch, g = f)
where the masks' is diagonal (a draw per unit): at matched eps it tests whether that structure matters.

eps is computed from each run's recorded noise parameter with kolmogorov.noise_level.epsilon and K, the number
of residual blocks of the model as nets.build_model builds it (nets.sweep.model_blocks: 3n for the basic-block
PreResNets of depth 6n + 2, 54 for the bottleneck PreResNet-164; imports torch); the trainer records the same
number as the run's `epsilon` attribute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from figures.output import MissingResults, save_outputs, wrapped_suptitle
from figures.results import (Aggregate, RunRecord, group_by, is_preresnet_architecture, results_root, select,
                             sweep_command, welch_difference)
from figures.seed_blocks import PairedDifference, paired_runs
from kolmogorov._checks import check_choice
from kolmogorov.noise_level import PARAMETER_OF  # noise kind -> "p" / "nu" / "beta"; re-exported
from kolmogorov.noise_level import STOCHASTIC_DEPTH  # stochastic depth without a mask, at its rms eps

SUMMARY = ("Noise kinds at matched eps (main paper section 3.4): training loss and test error vs eps for "
           "Bernoulli, Gaussian and uniform masks and stochastic depth (from sweep results)")
KINDS = ("bernoulli", "gaussian", "uniform")
ALL_KINDS = ("none",) + KINDS + (STOCHASTIC_DEPTH,)
#: relative tolerance under which two runs' eps count as the same level (parameters typed to 5 digits)
EPS_RTOL = 1e-3
#: Table 1's survival probability p = 0.9 and the Gaussian / uniform parameters of the same mask variance
#: (1 - p) / p = 1/9: nu = 1/3, beta = sqrt(3) / 3.
COMMAND_GRID = {"p": (0.9, 1.0), "nu": (0.33333,), "beta": (0.57735,)}
#: the same level for stochastic depth: eps = sqrt((1 - p) / (p K)) = 1/9 at p = 0.9, K = 9 (PreResNet-20),
#: to the 5 digits typed; the sweep matches p_L to it (nets.sweep.matched_stochastic_depth)
STOCHASTIC_DEPTH_GRID = {"noise": (STOCHASTIC_DEPTH,), "eps": (0.11111,)}


def command(results: Path | None) -> str:
    """The sweeps behind the figure: PreResNet-20 with Bernoulli p = 0.9 and the Gaussian and uniform masks of
    the same variance, beside the plain network; then stochastic depth at the same rms eps."""
    out = results_root(results) / "noise_kinds"
    return (sweep_command(("preresnet20",), out, seeds=4, **COMMAND_GRID) + " && "
            + sweep_command(("preresnet20",), out, seeds=4, **STOCHASTIC_DEPTH_GRID))


def residual_blocks(model: str) -> int:
    """K, the number of residual blocks of `model` as built (nets.sweep.model_blocks; ValueError naming the model
    for a name nets.build_model does not know)."""
    from nets.sweep import model_blocks

    return model_blocks(model)


def _has_mask(record: RunRecord) -> bool:
    return not (record.noise is None or (record.noise == "bernoulli" and float(record.attrs["p"]) == 1.0))


def kind_of(record: RunRecord) -> str:
    """The run's injection: one of KINDS, STOCHASTIC_DEPTH (without a mask), or "none" (no injection, or
    Bernoulli p = 1, without stochastic depth)."""
    if _has_mask(record):
        return record.noise
    return "none" if record.stochastic_depth is None else STOCHASTIC_DEPTH


def parameter_of(record: RunRecord) -> float | None:
    """The injection's parameter (p, nu, beta, or stochastic depth's p_L), None for a run without injection."""
    kind = kind_of(record)
    if kind == STOCHASTIC_DEPTH:
        return float(record.stochastic_depth)
    return None if kind == "none" else float(record.attrs[PARAMETER_OF[kind]])


def eps_of(record: RunRecord) -> float:
    """The run's noise level eps (eqs. 3.2, 3.13, 3.14; stochastic depth: its rms level, LM-ResNet paper
    section 3.2); 0 without injection."""
    from kolmogorov.noise_level import epsilon, stochastic_depth_epsilon

    kind = kind_of(record)
    if kind == "none":
        return 0.0
    if kind == STOCHASTIC_DEPTH:
        return stochastic_depth_epsilon(parameter_of(record), residual_blocks(record.model))
    return epsilon(kind, residual_blocks(record.model), **{PARAMETER_OF[kind]: parameter_of(record)})


def is_noise_kind_run(record: RunRecord) -> bool:
    """A plain-architecture PreResNet, h = 1, with one injection: a multiplicative mask of any kind, or stochastic
    depth without a mask, or none (a mask together with stochastic depth is two kinds at once and left out)."""
    if not (is_preresnet_architecture(record) and record.h == 1.0):
        return False
    if record.noise is not None and record.noise not in KINDS:
        return False
    return record.stochastic_depth is None or not _has_mask(record)


#: what versus_bernoulli compares: metric name -> the value of one run
METRICS: dict[str, Callable[[RunRecord], float]] = {"test_error": lambda r: r.final_test_error,
                                                    "train_loss": lambda r: r.final_train_loss}


@dataclass(frozen=True)
class Level:
    """The runs of one (kind, parameter) of one model, with their noise level and aggregates."""

    kind: str
    parameter: float | None
    eps: float
    test_error: Aggregate
    train_loss: Aggregate
    runs: tuple[RunRecord, ...]  # one per seed (figures.results.select keeps each configuration once)


def _levels(records: list[RunRecord]) -> list[Level]:
    groups = group_by(records, lambda r: (kind_of(r), parameter_of(r)))
    levels = []
    for (kind, parameter), runs in groups.items():
        levels.append(Level(kind, parameter, eps_of(runs[0]), Aggregate.of([METRICS["test_error"](r) for r in runs]),
                            Aggregate.of([METRICS["train_loss"](r) for r in runs]), tuple(runs)))
    return sorted(levels, key=lambda level: (level.eps, ALL_KINDS.index(level.kind)))


def kinds_at_positive_eps(records: list[RunRecord]) -> int:
    """How many noise kinds the runs hold at eps > 0 (the figure needs two for some model)."""
    return len({kind_of(r) for r in records} - {"none"})


def compute(results: Path | None) -> tuple[dict[str, list[Level]], str]:
    """model -> its levels sorted by eps, for the models trained with two or more kinds; and the data note.

    Raises MissingResults (with the sweep command) when no model has runs of two noise kinds.
    """
    selection = select(results, is_noise_kind_run, score=kinds_at_positive_eps)
    by_model = group_by(selection.records, lambda r: r.model)
    data = {model: _levels(runs) for model, runs in sorted(by_model.items(), key=lambda item: residual_blocks(item[0]))
            if kinds_at_positive_eps(runs) >= 2}
    if not data:
        raise MissingResults(f"no finished runs of two noise kinds (Bernoulli, Gaussian, uniform, stochastic depth) "
                             f"of one PreResNet "
                             f"under {results_root(results)}", command(results))
    return data, selection.note()


def same_eps(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=EPS_RTOL, abs_tol=0.0)


def versus_bernoulli(levels: list[Level], level: Level, metric: str = "test_error") -> tuple[float, float] | None:
    """(difference of the means of `metric`, Welch's two-sided p-value) of `level` against the Bernoulli level of
    the same eps; None when there is none, for Bernoulli itself, or when either has fewer than 2 runs.

    metric: "test_error" (final test error, in points) or "train_loss" (final training loss, the objective
    J_eps of (4.2) that the noise changes first).
    """
    check_choice("metric", metric, METRICS)
    match = _bernoulli_match(levels, level)
    if match is None:
        return None
    return welch_difference(*([METRICS[metric](r) for r in x.runs] for x in (level, match)))


def versus_bernoulli_paired(levels: list[Level], level: Level, metric: str = "test_error") -> PairedDifference | None:
    """versus_bernoulli paired by seed (figures.seed_blocks.paired_runs): over the seeds both levels hold,
    the mean of the per-seed differences and the paired t-test's p-value. Runs of one seed share their initial
    weights and mini-batches whatever the mask, so this takes the seeds' share out of the comparison; None where
    versus_bernoulli is None or fewer than 2 seeds are shared."""
    check_choice("metric", metric, METRICS)
    match = _bernoulli_match(levels, level)
    if match is None:
        return None
    return paired_runs(level.runs, match.runs, METRICS[metric])


def _bernoulli_match(levels: list[Level], level: Level) -> Level | None:
    """The Bernoulli level at level's eps, None for Bernoulli and no injection themselves or where there is none."""
    if level.kind in ("bernoulli", "none"):
        return None
    return next((other for other in levels if other.kind == "bernoulli" and same_eps(other.eps, level.eps)), None)


def _versus_text(compared: tuple[float, float] | None, paired: PairedDifference | None, digits: int) -> str:
    if compared is None:
        return "-"
    return f"{compared[0]:+.{digits}f} (p = {compared[1]:.2g}" + (f", paired {paired.pvalue:.2g})" if paired else ")")


def _parameter_text(level: Level) -> str:
    if level.parameter is None:
        return "-"
    return f"{'p_L' if level.kind == STOCHASTIC_DEPTH else PARAMETER_OF[level.kind]} = {level.parameter:g}"


def to_markdown(data: dict[str, list[Level]], note: str) -> str:
    """One table per model: noise kind, parameter, eps, runs, test error and training loss (mean +- std), and
    for each the difference to Bernoulli at the same eps with Welch's p-value and the paired t-test's over the
    seeds both hold."""
    lines = [f"**Noise kinds at matched eps.** Final test error (%) and training loss, mean +- std over seeds "
             f"(best run in brackets); the vs-Bernoulli columns: mean minus Bernoulli's at the same eps "
             f"(Welch's two-sided p-value, and paired: the paired t-test over the seeds both hold, whose runs share "
             f"their initial weights and mini-batches); stochastic depth at its rms eps (LM-ResNet paper "
             f"section 3.2); {note}.",
             ""]
    for model, levels in data.items():
        lines += [f"PreResNet-{model.removeprefix('preresnet')} (K = {residual_blocks(model)} blocks)", "",
                  "| noise | parameter | eps | runs | test error (%) | training loss | test error vs Bernoulli | "
                  "training loss vs Bernoulli |",
                  "|---|---|---|---|---|---|---|---|"]
        for level in levels:
            error_vs, loss_vs = (_versus_text(versus_bernoulli(levels, level, metric),
                                              versus_bernoulli_paired(levels, level, metric), digits)
                                 for metric, digits in (("test_error", 2), ("train_loss", 4)))
            lines.append(f"| {level.kind.replace('_', ' ')} | {_parameter_text(level)} | {level.eps:.4f} | "
                         f"{level.test_error.n} | "
                         f"{level.test_error.mean:.2f} +- {level.test_error.std:.2f} ({level.test_error.best:.2f}) | "
                         f"{level.train_loss.mean:.4f} +- {level.train_loss.std:.4f} | {error_vs} | {loss_vs} |")
        lines.append("")
    return "\n".join(lines)


_MARKERS = {"none": "*", "bernoulli": "o", "gaussian": "s", "uniform": "^", STOCHASTIC_DEPTH: "D"}
_LABELS = {"none": "no injection", STOCHASTIC_DEPTH: "stochastic depth (rms eps)"}


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the figure and write noise_kinds.md from sweep results (`fast` changes nothing)."""
    import matplotlib.pyplot as plt

    from figures.fig6 import spread_phrase
    from figures.table1 import write_text

    data, note = compute(results)
    fig, axes = plt.subplots(len(data), 2, figsize=(10, 3.6 * len(data)), squeeze=False)
    groups = {}
    for row, (model, levels) in enumerate(data.items()):
        ax_loss, ax_err = axes[row]
        kinds = [kind for kind in ALL_KINDS if any(level.kind == kind for level in levels)]
        span = max(level.eps for level in levels) or 1.0
        for i, kind in enumerate(kinds):
            mine = [level for level in levels if level.kind == kind]
            eps = np.array([level.eps for level in mine])
            x = eps + 0.012 * span * (i - (len(kinds) - 1) / 2)  # a small dodge keeps matched error bars apart
            style = dict(marker=_MARKERS[kind], capsize=3, linestyle="-" if len(mine) > 1 else "none",
                         label=_LABELS.get(kind, kind), color="black" if kind == "none" else None)
            ax_loss.errorbar(x, [level.train_loss.mean for level in mine], yerr=[level.train_loss.std for level in mine],
                             **style)
            ax_err.errorbar(x, [level.test_error.mean for level in mine], yerr=[level.test_error.std for level in mine],
                            **style)
            groups[f"{model}/{kind}"] = {
                "eps": eps, "parameter": np.array([np.nan if level.parameter is None else level.parameter for level in mine]),
                "train_loss_mean": np.array([level.train_loss.mean for level in mine]),
                "train_loss_std": np.array([level.train_loss.std for level in mine]),
                "test_error_mean": np.array([level.test_error.mean for level in mine]),
                "test_error_std": np.array([level.test_error.std for level in mine]),
                "n_runs": np.array([level.test_error.n for level in mine])}
        title = f"PreResNet-{model.removeprefix('preresnet')}"
        ax_loss.set(xlabel="noise level eps", ylabel="training loss (last epoch)", title=f"{title}: training loss")
        ax_err.set(xlabel="noise level eps", ylabel="test error (%)", title=f"{title}: test error")
        for ax in (ax_loss, ax_err):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    counts = [level.test_error.n for levels in data.values() for level in levels]
    wrapped_suptitle(fig, spread_phrase(counts) + "; " + note, fontsize=8)
    fig.tight_layout()
    written = save_outputs(fig, out_dir, "noise_kinds", groups, attrs={"note": note})
    written.append(write_text(Path(out_dir) / "noise_kinds.md", to_markdown(data, note)))
    return written
