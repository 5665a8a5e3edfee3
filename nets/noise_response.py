"""The noisy objective J_eps of one trained network under several noise kinds at one or more eps (main paper (4.2)).

At fixed weights theta, the network with noise is a weak approximation of dX = f dt + eps g dW (eq. (3.4)),
and its training objective is J_eps(theta) = E_noise[loss of the noisy network] (4.2). If only eps mattered,
every kind of noise at one eps would give the same J_eps(theta) - J_0(theta) to first weak order: the
Bernoulli, Gaussian and uniform masks (eqs. (3.2), (3.13), (3.14)) draw one factor per unit (a diagonal
g g^T = diag(f)^2), stochastic depth (LM-ResNet paper section 3.2) one per branch (g g^T = f f^T). This module
measures J_eps(theta) of a trained run for each kind at the parameter that gives one eps for the model's K
blocks (kolmogorov.noise_parameter_for, kolmogorov.stochastic_depth_survival_for): the same weights, so no
seed-to-seed spread of training enters the comparison.

Every kind's mean-one noise adds nothing to first order in eps on average, so J_eps - J_0 = c eps^2 + o(eps^2)
(the 1/2 eps^2 g g^T : grad^2 u term of (3.6)); c = (J_eps - J_0) / eps^2, reported per kind and eps, is the
curvature of the objective along that kind's diffusion. If only eps mattered, c would not depend on the kind.
Several eps (`--eps 0.05 0.1 0.2`) show where the eps^2 law holds.

The noise modules run as in training (masks and drops drawn); BatchNorm uses its running statistics (eval
mode), so every kind sees the same deterministic normalisation. `python -m nets.noise_response RUN_DIR...
--eps EPS` measures trained runs (checkpoint.pt, loaded with weights_only=True) on class-balanced images of
their own training set (the data of J_eps, not augmented; nets.trained_run.balanced_indices) or, with --split
test, of their test set. `--batchnorm clean` re-estimates the BatchNorm statistics from the clean network first.
"""
from __future__ import annotations

import itertools
import json
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kolmogorov._checks import check_choice
from kolmogorov.noise_level import PARAMETER_OF, STOCHASTIC_DEPTH
from nets.trained_run import MeasuredWith, data_label

#: the kinds measured: the masks of the main paper and stochastic depth
KINDS = (*PARAMETER_OF, STOCHASTIC_DEPTH)
NOISE_RESPONSE_IMAGES = 2000
NOISE_RESPONSE_DRAWS = 8
#: BatchNorm statistics of the measured network: those recorded in training ("recorded", what the trained
#: network uses at test time), or re-estimated from the clean network's own activations on the measured
#: images ("clean"; clean_batchnorm_statistics)
BATCHNORM_STATISTICS = ("recorded", "clean")
#: how J_eps is estimated from the draws: the mean noisy loss ("plain"), or the mean of the noisy loss minus its
#: exact-mean-zero linear term in the noise ("control-variate", nets.control_variate: same expectation, an
#: error of O(eps^2) instead of O(eps) per draw) for the masks; stochastic depth is estimated plain either way
#: (it drops whole branches, O(1) jumps that the linear term does not follow: subtracting it added scatter)
ESTIMATORS = ("plain", "control-variate")


def options_at(kind: str, n_blocks: int, eps: float) -> dict:
    """nets.build_model options of noise `kind` at noise level eps for K = n_blocks blocks (and nothing else).

    Bernoulli p = 1/(1 + K eps^2), Gaussian nu = eps sqrt(K), uniform beta = eps sqrt(3K) (must stay below 1):
    eqs. (3.2), (3.13), (3.14); stochastic depth: the p_L of rms level eps. ValueError names kind or eps.
    """
    import kolmogorov

    check_choice("kind", kind, KINDS)
    if kind == STOCHASTIC_DEPTH:
        return {"noise": None, "stochastic_depth": kolmogorov.stochastic_depth_survival_for(eps, n_blocks)}
    return {"noise": kind, PARAMETER_OF[kind]: kolmogorov.noise_parameter_for(kind, n_blocks, eps),
            "stochastic_depth": None}


@dataclass(frozen=True)
class KindResponse:
    """J_eps of one noise kind: mean cross-entropy over draws and images, its standard error over the draws."""

    kind: str
    options: dict
    eps: float
    loss: float
    loss_stderr: float
    error: float

    def excess(self, clean_loss: float) -> float:
        """J_eps - J_0: what the noise adds to the objective at these weights."""
        return self.loss - clean_loss

    def curvature(self, clean_loss: float) -> float:
        """c = (J_eps - J_0) / eps^2, the coefficient of the eps^2 law (module docstring)."""
        return self.excess(clean_loss) / self.eps ** 2


def _noisy_modules_train(model) -> None:
    """Eval mode for everything but the noise masks and stochastic-depth drops, which draw as in training."""
    from nets.models.noise import DropPath, MultiplicativeNoise

    model.eval()
    for module in model.modules():
        if isinstance(module, (MultiplicativeNoise, DropPath)):
            module.train()


def mean_loss(model, images, labels, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of one pass over the images."""
    import torch
    import torch.nn.functional as F

    total, wrong = 0.0, 0
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            logits = model(images[start:start + batch_size])
            target = labels[start:start + batch_size]
            total += float(F.cross_entropy(logits.double(), target, reduction="sum"))
            wrong += int((logits.argmax(dim=1) != target).sum())
    return total / images.shape[0], wrong / images.shape[0]


def _eps_values(eps: float | Sequence[float]) -> tuple[float, ...]:
    """eps as a tuple of distinct finite numbers > 0; ValueError naming eps otherwise."""
    values = (eps,) if isinstance(eps, numbers.Real) else tuple(eps)
    if not values:
        raise ValueError("eps must give at least one noise level")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"eps must be finite numbers > 0; got {value!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"eps lists a value twice: {list(values)}")
    return tuple(float(value) for value in values)


def clean_batchnorm_statistics(model, images, batch_size: int) -> None:
    """Re-estimate every BatchNorm's running mean and variance from `model`'s own activations on images, in place.

    A network trained with noise records the statistics of its noisy activations; evaluated without noise it
    normalises with them all the same. This replaces them by the clean network's: the running statistics are
    reset and averaged over the batches (momentum None, PyTorch's cumulative average; one batch holding all
    images gives exactly their mean and unbiased variance). `model` must be built without noise options; only its
    BatchNorm layers run in training mode here (the rest in eval mode: shake-shake's branch weights are 1/2, not
    random), and it is left in eval mode.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in norms:
        m.train()
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            model(images[start:start + batch_size])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()


def noise_response(model_name: str, state_dict, base_options: dict, images, labels, eps: float | Sequence[float],
                   kinds=KINDS, draws: int = NOISE_RESPONSE_DRAWS, batch_size: int = 500, seed: int = 0,
                   num_classes: int = 10, in_channels: int = 3, batchnorm: str = "recorded",
                   progress: bool = False, label: str = "noise response", estimator: str = "plain",
                   ) -> tuple[float, float, list[KindResponse]]:
    """(J_0, clean error, one KindResponse per eps and kind, eps outer) of the network with weights state_dict.

    For each eps, each kind rebuilds the model with base_options (h, lm_start: the architecture) and that
    kind's noise at eps for its K blocks (options_at), loads the weights (strict: the noise options add no
    parameters), and averages the cross-entropy of `draws` passes with fresh noise (torch.manual_seed(seed)
    before each kind and eps, so one eps gives the same numbers alone or among others). With batchnorm
    "clean" the BatchNorm statistics are first re-estimated from the clean network on these images
    (clean_batchnorm_statistics), and every kind uses those. progress: a tqdm bar (labelled `label`) over the
    eps and kinds, on stderr. estimator "control-variate" averages loss(m) - L1(m) instead of loss(m) for the
    masks, L1 the noise's linear term (nets.control_variate: unbiased, far smaller error at small eps;
    stochastic depth stays plain, see ESTIMATORS). The networks run on the images' device (labels on the same).
    All mask kinds and eps share one clean backward pass per batch (shared_control_variate_draws), each drawing
    as if alone after torch.manual_seed(seed); it draws batch by batch with the draws inner, so its masks are
    not the plain estimator's (draws outer).

    Raises:
        ValueError: eps not finite and > 0 (or listed twice), draws < 2, an unknown kind, eps out of reach
            of a kind, batchnorm not in BATCHNORM_STATISTICS or estimator not in ESTIMATORS.
    """
    import torch

    from nets import build_model

    levels = _eps_values(eps)
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int >= 2; got {draws!r}")
    check_choice("batchnorm", batchnorm, BATCHNORM_STATISTICS)
    check_choice("estimator", estimator, ESTIMATORS)
    architecture = {k: v for k, v in base_options.items() if k in ("h", "lm_start")}
    clean_model = build_model(model_name, num_classes=num_classes, in_channels=in_channels, **architecture)
    clean_model.load_state_dict(state_dict)
    clean_model.to(images.device)
    if batchnorm == "clean":
        clean_batchnorm_statistics(clean_model, images, batch_size)
        state_dict = clean_model.state_dict()
    clean_model.eval()
    clean_loss, clean_error = mean_loss(clean_model, images, labels, batch_size)
    from tqdm import tqdm

    def model_for(options: dict):
        model = build_model(model_name, num_classes=num_classes, in_channels=in_channels, **architecture,
                            **{k: v for k, v in options.items() if v is not None})
        model.load_state_dict(state_dict)
        return model.to(images.device)

    cells = list(itertools.product(levels, kinds))
    options_of = {cell: options_at(cell[1], clean_model.num_blocks, cell[0]) for cell in cells}
    passes_of = {}
    if estimator == "control-variate":  # every mask cell at once: one clean backward per batch for all
        from nets.control_variate import generator_state, shared_control_variate_draws

        masked = [cell for cell in cells if cell[1] != STOCHASTIC_DEPTH]
        torch.manual_seed(seed)
        start_state = generator_state(images.device)
        draws_of = shared_control_variate_draws([model_for(options_of[cell]).eval() for cell in masked], images,
                                                labels, draws, batch_size, start_state, progress=progress)
        passes_of = {cell: list(zip(*cell_draws)) for cell, cell_draws in zip(masked, draws_of)}
    responses = []
    for level, kind in tqdm(cells, desc=label, unit="kind", disable=not progress, leave=False):
        passes = passes_of.get((level, kind))
        if passes is None:
            model = model_for(options_of[level, kind])
            torch.manual_seed(seed)
            _noisy_modules_train(model)
            passes = [mean_loss(model, images, labels, batch_size) for _ in range(draws)]
        losses = np.array([loss for loss, _ in passes])
        responses.append(KindResponse(kind=kind, options=options_of[level, kind], eps=level,
                                      loss=float(losses.mean()),
                                      loss_stderr=float(losses.std(ddof=1) / math.sqrt(draws)),
                                      error=float(np.mean([error for _, error in passes]))))
    return clean_loss, clean_error, responses


@dataclass(frozen=True)
class RunNoiseResponse(MeasuredWith):
    """noise_response of a trained run, with what identifies it and how and where it was measured (MeasuredWith)."""

    run: Path
    model: str
    trained_with: str
    clean_loss: float
    clean_error: float
    kinds: tuple[KindResponse, ...]
    batchnorm: str = "recorded"
    estimator: str = "plain"

    @property
    def setting(self) -> str:
        """What the measured network is: how it was trained, and its BatchNorm statistics when not the recorded."""
        return self.trained_with + ("" if self.batchnorm == "recorded" else ", BatchNorm statistics re-estimated clean")


def trained_with(options: dict, input_noise: float = 0.0) -> str:
    """What a network was trained with, from its model options (TrainConfig.model_options()) and input noise:
    "bernoulli p=0.9", "uniform beta=0.72761", "stochastic depth p_L=0.78124", "no noise", followed by what
    else sets it apart from the plain network: ", h=0.1", ", stochastic depth per batch", ", LM start rest",
    ", input noise 0.3". Summaries pool the runs of one label, so every option that changes what a network
    learns is named when it is not the default."""
    parts = [f"{options['noise']} {k}={options[k]:g}" for k in ("p", "nu", "beta") if options.get(k) is not None
             and not (k == "p" and options[k] == 1.0)]
    if options.get("stochastic_depth") is not None:
        parts.append(f"stochastic depth p_L={options['stochastic_depth']:g}")
    label = ", ".join(parts) or "no noise"
    if options.get("h") is not None and options["h"] != 1.0:
        label += f", h={options['h']:g}"
    if options.get("stochastic_depth_mode", "sample") != "sample":
        label += f", stochastic depth per {options['stochastic_depth_mode']}"
    if options.get("lm_start") not in (None, "zero"):
        label += f", LM start {options['lm_start']}"
    if input_noise:
        label += f", input noise {input_noise:g}"
    return label


def run_noise_response(run_dir: str | os.PathLike, eps: float | Sequence[float], kinds=KINDS, data: str | None = None,
                       n_images: int = NOISE_RESPONSE_IMAGES, draws: int = NOISE_RESPONSE_DRAWS,
                       seed: int = 0, split: str = "train", batchnorm: str = "recorded",
                       progress: bool = False, estimator: str = "plain", device: str = "cpu") -> RunNoiseResponse:
    """noise_response of the network saved in run_dir/checkpoint.pt, on n_images class-balanced images of its
    training set (split "train": the data of J_eps, without augmentation) or test set ("test"), normalised by
    the training set's channel statistics as in training. progress: a tqdm bar on stderr, labelled by the run.

    device: where the networks run ("cpu", the default, "cuda", "cuda:N" or "auto"), in float32 with TF32 off
    (its 10-bit mantissa would blur an excess J_eps - J_0 of 1e-4 relative); CUDA draws other masks than the CPU
    for the same seed and is not bit-reproducible, so its numbers agree with the CPU's within the standard errors.

    Raises:
        ValueError: no checkpoint.pt, n_images < 1, a split other than train/test, a device that is not one of
            nets.device's forms or not present, data that does not load, or noise_response's refusals.
    """
    from nets.trained_run import full_float32, measured_with, measurement_inputs

    trained, images, labels, where = measurement_inputs(run_dir, data, n_images, split, device,
                                                        "the noise response needs")
    config, dataset = trained.config, trained.dataset
    options = config.model_options()
    with full_float32():
        clean_loss, clean_error, responses = noise_response(
            config.model, trained.checkpoint["model"], options, images, labels, eps, kinds=kinds,
            draws=draws, seed=seed, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
            batchnorm=batchnorm, progress=progress, label=trained.run.name, estimator=estimator)
    return RunNoiseResponse(run=trained.run, model=config.model,
                            trained_with=trained_with(options, config.input_noise), clean_loss=clean_loss,
                            clean_error=clean_error, kinds=tuple(responses), batchnorm=batchnorm, estimator=estimator,
                            **measured_with(trained, split, images, draws, seed, where))


def format_table(results: list[RunNoiseResponse]) -> str:
    """A Markdown table: per run and eps, J_0 and for each kind J_eps - J_0 (+- its standard error over draws)
    and c = (J_eps - J_0) / eps^2."""
    kinds = list(dict.fromkeys(k.kind for k in results[0].kinds))
    header = ["run", "trained with", "eps", "J_0",
              *[f"{kind.replace('_', ' ')}: J_eps - J_0 (c)" for kind in kinds]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        for level in dict.fromkeys(k.eps for k in r.kinds):
            cells = [f"{k.excess(r.clean_loss):.4f} +- {k.loss_stderr:.4f} ({k.curvature(r.clean_loss):.3g})"
                     for k in r.kinds if k.eps == level]
            lines.append("| " + " | ".join([r.run.name, r.setting, f"{level:g}", f"{r.clean_loss:.4f}", *cells])
                         + " |")
    return "\n".join(lines)


def to_json(results: list[RunNoiseResponse]) -> str:
    from nets.trained_run import measured_with_json

    return json.dumps([{"run": str(r.run), "model": r.model, "trained_with": r.trained_with, "batchnorm": r.batchnorm,
                        "estimator": r.estimator, **measured_with_json(r),
                        "clean_loss": r.clean_loss, "clean_error": r.clean_error,
                        "kinds": [{"kind": k.kind, "options": k.options, "eps": k.eps, "loss": k.loss,
                                   "loss_stderr": k.loss_stderr, "error": k.error} for k in r.kinds]}
                       for r in results], indent=1)


def from_json(text: str) -> list[RunNoiseResponse]:
    """The results to_json wrote (for summaries of saved measurements); ValueError when text is not that JSON.
    Measurements saved before "batchnorm" (or "estimator") was recorded used the recorded statistics (and the
    plain estimator); those saved before the data, split, images, draws and seed were recorded have None there."""
    from nets.trained_run import measured_with_from_json

    try:
        return [RunNoiseResponse(run=Path(r["run"]), model=r["model"], trained_with=r["trained_with"],
                                 batchnorm=check_choice("batchnorm", r.get("batchnorm", "recorded"),
                                                        BATCHNORM_STATISTICS),
                                 estimator=check_choice("estimator", r.get("estimator", "plain"), ESTIMATORS),
                                 **measured_with_from_json(r),
                                 clean_loss=float(r["clean_loss"]), clean_error=float(r["clean_error"]),
                                 kinds=tuple(KindResponse(kind=k["kind"], options=dict(k["options"]),
                                                          eps=float(k["eps"]), loss=float(k["loss"]),
                                                          loss_stderr=float(k["loss_stderr"]), error=float(k["error"]))
                                             for k in r["kinds"]))
                for r in json.loads(text)]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not the JSON of nets.noise_response ({type(error).__name__}: {error})") from None


def load_saved(paths) -> list[RunNoiseResponse]:
    """The measurements saved in the JSON files `paths` (--save, to_json), in order; ValueError naming the file
    that cannot be read or is not that JSON."""
    from nets.trained_run import read_saved

    return read_saved(paths, from_json)


@dataclass(frozen=True)
class CurvatureSummary:
    """c = (J_eps - J_0) / eps^2 of one noise kind at one eps over the runs of one model and setting
    (RunNoiseResponse.setting), measured on one split of one data set with one estimator: mean and sample
    standard deviation over the runs (seeds); std is 0 for a single run. data and split are None for
    measurements saved before they were recorded."""

    model: str
    setting: str
    kind: str
    eps: float
    runs: int
    mean: float
    std: float
    data: str | None = None
    estimator: str = "plain"
    split: str | None = None


def curvature_summary(results: list[RunNoiseResponse]) -> list[CurvatureSummary]:
    """One CurvatureSummary per (data set, split, model, training setting, estimator, eps, kind), in the order the
    results first name them: the same runs measured with both estimators, or on both splits, are two groups, not
    twice the runs.

    Raises:
        ValueError: one run measured twice in one group (the same kind and eps, e.g. with two seeds of the noise):
            a summary is over runs, so such measurements are summarized separately.
    """
    groups: dict[tuple[str | None, str | None, str, str, str], list[RunNoiseResponse]] = {}
    for r in results:
        groups.setdefault((r.data, r.split, r.model, r.setting, r.estimator), []).append(r)
    out = []
    for (data, split, model, setting, estimator), runs in groups.items():
        cells: dict[tuple[float, str], dict[Path, float]] = {}
        for r in runs:
            for k in r.kinds:
                cell = cells.setdefault((k.eps, k.kind), {})
                if r.run in cell:
                    raise ValueError(f"{r.run} is measured twice ({k.kind} at eps {k.eps:g}, {estimator} "
                                     "estimator): summarize its measurements separately")
                cell[r.run] = k.curvature(r.clean_loss)
        for (level, kind), by_run in cells.items():
            values = list(by_run.values())
            spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            out.append(CurvatureSummary(model=model, setting=setting, kind=kind, eps=level, runs=len(values),
                                        mean=float(np.mean(values)), std=spread, data=data, estimator=estimator,
                                        split=split))
    return out


def format_summary(summaries: list[CurvatureSummary]) -> str:
    """A Markdown table: per data set, model, training setting, estimator and eps, the runs' mean c +- sample std
    for each kind ("-" for a data set that was not recorded; "(test)" after it for the test split)."""
    kinds = list(dict.fromkeys(s.kind for s in summaries))
    header = ["data", "model", "trained with", "estimator", "eps", "runs",
              *[f"{kind.replace('_', ' ')}: c" for kind in kinds]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows: dict[tuple[str | None, str | None, str, str, str, float], dict[str, CurvatureSummary]] = {}
    for s in summaries:
        rows.setdefault((s.data, s.split, s.model, s.setting, s.estimator, s.eps), {})[s.kind] = s
    for (data, split, model, setting, estimator, level), by_kind in rows.items():
        runs = max(s.runs for s in by_kind.values())
        cells = [f"{by_kind[k].mean:.3g} +- {by_kind[k].std:.2g}" if k in by_kind else "-" for k in kinds]
        lines.append("| " + " | ".join([data_label(data, split), model, setting, estimator, f"{level:g}", str(runs),
                                        *cells]) + " |")
    return "\n".join(lines)


def build_parser():
    """The argparse parser of `python -m nets.noise_response`."""
    from kolmogorov._cli import OneLineArgumentParser

    from nets.trained_run import add_measurement_arguments

    parser = OneLineArgumentParser(prog="python -m nets.noise_response", description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, nargs="+", help="the noise level(s) eps (eq. 3.4) of every kind")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="noise kinds (default: all)")
    parser.add_argument("--batchnorm", choices=BATCHNORM_STATISTICS, default="recorded",
                        help="BatchNorm statistics: those recorded in training (default) or re-estimated from the "
                             "clean network on the measured images")
    parser.add_argument("--estimator", choices=ESTIMATORS, default="plain",
                        help="mean noisy loss over the draws (plain, the default) or that minus the noise's "
                             "linear term, whose mean is exactly zero (control-variate: an error O(eps^2) "
                             "instead of O(eps) per draw for the masks, one clean backward pass per batch; "
                             "stochastic depth stays plain)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    add_measurement_arguments(parser, "kind", NOISE_RESPONSE_IMAGES, NOISE_RESPONSE_DRAWS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from kolmogorov._cli import fail, print_output
    from nets.trained_run import measure_or_read

    args = build_parser().parse_args(argv)
    results = measure_or_read(
        args, "python -m nets.noise_response",
        lambda run: run_noise_response(run, args.eps, kinds=tuple(args.kinds), data=args.data, n_images=args.images,
                                       draws=args.draws, seed=args.seed, split=args.split, batchnorm=args.batchnorm,
                                       progress=not args.no_progress, estimator=args.estimator, device=args.device),
        from_json, to_json, eps_given=bool(args.eps))
    try:
        text = (to_json(results) if args.json else
                format_summary(curvature_summary(results)) if args.summary else format_table(results))
    except ValueError as error:  # a summary that would count one run twice
        fail("python -m nets.noise_response", str(error))
    print_output(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
