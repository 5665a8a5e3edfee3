"""Which weights did training move? Each parameter tensor's end against its start decayed as weight decay alone
would have decayed it.

SGD with momentum mu and weight decay lambda (torch.optim.SGD: b <- mu b + (g + lambda w), w <- w - lr b) is linear
in (w, b), and with the gradient g of the loss it is affine: a tensor that the loss never moves (g = 0 at every step)
ends at exactly F times its start, every element alike, where F, the decay-only factor, depends only on the recipe
(the learning rate of every step, mu and lambda). With mu = 0.9 the decay acts at about ten times the learning rate:
the main paper's recipe cut to 24 epochs of 391 steps (lr 0.1, divided by 10 at epochs 12 and 18) gives F = 0.6098.
So W_end - F W_start is exactly the part of the end that the loss's gradients put there, and

    loss fraction = ||W_end - F W_start|| / ||W_end||

is 0 for a tensor the loss never moved and 1 for one that starts at zero (a BatchNorm bias). A branch that a large
stream has nearly silenced (its gradient scales as one over the stream through the head's BatchNorm) shows small
fractions (docs/experiments.md section 8: the learning-rate arm of the h = 0.01 split, 0.04 to 0.25 on its branch
convolutions against h = 0.01's 0.40 to 0.82). Read the fraction rather than the norm: a tensor followed by BatchNorm
is scale-invariant, so its norm can end near F times its start although the loss turned it far.

The start is rebuilt from the run's configuration and seed (nets.stem_norms.initial_weights); the learning rates are
those the run recorded per epoch, and the steps per epoch those nets.epoch.train_epoch takes
(nets.epoch.optimizer_steps_per_epoch counts the batches it trains on).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from kolmogorov._checks import check_int

if TYPE_CHECKING:
    from torch import nn


def decay_only_factor(epoch_lrs: Sequence[float], steps_per_epoch: int, momentum: float,
                      weight_decay: float) -> float:
    """F: what torch.optim.SGD (no dampening, no Nesterov) leaves of a weight whose loss gradient is zero at every
    step, over epochs of steps_per_epoch steps at the learning rates epoch_lrs.

    One step maps (w, b) to (w - lr (mu b + lambda w), mu b + lambda w) from b = 0 (torch's first step sets
    b = g + lambda w, the same thing), so F is the (w, w) entry of the product of the epochs' step matrices raised to
    steps_per_epoch, computed in float64.

    Raises:
        ValueError: no epochs, a negative or non-finite learning rate, steps_per_epoch < 1, momentum outside [0, 1)
            or a negative weight decay.
    """
    lrs = [float(lr) for lr in epoch_lrs]
    if not lrs:
        raise ValueError("epoch_lrs must hold at least one epoch's learning rate")
    if not all(math.isfinite(lr) and lr >= 0 for lr in lrs):
        raise ValueError(f"epoch_lrs must be finite and >= 0; got {lrs}")
    check_int("steps_per_epoch", steps_per_epoch, 1)
    if not (0.0 <= momentum < 1.0):
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be finite and >= 0; got {weight_decay!r}")
    state = np.eye(2)
    for lr in lrs:
        step = np.array([[1.0 - lr * weight_decay, -lr * momentum], [weight_decay, momentum]])
        state = np.linalg.matrix_power(step, steps_per_epoch) @ state
    return float(state[0, 0])


@dataclass(frozen=True)
class TensorMotion:
    """How one parameter tensor moved, in Frobenius norms (float64).

    Attributes:
        name: the parameter's name in the model ("blocks.0.branch.conv2.weight").
        start: ||W_start||, when training started.
        end: ||W_end||, in the checkpoint.
        decayed_start: ||F W_start||, where weight decay alone would have taken it.
        loss_part: ||W_end - F W_start||, what the loss's gradients put there.
    """

    name: str
    start: float
    end: float
    decayed_start: float
    loss_part: float

    @property
    def end_over_decayed(self) -> float:
        """end / decayed_start: 1 for a tensor only decayed (and one the loss turned without resizing it); NaN for a
        tensor that starts at zero."""
        return self.end / self.decayed_start if self.decayed_start > 0 else math.nan

    @property
    def loss_fraction(self) -> float:
        """loss_part / end: 0 for a tensor the loss never moved, 1 for one that starts at zero; NaN when it ends at
        zero."""
        return self.loss_part / self.end if self.end > 0 else math.nan


def weight_motion(start_model: "nn.Module", end_model: "nn.Module", factor: float) -> list[TensorMotion]:
    """TensorMotion of every parameter of end_model (in named_parameters order) against the same parameter of
    start_model decayed by `factor` (decay_only_factor).

    Raises:
        ValueError: a factor outside (0, 1], or models whose parameters differ in names or shapes.
    """
    if not (0.0 < factor <= 1.0):
        raise ValueError(f"factor must be in (0, 1]; got {factor!r}")
    starts = dict(start_model.named_parameters())
    motions = []
    for name, end in end_model.named_parameters():
        start = starts.get(name)
        if start is None or start.shape != end.shape:
            raise ValueError(f"start_model and end_model must have the same parameters; {name} differs")
        w0, w1 = start.detach().double().cpu(), end.detach().double().cpu()
        start_norm = float(w0.norm())
        motions.append(TensorMotion(name=name, start=start_norm, end=float(w1.norm()),
                                    decayed_start=factor * start_norm, loss_part=float((w1 - factor * w0).norm())))
    return motions


@dataclass(frozen=True)
class RunWeightMotion:
    """weight_motion of a trained run, with the recipe behind its decay-only factor."""

    run: Path
    model: str
    epoch: int
    steps_per_epoch: int
    factor: float
    tensors: tuple[TensorMotion, ...]


def run_weight_motion(run_dir: str | os.PathLike, data: str | None = None) -> RunWeightMotion:
    """weight_motion of the network in run_dir/checkpoint.pt (loaded with weights_only=True) against its start,
    rebuilt from the run's configuration and seed, at the decay-only factor of the epochs it has trained.

    Raises:
        ValueError: no readable checkpoint, data that does not load (`data`: the run's data moved elsewhere; it
            gives the training set's size), or a run with stochastic depth in "batch" mode, whose dropped blocks
            skip the optimizer's step (torch.optim.SGD leaves a parameter without gradient alone), so that no one
            factor holds for them.
    """
    from nets.epoch import optimizer_steps_per_epoch
    from nets.stem_norms import initial_weights
    from nets.trained_run import load_trained_run

    trained = load_trained_run(run_dir, data, 1, "weight motion needs")
    config, checkpoint = trained.config, trained.checkpoint
    if config.stochastic_depth is not None and config.stochastic_depth_mode == "batch":
        raise ValueError(f"run_dir {trained.run}: stochastic depth in batch mode skips a dropped block's optimizer "
                         "steps, so no decay-only factor holds for its blocks")
    epoch = int(checkpoint["epoch"])
    lrs = list(checkpoint["history"]["lr"])[:epoch]
    steps = optimizer_steps_per_epoch(len(trained.dataset.train_labels), int(config.batch_size),
                                      int(checkpoint.get("world_size", 1) or 1))
    factor = decay_only_factor(lrs, steps, float(config.momentum), float(config.weight_decay))
    tensors = weight_motion(initial_weights(trained), trained.build_model(), factor)
    return RunWeightMotion(run=trained.run, model=config.model, epoch=epoch, steps_per_epoch=steps, factor=factor,
                           tensors=tuple(tensors))


def _selected(result: RunWeightMotion, only: Sequence[str]) -> list[TensorMotion]:
    return [t for t in result.tensors if not only or any(part in t.name for part in only)]


def format_table(results: Sequence[RunWeightMotion], only: Sequence[str] = ()) -> str:
    """Per run a heading line (its decay-only factor) and a Markdown table, one row per parameter tensor whose name
    contains one of `only` (every tensor when empty)."""
    blocks = []
    for r in results:
        lines = [f"{r.run.name}: {r.model}, epoch {r.epoch}, {r.steps_per_epoch} steps per epoch, "
                 f"decay-only factor F = {r.factor:.4f}", "",
                 "| tensor | start | end | end / (F start) | loss fraction |", "|---|---|---|---|---|"]
        for t in _selected(r, only):
            ratio = "-" if math.isnan(t.end_over_decayed) else f"{t.end_over_decayed:.3f}"
            fraction = "-" if math.isnan(t.loss_fraction) else f"{t.loss_fraction:.3f}"
            lines.append(f"| {t.name} | {t.start:.4g} | {t.end:.4g} | {ratio} | {fraction} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(results: Sequence[RunWeightMotion], only: Sequence[str] = ()) -> str:
    """format_table's runs as JSON: the recipe's numbers and, per tensor, TensorMotion's fields and properties
    (null for NaN)."""
    def finite(value: float) -> float | None:
        return None if math.isnan(value) else value

    return json.dumps([{"run": str(r.run), "model": r.model, "epoch": r.epoch, "steps_per_epoch": r.steps_per_epoch,
                        "decay_only_factor": r.factor,
                        "tensors": [{**asdict(t), "end_over_decayed": finite(t.end_over_decayed),
                                     "loss_fraction": finite(t.loss_fraction)} for t in _selected(r, only)]}
                       for r in results], indent=1)


def build_parser():
    """The argparse parser of `python -m nets.weight_motion`."""
    from kolmogorov._cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog="python -m nets.weight_motion", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories with a checkpoint.pt")
    parser.add_argument("--data", default=None, help="the runs' data, if moved (default: each run's own)")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="show only the tensors whose name contains one of these (e.g. conv2 stem)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m nets.weight_motion RUN_DIR ... [--data PATH] [--only TEXT ...] [--json]`."""
    from kolmogorov._cli import fail, print_output

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        results = [run_weight_motion(run, args.data) for run in args.runs]
    except ValueError as error:
        fail(parser.prog, str(error))
    print_output(to_json(results, args.only) if args.json else format_table(results, args.only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
