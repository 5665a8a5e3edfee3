"""Two-point masks: the c of the eps^2 law against the size of a mask's jumps, at fixed variance and weights.

A mean-one mask m of variance v = K eps^2 on every branch output (each kind of eqs. (3.2), (3.13), (3.14) at
noise level eps, K blocks) gives J_eps - J_0 = c eps^2 + o(eps^2) at fixed weights (nets.noise_response). To
second order in m - 1, c depends on v alone: c = (K/2) sum_i H_ii y_i^2, y_i the outputs the masks multiply and H
the Hessian of the loss in them. A Bernoulli mask does not move its units a little, though: it removes one with
probability about v and rescales the others by 1/p, so all its moments are of order v, and its c is the whole
change of removing a unit less its linear part, K sum_i [loss(y - y_i e_i) - loss(y) + g_i y_i]. The two agree
where the loss is quadratic in each unit's scale over [0, 1]. The two-point family

    m = 1 + v / a   with probability 1 - q,      m = 1 - a   with probability q = v / (a^2 + v),

has mean 1 and variance v for every jump a in [sqrt(v), 1]: a = sqrt(v) is a fair coin 1 +- sqrt(v) (small
moves: the Gaussian mask's c to leading order), and a = 1 is the Bernoulli mask of (3.1) with p = 1 / (1 + v),
drawn from the same uniform numbers as nets.models.noise draws it (a unit is kept where u < p). Measuring c
along a at fixed eps and weights tells whether a Bernoulli and a Gaussian c differ by the size of the jumps.
The law itself (values, probabilities, cumulants) is kolmogorov.two_point's, which also answers the same
question exactly for the 1-D flow (figure flow_jumps).

    python -m nets.two_point_masks RUN_DIR... --eps 0.06 [--jumps 0.25 0.5 1] [--images 2000] [--draws 8]
        [--seed 0] [--device cpu] [--save FILE.json] [--summary]

Each jump's J_eps is estimated with the control variate of nets.control_variate (the masks' linear term,
whose mean is zero for any mean-one mask, subtracted), all jumps from the same uniform numbers (common random
numbers: their differences are surer than each value) and one clean backward pass per batch.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from kolmogorov.two_point import check_jump, check_level, jump_probability, smallest_jump
from nets.noise_response import NOISE_RESPONSE_DRAWS, NOISE_RESPONSE_IMAGES
from nets.trained_run import MeasuredWith, data_label


def draw_two_point_mask(y, jump: float, variance: float):
    """A two-point mask of y's shape, device and memory format: 1 + v / a where a uniform u < 1 - q, else 1 - a.

    Drawn in nets.models.noise.draw_dtype(y.dtype) from torch's generator of y's device, one uniform number per
    element, like the Bernoulli mask of nets.models.noise.mask_like (which keeps a unit where u < p)."""
    import torch

    from nets.models.noise import draw_dtype

    keep = 1.0 - jump_probability(jump, variance)
    u = torch.rand_like(y, dtype=draw_dtype(y.dtype))
    return torch.where(u < keep, u.new_tensor(1.0 + variance / jump), u.new_tensor(1.0 - jump))


@dataclass(frozen=True)
class JumpResponse:
    """J_eps of the two-point mask with one jump a: the control-variate mean over draws and its standard error."""

    jump: float
    loss: float
    loss_stderr: float
    error: float

    def curvature(self, clean_loss: float, eps: float) -> float:
        """c = (J_eps - J_0) / eps^2."""
        return (self.loss - clean_loss) / eps ** 2


def jump_response(model_name: str, state_dict, base_options: dict, images, labels, eps: float,
                  jumps: Sequence[float] | None = None, draws: int = NOISE_RESPONSE_DRAWS, batch_size: int = 500, seed: int = 0,
                  num_classes: int = 10, in_channels: int = 3,
                  progress: bool = False) -> tuple[float, float, list[JumpResponse]]:
    """(J_0, clean error, one JumpResponse per jump) of the network with weights state_dict under two-point masks
    of variance K eps^2 on its K residual branches (where the noise layers of Fig. 1 sit), on the images' device.

    The masks are applied by forward hooks on the injection modules of the network built with Gaussian noise at
    eps (only their places are used), in eval mode; every jump starts from torch.manual_seed(seed). jumps
    default to default_jumps(K, eps).

    Raises:
        ValueError: eps not finite and > 0, or above 1/sqrt(K) (no jump fits: sqrt(K eps^2) > 1); a jump outside
            [sqrt(K eps^2), 1] or listed twice; draws < 2.
    """
    import torch

    from nets import build_model
    from nets.control_variate import generator_state, shared_control_variate_draws
    from nets.noise_response import mean_loss, options_at

    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 2:
        raise ValueError(f"draws must be an int >= 2; got {draws!r}")
    architecture = {k: v for k, v in base_options.items() if k in ("h", "lm_start")}
    clean = build_model(model_name, num_classes=num_classes, in_channels=in_channels, **architecture)
    clean.load_state_dict(state_dict)
    clean.to(images.device).eval()
    n_blocks, eps = check_level(clean.num_blocks, eps)
    variance = n_blocks * eps ** 2
    if jumps is None:
        jumps = default_jumps(clean.num_blocks, eps)
    levels = tuple(check_jump(jump, variance) for jump in jumps)
    if not levels or len(set(levels)) != len(levels):
        raise ValueError(f"jumps must list one or more distinct values; got {list(jumps)}")
    clean_loss, clean_error = mean_loss(clean, images, labels, batch_size)
    placed = build_model(model_name, num_classes=num_classes, in_channels=in_channels, **architecture,
                         **{k: v for k, v in options_at("gaussian", clean.num_blocks, eps).items() if v is not None})
    placed.load_state_dict(state_dict)
    placed.to(images.device).eval()
    torch.manual_seed(seed)
    drawers = [partial(_drawer, jump=jump, variance=variance) for jump in levels]
    per_jump = shared_control_variate_draws([placed] * len(levels), images, labels, draws, batch_size,
                                            generator_state(images.device), progress=progress, drawers=drawers)
    responses = []
    for jump, (losses, errors) in zip(levels, per_jump):
        values = np.array(losses)
        responses.append(JumpResponse(jump=jump, loss=float(values.mean()),
                                      loss_stderr=float(values.std(ddof=1) / math.sqrt(draws)),
                                      error=float(np.mean(errors))))
    return clean_loss, clean_error, responses


def _drawer(module, y, jump: float, variance: float):
    return draw_two_point_mask(y, jump, variance)


@dataclass(frozen=True)
class RunJumpResponse(MeasuredWith):
    """jump_response of a trained run, with what identifies it and how and where it was measured (MeasuredWith)."""

    run: Path
    model: str
    trained_with: str
    eps: float
    clean_loss: float
    clean_error: float
    jumps: tuple[JumpResponse, ...]


def default_jumps(n_blocks: int, eps: float) -> tuple[float, ...]:
    """sqrt(K eps^2) (small moves), then 0.25, 0.5, 0.75 where above it, and 1 (the Bernoulli mask)."""
    low = smallest_jump(n_blocks * eps ** 2)
    return (low, *(a for a in (0.25, 0.5, 0.75) if a > low), 1.0)


def run_jump_response(run_dir: str | os.PathLike, eps: float, jumps: Sequence[float] | None = None,
                      data: str | None = None, n_images: int = NOISE_RESPONSE_IMAGES,
                      draws: int = NOISE_RESPONSE_DRAWS, seed: int = 0, split: str = "train", device: str = "cpu",
                      progress: bool = False) -> RunJumpResponse:
    """jump_response of the network in run_dir/checkpoint.pt on n_images class-balanced images of its training
    (or test) set, as nets.noise_response.run_noise_response measures it (same images, float32 with TF32 off on
    CUDA); jumps default to default_jumps(K, eps) (jump_response).

    Raises:
        ValueError: run_noise_response's refusals (checkpoint, images, split, device, data) and jump_response's.
    """
    from nets.noise_response import trained_with
    from nets.trained_run import full_float32, measured_with, measurement_inputs

    trained, images, labels, where = measurement_inputs(run_dir, data, n_images, split, device,
                                                        "the jump response needs")
    config, dataset = trained.config, trained.dataset
    options = config.model_options()
    with full_float32():
        clean_loss, clean_error, responses = jump_response(
            config.model, trained.checkpoint["model"], options, images, labels, eps, jumps,
            draws=draws, seed=seed, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
            progress=progress)
    return RunJumpResponse(run=trained.run, model=config.model, trained_with=trained_with(options, config.input_noise),
                           eps=float(eps),
                           clean_loss=clean_loss, clean_error=clean_error, jumps=tuple(responses),
                           **measured_with(trained, split, images, draws, seed, where))


def to_json(results: list[RunJumpResponse]) -> str:
    from nets.trained_run import measured_with_json

    return json.dumps([{"run": str(r.run), "model": r.model, "trained_with": r.trained_with, "eps": r.eps,
                        "clean_loss": r.clean_loss, "clean_error": r.clean_error, **measured_with_json(r),
                        "jumps": [{"jump": j.jump, "loss": j.loss, "loss_stderr": j.loss_stderr, "error": j.error}
                                  for j in r.jumps]}
                       for r in results], indent=1)


def from_json(text: str) -> list[RunJumpResponse]:
    """The results to_json wrote; ValueError when text is not that JSON (or a field of how it was measured has the
    wrong type, as nets.noise_response checks them)."""
    from nets.trained_run import measured_with_from_json

    try:
        return [RunJumpResponse(run=Path(r["run"]), model=r["model"], trained_with=r["trained_with"],
                                eps=float(r["eps"]), clean_loss=float(r["clean_loss"]),
                                clean_error=float(r["clean_error"]), **measured_with_from_json(r),
                                jumps=tuple(JumpResponse(jump=float(j["jump"]), loss=float(j["loss"]),
                                                         loss_stderr=float(j["loss_stderr"]), error=float(j["error"]))
                                            for j in r["jumps"]))
                for r in json.loads(text)]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not the JSON of nets.two_point_masks ({type(error).__name__}: {error})") from None


def format_table(results: list[RunJumpResponse]) -> str:
    """A Markdown table: per run, J_0 and for each jump c = (J_eps - J_0) / eps^2 +- its standard error."""
    jumps = list(dict.fromkeys(round(j.jump, 6) for r in results for j in r.jumps))
    header = ["run", "trained with", "eps", "J_0", *[f"c at a = {a:g}" for a in jumps]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        by_jump = {round(j.jump, 6): j for j in r.jumps}
        cells = [f"{by_jump[a].curvature(r.clean_loss, r.eps):.3g} +- {by_jump[a].loss_stderr / r.eps ** 2:.2g}"
                 if a in by_jump else "-" for a in jumps]
        lines.append("| " + " | ".join([r.run.name, r.trained_with, f"{r.eps:g}", f"{r.clean_loss:.4f}", *cells])
                     + " |")
    return "\n".join(lines)


def format_summary(results: list[RunJumpResponse]) -> str:
    """A Markdown table: per data set (and split), model, training setting and eps, each jump's c over the runs
    (mean +- sample std); ValueError when one run is measured twice at one eps (a summary is over runs)."""
    jumps = list(dict.fromkeys(round(j.jump, 6) for r in results for j in r.jumps))
    groups: dict[tuple[str | None, str | None, str, str, float], list[RunJumpResponse]] = {}
    for r in results:
        runs = groups.setdefault((r.data, r.split, r.model, r.trained_with, r.eps), [])
        if any(other.run == r.run for other in runs):
            raise ValueError(f"{r.run} is measured twice at eps {r.eps:g}: summarize its measurements separately")
        runs.append(r)
    header = ["data", "model", "trained with", "eps", "runs", *[f"c at a = {a:g}" for a in jumps]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (data, split, model, setting, eps), runs in groups.items():
        cells = []
        for a in jumps:
            values = [j.curvature(r.clean_loss, eps) for r in runs for j in r.jumps if round(j.jump, 6) == a]
            spread = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            cells.append(f"{np.mean(values):.3g} +- {spread:.2g}" if values else "-")
        lines.append("| " + " | ".join([data_label(data, split), model, setting, f"{eps:g}", str(len(runs)), *cells])
                     + " |")
    return "\n".join(lines)


def build_parser():
    """The argparse parser of `python -m nets.two_point_masks`."""
    from kolmogorov._cli import OneLineArgumentParser

    from nets.trained_run import add_measurement_arguments

    parser = OneLineArgumentParser(prog="python -m nets.two_point_masks", description=__doc__.splitlines()[0])
    parser.add_argument("--eps", type=float, help="the noise level eps (eq. 3.4); the masks' variance is K eps^2")
    parser.add_argument("--jumps", type=float, nargs="+", default=None,
                        help="jumps a in [sqrt(K eps^2), 1] (default: sqrt(K eps^2), 0.25, 0.5, 0.75, 1)")
    add_measurement_arguments(parser, "jump", NOISE_RESPONSE_IMAGES, NOISE_RESPONSE_DRAWS)
    return parser


def main(argv: list[str] | None = None) -> int:
    from kolmogorov._cli import fail, print_output
    from nets.trained_run import measure_or_read

    args = build_parser().parse_args(argv)
    prog = "python -m nets.two_point_masks"

    def measure(run: str) -> RunJumpResponse:
        try:
            return run_jump_response(run, args.eps, args.jumps, data=args.data, n_images=args.images,
                                     draws=args.draws, seed=args.seed, split=args.split, device=args.device,
                                     progress=not args.no_progress)
        except ValueError as error:
            raise ValueError(str(error).replace("jump must", "--jumps must")) from None

    results = measure_or_read(args, prog, measure, from_json, to_json, eps_given=args.eps is not None)
    try:
        text = format_summary(results) if args.summary else format_table(results)
    except ValueError as error:  # a summary that would count one run twice
        fail(prog, str(error))
    print_output(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
