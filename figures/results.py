"""Training results as tidy records: every run's metrics.h5 under a results directory.

A run is a directory holding metrics.h5 as written by `python -m nets.train` (one 1-D dataset per
epoch, the configuration as root attributes, a `summary` group). The figures of the main paper's
section 4.2 (Table 1, Figs. 6-8), of the LM-ResNet paper (its Tables 1/3 and Fig. 4) and of the
robust-ResNet paper (Figs. 8 and 9) aggregate these records over seeds. Nothing here trains or invents a
number: an empty selection raises figures.output.MissingResults with the sweep command that produces it.

Runs trained on noisy inputs (input_noise > 0, robust-ResNet Fig. 8) are a different experiment: `select`
leaves them out unless a figure asks for them (noisy_inputs=True), so no clean-data table mixes them in.
Likewise the two stochastic-depth modes (per-sample "sample", the default, and per-mini-batch "batch") are
never pooled: they are a CONFIG_FIELDS column, and `select` keeps the stochastic-depth runs of one mode only.
The LM-ResNets' two starting values (lm_start "zero" and "rest") are a CONFIG_FIELDS column too: the LM figures
show them apart. Runs whose stem started rescaled (stem_init_scale != 1, the experiment that takes a uniform h apart,
docs/experiments.md section 8) are left out by `select` always: no figure shows them yet, and none may pool them
with the plain network of the same h.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence

import numpy as np

from kolmogorov._checks import check_int

CURVES = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time")
# configuration fields that define the recipe a run was trained with (not what the figure varies)
RECIPE_FIELDS = ("data", "epochs", "batch_size", "lr", "momentum", "weight_decay", "milestones", "gamma")
DATA_HINT = "cifar10.h5"  # placeholder in printed commands: the HDF5 made by `python -m nets.data convert`


@dataclass
class RunRecord:
    """One training run: its configuration (root attributes), summary and per-epoch curves.

    grad_norm_step (R,), grad_norm and weight_norm (R, B) and grad_norm_blocks (B names) are the per-block
    norms recorded with --grad-norm-every (robust-ResNet Fig. 2; nets.grad_norms), None when the run has none.
    """

    path: Path
    attrs: dict[str, Any]
    summary: dict[str, Any]
    curves: dict[str, np.ndarray]
    lm_k: np.ndarray | None = None
    grad_norm_step: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    weight_norm: np.ndarray | None = None
    grad_norm_blocks: tuple[str, ...] | None = None
    provenance: tuple[dict[str, Any], ...] = ()  # nets.provenance segments; () for runs recorded before them

    @property
    def name(self) -> str:
        return self.path.name

    def get(self, key: str, default: Any = None) -> Any:
        value = self.attrs.get(key, default)
        return default if value is None else value

    @property
    def model(self) -> str:
        return str(self.attrs.get("model"))

    @property
    def depth(self) -> int | None:
        digits = "".join(ch for ch in self.model.rsplit("preresnet", 1)[-1] if ch.isdigit())
        return int(digits) if digits else None

    @property
    def is_lm(self) -> bool:
        from nets.lm_start import is_lm_model

        return is_lm_model(self.model)

    @property
    def noise(self) -> str | None:
        noise = self.attrs.get("noise")
        return None if noise in (None, "none") else str(noise)

    @property
    def survival_p(self) -> float | None:
        """The Bernoulli survival probability p of eq. (3.1); a run without injection is p = 1."""
        if self.noise is None:
            return 1.0
        if self.noise == "bernoulli":
            return float(self.attrs["p"])
        return None

    @property
    def h(self) -> float:
        """Step factor h (robust-ResNet paper eq. 4); the plain network is h = 1."""
        return float(self.get("h", 1.0))

    @property
    def input_noise(self) -> float:
        """Std of the Gaussian noise on the training inputs (robust-ResNet Fig. 8); runs recorded before the
        trainer had this field trained on clean inputs: 0."""
        return float(self.get("input_noise", 0.0))

    @property
    def stem_init_scale(self) -> float:
        """Factor on the stem's initial weights (nets.train --stem-init-scale); runs recorded before the field: 1."""
        return float(self.get("stem_init_scale", 1.0))

    @property
    def stochastic_depth(self) -> float | None:
        value = self.attrs.get("stochastic_depth")
        return None if value is None else float(value)

    @property
    def stochastic_depth_mode(self) -> str:
        """"sample" (per-sample drop) or "batch" (whole block per mini-batch); runs recorded before the trainer
        had this field dropped per sample: "sample"."""
        return str(self.get("stochastic_depth_mode", "sample"))

    @property
    def lm_start(self) -> str | None:
        """An LM run's starting value u_{-1} (nets.lm_start): "zero" or "rest"; runs recorded without the field
        (or with None, the model's default) started from zero. None for a run that is not an LM-ResNet."""
        return str(self.get("lm_start", "zero")) if self.is_lm else None

    @property
    def seed(self) -> int:
        return int(self.get("seed", 0))

    @property
    def finished(self) -> bool:
        value = self.summary.get("finished", False)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)

    @property
    def final_test_error(self) -> float:
        """Top-1 test error of the last epoch, in percent (as in the main paper's Table 1)."""
        return 100.0 * (1.0 - float(self.curves["test_acc"][-1]))

    @property
    def final_train_loss(self) -> float:
        return float(self.curves["train_loss"][-1])

    @property
    def epochs(self) -> int:
        """How many epochs the run recorded."""
        return int(np.asarray(self.curves["test_acc"]).size)

    def late_test_error(self, epochs: int) -> float:
        """Mean top-1 test error (%) over the run's last `epochs` epochs: the last epoch's value with less of that
        epoch's luck (late_window picks the span); ValueError unless 1 <= epochs <= the epochs recorded."""
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or not 1 <= epochs <= self.epochs:
            raise ValueError(f"epochs must be an integer from 1 to the {self.epochs} epochs of {self.name}, got {epochs!r}")
        return 100.0 * (1.0 - float(np.mean(np.asarray(self.curves["test_acc"], dtype=float)[-epochs:])))

    @property
    def is_toy_data(self) -> bool:
        """Whether the run trained on one of the built-in small data sets (`digits`, `synthetic[:N...]`) that
        stand in for CIFAR on a CPU, rather than on image files."""
        data = str(self.attrs.get("data") or "")
        return data == "digits" or data == "synthetic" or data.startswith("synthetic:")

    @property
    def is_jpeg(self) -> bool:
        """Whether the run trained on the JPEG re-encoding of CIFAR (dataset or data mentions jpeg)."""
        return any("jpeg" in str(self.attrs.get(key) or "").lower() for key in ("dataset", "data"))

    def recipe(self) -> tuple:
        """The recipe as a hashable tuple; runs of one table or figure must share it. The data is its file name
        and the data set's recorded name (the `dataset` attribute up to its colon): an original-CIFAR cifar10.h5
        and a JPEG one are two recipes, not one."""
        values = []
        for key in RECIPE_FIELDS:
            value = self.attrs.get(key)
            if key == "data" and isinstance(value, str):
                value = (Path(value).name, str(self.attrs.get("dataset") or "").split(":")[0] or None)
            values.append(value)
        return tuple(values)


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def read_run(path: Path) -> RunRecord:
    """Read one metrics.h5 with the trainer's reader (nets.metrics.read_metrics) into a RunRecord.

    The configuration (config_json) and the other root attributes (dataset, epsilon, ...) are merged
    into `attrs`; curves beyond summary.epochs_completed are dropped.
    """
    from nets.metrics import read_metrics

    metrics = read_metrics(path)
    attrs = {key: _hashable(value) for key, value in {**metrics.attrs, **metrics.config}.items()}
    summary = dict(metrics.summary)
    curves = {key: np.asarray(getattr(metrics, key), dtype=float) for key in CURVES}
    lm_k = None if metrics.lm_k is None else np.asarray(metrics.lm_k, dtype=float)
    if "epochs_completed" in summary:
        n = int(summary["epochs_completed"])
        curves = {key: value[:n] for key, value in curves.items()}
        lm_k = None if lm_k is None else lm_k[:n]
    if len(curves["test_acc"]) == 0:
        raise ValueError(f"{path} holds no completed epoch")
    return RunRecord(path=Path(path).parent, attrs=attrs, summary=summary, curves=curves, lm_k=lm_k,
                     grad_norm_step=metrics.grad_norm_step, grad_norm=metrics.grad_norm,
                     weight_norm=metrics.weight_norm, grad_norm_blocks=metrics.grad_norm_blocks,
                     provenance=tuple(metrics.provenance))


@dataclass(frozen=True)
class CollectedRuns:
    """Every readable run under one results root, read once (read_runs), finished or not.

    Pass it where a results root is taken (collect_runs, select and the selections built on it) to make
    several selections for one figure without reading each metrics.h5 again.
    """

    root: Path | None
    records: tuple[RunRecord, ...]


def read_runs(results: Path | None) -> CollectedRuns:
    """Read every run under results once (unreadable files skipped with a warning), finished or not."""
    return CollectedRuns(results, tuple(collect_runs(results, finished_only=False)))


def collect_runs(results: Path | CollectedRuns | None, finished_only: bool = True) -> list[RunRecord]:
    """Every run under results (searched recursively for metrics.h5), sorted by path.

    Unreadable files are skipped with a warning; with finished_only, runs whose summary does not say
    finished (still training, or interrupted) are left out. Runs read before (CollectedRuns) are not read again.
    """
    if isinstance(results, CollectedRuns):
        return [record for record in results.records if record.finished or not finished_only]
    if results is None or not Path(results).is_dir():
        return []
    records = []
    for path in sorted(Path(results).rglob("metrics.h5")):
        try:
            record = read_run(path)
        except (OSError, KeyError, ValueError) as error:
            warnings.warn(f"skipping unreadable results {path}: {error}", stacklevel=2)
            continue
        if record.finished or not finished_only:
            records.append(record)
    return records


def dominant_recipe(records: Sequence[RunRecord], score: Callable[[list[RunRecord]], Any] | None = None
                    ) -> tuple[list[RunRecord], int]:
    """Keep the runs of one recipe; returns (kept, number left out).

    Recipes on image files (CIFAR) come before recipes on the built-in CPU data sets (RunRecord.is_toy_data:
    digits, synthetic), so CPU analogues kept under the same results root never displace CIFAR runs; among
    those, the recipe kept maximizes score(runs of that recipe) (default: the number of runs), then the
    number of runs, then the number of epochs: a table never mixes runs trained differently.
    """
    if not records:
        return [], 0
    by_recipe: dict[tuple, list[RunRecord]] = {}
    for record in records:
        by_recipe.setdefault(record.recipe(), []).append(record)
    epochs_at = RECIPE_FIELDS.index("epochs")
    score = score or len
    best = max(by_recipe, key=lambda recipe: (not by_recipe[recipe][0].is_toy_data, score(by_recipe[recipe]),
                                              len(by_recipe[recipe]), recipe[epochs_at] or 0, str(recipe)))
    kept = by_recipe[best]
    return kept, len(records) - len(kept)


def group_by(records: Iterable[RunRecord], key: Callable[[RunRecord], Hashable]) -> dict[Hashable, list[RunRecord]]:
    """Records grouped by key(record), groups in first-seen order, each sorted by seed."""
    groups: dict[Hashable, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return {k: sorted(v, key=lambda r: (r.seed, str(r.path))) for k, v in groups.items()}


@dataclass(frozen=True)
class Aggregate:
    """Mean, sample standard deviation (ddof = 1; 0 for one run), median, best (minimum) over n runs."""

    mean: float
    std: float
    median: float
    best: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Aggregate":
        values = np.asarray(values, dtype=float)
        if values.size == 0:
            raise ValueError("values must hold at least one number")
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return cls(float(values.mean()), std, float(np.median(values)), float(values.min()), int(values.size))


def late_window(n_epochs: int) -> int:
    """The last quarter of an n_epochs schedule, ceil(n_epochs / 4) epochs: epochs 19-24 of the 24-epoch CPU recipe
    (its last learning-rate phase, after the drop at 18) and 124-164 of the main paper's 164 (after its drop at
    122); ValueError unless n_epochs is an integer >= 1 (kolmogorov._checks.check_int)."""
    return -(-check_int("n_epochs", n_epochs, 1) // 4)


def welch_difference(mine: Sequence[float], theirs: Sequence[float]) -> tuple[float, float] | None:
    """(mean(mine) - mean(theirs), Welch's two-sided p-value, unequal variances); None when either sample has
    fewer than 2 values. Two constant samples have no t statistic: p is 1 when their means agree, else 0. One
    constant sample is fine (its variance is 0; the other's carries the test): scipy's warning about precision
    loss in its moments, which such a sample triggers, is silenced."""
    from scipy import stats

    if len(mine) < 2 or len(theirs) < 2:
        return None
    difference = float(np.mean(mine) - np.mean(theirs))
    if np.ptp(mine) == 0.0 and np.ptp(theirs) == 0.0:
        return difference, (1.0 if difference == 0.0 else 0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred in moment calculation", category=RuntimeWarning)
        return difference, float(stats.ttest_ind(mine, theirs, equal_var=False).pvalue)


@dataclass(frozen=True)
class Trend:
    """Least-squares line of one final value against the survival probability removed, 100 (1 - p) points.

    slope is the change per percentage point of p removed (main paper's Table 1 and Fig. 6 read along p),
    stderr its standard error, pvalue the two-sided p-value of slope = 0 (t with n - 2 degrees of freedom),
    treating the n runs as independent draws.
    """

    slope: float
    stderr: float
    pvalue: float
    n: int


def without_roundoff(slope: float, x: np.ndarray, values: np.ndarray) -> float:
    """slope, or exactly 0.0 where it is below 1e-12 of the data's own scale ptp(values) / ptp(x): a line whose
    exact slope is zero (a design symmetric in x) comes out of least squares as +-1e-17 or so, which a caption
    would print as a trend."""
    scale = float(np.ptp(values)) / max(float(np.ptp(x)), np.finfo(float).tiny)
    return 0.0 if abs(slope) <= 1e-12 * scale else slope


def noise_trend(survival_p: Sequence[float], values: Sequence[float]) -> Trend | None:
    """The Trend of values (one per run) against 100 (1 - p) of each run's survival_p; None with fewer than
    3 runs or fewer than 2 distinct p (no line, or no residual to judge it by). Values that do not vary have
    slope 0 and p-value 1, and so does a slope that is only rounding error (without_roundoff)."""
    from scipy import stats

    removed = 100.0 * (1.0 - np.asarray(survival_p, dtype=float))
    values = np.asarray(values, dtype=float)
    if removed.shape != values.shape or removed.ndim != 1:
        raise ValueError(f"survival_p and values must be two sequences of one length, got {removed.shape} and {values.shape}")
    if values.size < 3 or np.ptp(removed) == 0.0:
        return None
    if np.ptp(values) == 0.0:
        return Trend(0.0, 0.0, 1.0, int(values.size))
    line = stats.linregress(removed, values)
    slope = without_roundoff(float(line.slope), removed, values)
    pvalue = 1.0 if slope == 0.0 else float(line.pvalue)
    return Trend(slope, float(line.stderr), pvalue, int(values.size))


def final_value_trends(records: Sequence[RunRecord]) -> dict[str, Trend | None]:
    """noise_trend of the final test error (%) and of the final training loss over records (one depth's runs of
    Table 1 and Fig. 6), keyed "test_error" and "train_loss"."""
    survival_p = [r.survival_p for r in records]
    return {"test_error": noise_trend(survival_p, [r.final_test_error for r in records]),
            "train_loss": noise_trend(survival_p, [r.final_train_loss for r in records])}


def stacked_curve(records: Sequence[RunRecord], key: str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(runs, epochs) array of one curve, truncated to the shortest run."""
    n = min(len(record.curves[key]) for record in records)
    rows = [record.curves[key][:n] for record in records]
    array = np.vstack(rows)
    return transform(array) if transform is not None else array


def mean_and_std(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single run) over the runs, the rows of a
    (runs, ...) array such as stacked_curve's: per epoch or per block what Aggregate is for one number."""
    rows = np.asarray(rows, dtype=float)
    return rows.mean(0), (rows.std(0, ddof=1) if rows.shape[0] > 1 else np.zeros(rows.shape[1:]))


def error_percent(accuracy: np.ndarray) -> np.ndarray:
    return 100.0 * (1.0 - np.asarray(accuracy))


def dataset_label(records: Sequence[RunRecord]) -> str:
    """A line saying what the runs were trained on; names the JPEG re-encoding of CIFAR-10 when used."""
    names = sorted({str(r.attrs.get("dataset") or Path(str(r.attrs.get("data") or "?")).name).split(":")[0]
                    for r in records})
    if records and all(r.is_jpeg for r in records):
        return f"trained on the JPEG re-encoding (quality 75) of CIFAR-10 ({', '.join(names)}), not the original images"
    return f"trained on {', '.join(names)}"


def recipe_label(records: Sequence[RunRecord]) -> str:
    """The training recipe the runs share (see dominant_recipe), e.g. '164 epochs, batch 128, SGD lr 0.1
    (x0.1 at epochs 81, 122), momentum 0.9, weight decay 0.0001'; the fields a run does not record are left
    out, and '' when runs disagree or none is given."""
    recipes = {record.recipe() for record in records}
    if len(recipes) != 1:
        return ""
    value = dict(zip(RECIPE_FIELDS, recipes.pop()))
    parts = []
    if value["epochs"] is not None:
        parts.append(f"{value['epochs']} epochs")
    if value["batch_size"] is not None:
        parts.append(f"batch {value['batch_size']}")
    if value["lr"] is not None:
        lr = f"SGD lr {value['lr']:g}"
        milestones = value["milestones"]
        if milestones:
            milestones = milestones if isinstance(milestones, tuple) else (milestones,)
            gamma = value["gamma"] if value["gamma"] is not None else 0.1
            lr += f" (x{gamma:g} at epochs {', '.join(str(m) for m in milestones)})"
        parts.append(lr)
    for key, name in (("momentum", "momentum"), ("weight_decay", "weight decay")):
        if value[key] is not None:
            parts.append(f"{name} {value[key]:g}")
    return ", ".join(parts)


def sweep_command(models: Sequence[str], out: Path | str, seeds: int = 4, **grid: Sequence[Any]) -> str:
    """The `python -m nets.sweep` command line for a grid (lists given as keyword arguments)."""
    parts = ["python -m nets.sweep", "--models", *models]
    for key, values in grid.items():
        flag = "--" + key.replace("_", "-")
        parts += [flag, *[str(v) for v in (values if isinstance(values, (list, tuple)) else [values])]]
    parts += ["--seeds", str(seeds), "--data", DATA_HINT, "--out", str(out)]
    return " ".join(parts)


def results_root(results: Path | None) -> Path:
    return Path(results) if results is not None else Path("results")


@dataclass
class Selection:
    """Runs chosen for one figure or table, with how many were left out for another recipe."""

    records: list[RunRecord] = field(default_factory=list)
    left_out: int = 0
    duplicates: int = 0
    other_mode: int = 0  # stochastic-depth runs of the other mode (one_stochastic_depth_mode)

    def note(self) -> str:
        """What the runs were trained on and with which recipe, and what was left out."""
        label = dataset_label(self.records)
        recipe = recipe_label(self.records)
        label += f"; {recipe}" if recipe else ""
        label += f"; {self.left_out} run(s) with another recipe left out" if self.left_out else ""
        label += (f"; {self.duplicates} duplicate run(s) (same configuration and seed) counted once"
                  if self.duplicates else "")
        modes = sorted({r.stochastic_depth_mode for r in self.records if r.stochastic_depth is not None})
        if modes == ["batch"] or self.other_mode:  # the default ("sample") alone goes unsaid, as before
            label += f"; stochastic depth in {'/'.join(modes)} mode"
            label += f" ({self.other_mode} run(s) of the other mode left out)" if self.other_mode else ""
        return label


_PLAIN_PRERESNET = re.compile(r"^preresnet\d+$")


def is_preresnet_architecture(record: RunRecord) -> bool:
    """The plain PreResNet architecture (preresnetN: not LM-ResNet, not shake-shake), whatever its noise."""
    return bool(_PLAIN_PRERESNET.match(record.model))


def is_plain_preresnet(record: RunRecord) -> bool:
    """A PreResNet without branch noise (p = 1) or stochastic depth: the runs of the robust-ResNet figures."""
    return is_preresnet_architecture(record) and record.survival_p == 1.0 and record.stochastic_depth is None


def matching_h(record: RunRecord, h_values: Sequence[float]) -> float | None:
    """The value of h_values that the run's step factor h is (to float rounding), or None."""
    return next((h for h in h_values if math.isclose(record.h, h, rel_tol=1e-9)), None)


def configuration_key(record: RunRecord) -> tuple:
    """What a run computes: its CONFIG_FIELDS (the data by file name, as in RunRecord.recipe) and its seed.

    Runs that differ only in how they executed or what they recorded (device, compile, --grad-norm-every)
    share a key: they are the same experiment.
    """
    config = tuple(_hashable(config_value(record, key)) for key in CONFIG_FIELDS if key not in RECIPE_FIELDS)
    return config, _hashable(record.recipe()), record.seed


def once_per_configuration(records: Sequence[RunRecord]) -> tuple[list[RunRecord], int]:
    """The first run (by path) of each configuration_key; returns (kept, number of duplicates left out)."""
    kept: dict[tuple, RunRecord] = {}
    for record in sorted(records, key=lambda r: str(r.path)):
        kept.setdefault(configuration_key(record), record)
    return list(kept.values()), len(records) - len(kept)


def select(results: Path | CollectedRuns | None, keep: Callable[[RunRecord], bool],
           score: Callable[[list[RunRecord]], Any] | None = None, noisy_inputs: bool = False) -> Selection:
    """The finished runs under results that pass keep, restricted to one recipe (see dominant_recipe), each
    experiment once (once_per_configuration: e.g. a run of the h sweep and the same run repeated with
    --grad-norm-every under the same results root count as one seed, not two).

    Unless noisy_inputs, runs trained on noisy inputs (input_noise > 0) are left out before keep is asked; runs
    with a rescaled stem (stem_init_scale != 1) always are.
    `results` may be runs read before (read_runs): they are not read again.
    """
    records = [record for record in collect_runs(results)
               if (noisy_inputs or record.input_noise == 0.0) and record.stem_init_scale == 1.0 and keep(record)]
    records, duplicates = once_per_configuration(records)
    kept, left_out = dominant_recipe(records, score)
    kept, other_mode = one_stochastic_depth_mode(kept)
    return Selection(kept, left_out, duplicates, other_mode)


def one_stochastic_depth_mode(records: Sequence[RunRecord]) -> tuple[list[RunRecord], int]:
    """The runs without stochastic depth, and those with it of one mode only (the mode of most of them, "sample"
    on a tie); returns (kept, number of stochastic-depth runs of the other mode left out). Figures that group
    by p_L alone then never average a per-sample run with a per-mini-batch one."""
    counts: dict[str, int] = {}
    for record in records:
        if record.stochastic_depth is not None:
            counts[record.stochastic_depth_mode] = counts.get(record.stochastic_depth_mode, 0) + 1
    if len(counts) <= 1:
        return list(records), 0
    mode = max(counts, key=lambda m: (counts[m], m == "sample", m))
    kept = [r for r in records if r.stochastic_depth is None or r.stochastic_depth_mode == mode]
    return kept, len(records) - len(kept)


# ---- tidy export: one row per run, or one row per configuration (seeds aggregated) ----------------

CONFIG_FIELDS = ("model", "noise", "p", "nu", "beta", "stochastic_depth", "stochastic_depth_mode", "h",
                 "lm_start", "input_noise", "stem_init_scale") + RECIPE_FIELDS
RUN_COLUMNS = ("run",) + CONFIG_FIELDS + ("seed", "finished", "epochs_completed", "final_test_error",
                                          "best_test_error", "final_train_loss", "total_train_time_s", "dataset",
                                          "code_version", "threads", "cpu")
#: RUN_COLUMNS taken from a run's provenance segments: their distinct values joined by " | " (None when unrecorded)
PROVENANCE_COLUMNS = ("code_version", "threads", "cpu")


def config_value(record: RunRecord, key: str) -> Any:
    """A CONFIG_FIELDS value of a run as recorded (input_noise: 0.0, stochastic_depth_mode: "sample" when the run
    predates the field; lm_start: "zero" for an LM run without it, None for the other models; stem_init_scale: 1.0
    when the run predates it)."""
    if key in ("input_noise", "stochastic_depth_mode", "lm_start", "stem_init_scale"):
        return getattr(record, key)
    return record.attrs.get(key)


def tidy_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One dict per run with RUN_COLUMNS (errors in percent), e.g. for pandas.DataFrame(rows)."""
    rows = []
    for record in records:
        row = {"run": str(record.path)}
        row.update({key: config_value(record, key) for key in CONFIG_FIELDS})
        row.update(seed=record.seed, finished=record.finished, epochs_completed=len(record.curves["test_acc"]),
                   final_test_error=record.final_test_error,
                   best_test_error=float(error_percent(record.curves["test_acc"]).min()),
                   final_train_loss=record.final_train_loss,
                   total_train_time_s=record.summary.get("total_train_time_s"),
                   dataset=str(record.attrs.get("dataset") or "").split(":")[0] or None)
        for key in PROVENANCE_COLUMNS:
            values = list(dict.fromkeys(str(segment.get(key)) for segment in record.provenance))
            row[key] = " | ".join(values) if values else None
        rows.append(row)
    return rows


def summary_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One dict per configuration (CONFIG_FIELDS, seeds pooled): n_runs and the final test error's
    mean, std (ddof = 1), best (minimum), all in percent."""
    groups = group_by(records, lambda r: tuple(config_value(r, key) for key in CONFIG_FIELDS))
    rows = []
    for key, runs in groups.items():
        error = Aggregate.of([r.final_test_error for r in runs])
        rows.append({**dict(zip(CONFIG_FIELDS, key)), "n_runs": error.n, "test_error_mean": error.mean,
                     "test_error_std": error.std, "test_error_best": error.best})

    def order(row: dict[str, Any]) -> tuple:
        """Model family, then depth as a number, then every value (numbers numerically)."""
        model = str(row["model"])
        digits = "".join(ch for ch in model if ch.isdigit())
        values = tuple((0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)) for v in row.values())
        return (model.rstrip("0123456789"), int(digits) if digits else 0, values)

    return sorted(rows, key=order)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """rows -> CSV at path, atomically (temporary file, then os.replace); None as an empty cell."""
    import csv

    from kolmogorov._atomic import atomic_output

    columns = list(rows[0]) if rows else list(RUN_COLUMNS)
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else " ".join(map(str, v)) if isinstance(v, tuple) else v)
                             for k, v in row.items()})
    return path


def build_parser():
    """The arguments of `python -m figures.results` (nothing read)."""
    from kolmogorov._cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python -m figures.results", description=main.__doc__)
    parser.add_argument("results", type=Path, help="directory searched recursively for metrics.h5")
    parser.add_argument("--csv", type=Path, help="write one row per run to this CSV")
    parser.add_argument("--summary-csv", type=Path, help="write one row per configuration to this CSV")
    parser.add_argument("--unfinished", action="store_true", help="include runs that have not finished")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m figures.results DIR [--csv FILE] [--summary-csv FILE] [--unfinished]`: list the runs
    under DIR aggregated per configuration (mean +- std of the final test error over seeds)."""
    from kolmogorov._cli import fail

    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        fail(parser.prog, f"results {args.results} is not a directory")
    from figures.output import check_output_file

    outputs = [(flag, path) for flag, path in (("--csv", args.csv), ("--summary-csv", args.summary_csv)) if path]
    try:  # before reading any run, so a bad path costs nothing and prints no half of the work
        for flag, path in outputs:
            check_output_file(path, flag)
        if len(outputs) == 2 and Path(os.path.abspath(args.csv)) == Path(os.path.abspath(args.summary_csv)):
            raise ValueError(f"--csv and --summary-csv are the same file {args.csv}")
    except ValueError as bad:
        fail(parser.prog, str(bad))
    records = collect_runs(args.results, finished_only=not args.unfinished)
    if not records:
        fail(parser.prog, f"no {'' if args.unfinished else 'finished '}runs (metrics.h5) under {args.results}")
    summary = summary_rows(records)
    shown = [key for key in CONFIG_FIELDS if len({str(row[key]) for row in summary}) > 1] or ["model"]
    print("  ".join(f"{key:>16s}" for key in shown) + "  runs  test error % (mean +- std, best)")
    for row in summary:
        cells = "  ".join(f"{str(row[key]):>16s}" for key in shown)
        print(f"{cells}  {row['n_runs']:4d}  {row['test_error_mean']:.2f} +- {row['test_error_std']:.2f}, "
              f"{row['test_error_best']:.2f}")
    for flag, path in outputs:
        try:
            written = write_csv(tidy_rows(records) if flag == "--csv" else summary, path)
        except OSError as error:  # a full disk, or the directory changed since the check
            fail(parser.prog, f"{flag} {path}: cannot write: {error.strerror or error}")
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
