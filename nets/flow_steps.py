"""How large are the Euler steps a trained residual network takes? Per block, ||h F(X_k)|| / ||S X_k||.

The ODE view (main paper eq. (3.1) without noise; robust-ResNet paper eq. (4)) reads block k as one step
X_{k+1} = S X_k + h F(X_k) of the flow dX = f dt, with S the shortcut (identity, or a projection where a
stage changes width). The relative step ||h F(X_k)|| / ||S X_k||, per image and then averaged, says how far
each block moves the features: a flow of K steps of size about 1/K is the picture behind the modified
equation; a small h that training does not compensate (by larger branch weights) gives a shorter flow.

Measured in eval mode (no noise masks, no dropped blocks: the deterministic network of eq. (4.2)) on
normalized images, for every ResidualBlock of the model in the order the forward pass reaches them.
`python -m nets.flow_steps RUN_DIR ...` measures trained runs (their checkpoint.pt, loaded with
weights_only=True) on their own test images, and beside the steps how far training moved the stem, whose output
is the stream the first steps are taken against (nets.stem_norms: ||W|| at the start and the end, in h = 1 terms).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nets.stem_norms import StemNorms, initial_weights, stem_norms

FLOW_STEPS_IMAGES = 1000  # test images measured by default


@dataclass(frozen=True)
class FlowSteps:
    """Per-block step sizes of one network on a set of inputs.

    Attributes:
        blocks: the blocks' module names ("blocks.0", ...), in the order the forward pass reaches them.
        h: each block's step factor.
        relative_step: (K,) mean over inputs of ||h F(X_k)|| / ||S X_k|| (L2 norms over all but the batch axis).
        relative_step_std: (K,) its standard deviation over inputs.
        increment_norm: (K,) mean ||h F(X_k)||.
        stream_norm: (K,) mean ||S X_k||.
        input_norm: (K,) mean ||X_k||, the block's input as its branch receives it.
        shortcut_gain: (K,) mean over inputs of ||S X_k|| / ||X_k||: exactly 1 for an identity shortcut, the
            learned gain of a projection. Per input, the relative step is h ||F(X_k)|| / ||X_k|| divided by it,
            so the two say whether a block's step is set by its branch or by its shortcut.
        n_inputs: how many inputs were measured.
    """

    blocks: tuple[str, ...]
    h: tuple[float, ...]
    relative_step: np.ndarray
    relative_step_std: np.ndarray
    increment_norm: np.ndarray
    stream_norm: np.ndarray
    input_norm: np.ndarray
    shortcut_gain: np.ndarray
    n_inputs: int

    @property
    def total(self) -> float:
        """Sum of the mean relative steps: the length of the flow in units of the stream's size."""
        return float(self.relative_step.sum())


def _residual_blocks(model) -> list[tuple[str, object]]:
    from nets.models.blocks import ResidualBlock

    return [(name, module) for name, module in model.named_modules() if isinstance(module, ResidualBlock)]


def flow_steps(model, inputs, batch_size: int = 250) -> FlowSteps:
    """Relative Euler steps ||h F(X_k)|| / ||S X_k|| of every ResidualBlock of `model` on `inputs`.

    Args:
        model: a network of nets.models built of ResidualBlock (PreResNets, LM-ResNets, shake-shake, MLP
            ResNets); it is put in eval mode and left there.
        inputs: a float tensor (N, ...) as the model takes it (normalized images, feature vectors).
        batch_size: inputs per forward pass.

    The input X_k of each block is captured on its branch's call in the model's own forward pass (so an
    LM-ResNet's stream, eq. (1) of its paper, is what enters the branch), then S X_k and h F(X_k) are
    computed from it by the block itself (ResidualBlock.shortcut and .increment).

    Raises:
        ValueError: a model without ResidualBlock, empty inputs, or batch_size < 1.
    """
    import torch

    blocks = _residual_blocks(model)
    if not blocks:
        raise ValueError(f"model must contain residual blocks (nets.models.blocks.ResidualBlock); "
                         f"{type(model).__name__} has none")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a tensor (N, ...) with N >= 1")
    captured: dict[int, torch.Tensor] = {}
    handles = [block.branch.register_forward_pre_hook(lambda _m, args, k=k: captured.__setitem__(k, args[0]))
               for k, (_, block) in enumerate(blocks)]
    increments: list[list[torch.Tensor]] = [[] for _ in blocks]
    streams: list[list[torch.Tensor]] = [[] for _ in blocks]
    inputs_seen: list[list[torch.Tensor]] = [[] for _ in blocks]
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, inputs.shape[0], batch_size):
                captured.clear()
                model(inputs[start:start + batch_size])
                states = dict(captured)  # the calls below run the branches again and must not overwrite these
                for k, (name, block) in enumerate(blocks):
                    if k not in states:
                        raise ValueError(f"block {name} was not reached by the forward pass")
                    x = states[k]
                    streams[k].append(block.shortcut(x).flatten(1).double().norm(dim=1))
                    inputs_seen[k].append(x.flatten(1).double().norm(dim=1))
                    increments[k].append(block.increment(x).flatten(1).double().norm(dim=1))
    finally:
        for handle in handles:
            handle.remove()
    increment_norms = [torch.cat(i).numpy() for i in increments]
    stream_norms = [torch.cat(s).numpy() for s in streams]
    input_norms = [torch.cat(x).numpy() for x in inputs_seen]
    ratio = [i / s for i, s in zip(increment_norms, stream_norms)]  # per input
    return FlowSteps(blocks=tuple(name for name, _ in blocks), h=tuple(float(block.h) for _, block in blocks),
                     relative_step=np.array([r.mean() for r in ratio]),
                     relative_step_std=np.array([r.std() for r in ratio]),
                     increment_norm=np.array([i.mean() for i in increment_norms]),
                     stream_norm=np.array([s.mean() for s in stream_norms]),
                     input_norm=np.array([x.mean() for x in input_norms]),
                     shortcut_gain=np.array([(s / x).mean() for s, x in zip(stream_norms, input_norms)]),
                     n_inputs=int(inputs.shape[0]))


@dataclass(frozen=True)
class RunFlowSteps:
    """flow_steps of a trained run on its test images, with what identifies the run."""

    run: Path
    model: str
    h: float | None
    epoch: int
    steps: FlowSteps
    stem: StemNorms | None = None  # None: a model without a stem convolution


def run_flow_steps(run_dir: str | os.PathLike, data: str | None = None,
                   n_images: int = FLOW_STEPS_IMAGES) -> RunFlowSteps:
    """flow_steps of the network saved in run_dir/checkpoint.pt, on n_images class-balanced test images
    (nets.trained_run.balanced_indices), and its stem's norms at the start of training (rebuilt from the seed,
    nets.stem_norms.initial_weights) and now.

    The model is rebuilt from the checkpoint's configuration and its weights loaded with
    torch.load(weights_only=True) (nets.checkpoint.load_checkpoint); the images are the run's data
    (or `data`, e.g. the same data moved elsewhere), normalized by their training set's channel statistics
    as in training.

    Raises:
        ValueError: no checkpoint.pt in run_dir, a checkpoint that cannot be read, n_images < 1, or data
            that does not load (nets.data.load_dataset's message).
    """
    from nets.trained_run import load_trained_run

    trained = load_trained_run(run_dir, data, n_images, "flow steps need")
    images, _ = trained.images(n_images, "test")
    model = trained.build_model()
    return RunFlowSteps(run=trained.run, model=trained.config.model, h=trained.config.h,
                        epoch=int(trained.checkpoint["epoch"]), steps=flow_steps(model, images),
                        stem=stem_norms(initial_weights(trained), model))


def format_table(results: list[RunFlowSteps]) -> str:
    """A Markdown table: one row per run, the mean relative step of each block and their sum, and the stem's norm
    in h = 1 terms at the start of training and now ("-" without a stem or outside the unit-step identity)."""
    width = max(len(r.steps.blocks) for r in results)
    header = ["run", "model", "h", "epoch", *[f"block {k}" for k in range(width)], "sum", "stem (h = 1 terms)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [f"{s:.3f} +- {d:.3f}" for s, d in zip(r.steps.relative_step, r.steps.relative_step_std)]
        cells += [""] * (width - len(cells))
        h = "default" if r.h is None else f"{r.h:g}"
        stem = ("-" if r.stem is None or r.stem.unit_step_start is None
                else f"{r.stem.unit_step_start:.4g} -> {r.stem.unit_step_end:.4g}")
        lines.append("| " + " | ".join([r.run.name, r.model, h, str(r.epoch), *cells, f"{r.steps.total:.3f}", stem])
                     + " |")
    return "\n".join(lines)


def to_json(results: list[RunFlowSteps]) -> str:
    """The numbers of format_table and the norms behind them, as JSON (stem_norm: nets.stem_norms.StemNorms's
    fields, null without a stem)."""
    return json.dumps([{"run": str(r.run), "model": r.model, "h": r.h, "epoch": r.epoch, "n_inputs": r.steps.n_inputs,
                        "blocks": list(r.steps.blocks), "block_h": list(r.steps.h),
                        "relative_step": r.steps.relative_step.tolist(),
                        "relative_step_std": r.steps.relative_step_std.tolist(),
                        "increment_norm": r.steps.increment_norm.tolist(),
                        "stream_norm": r.steps.stream_norm.tolist(),
                        "input_norm": r.steps.input_norm.tolist(),
                        "shortcut_gain": r.steps.shortcut_gain.tolist(),
                        "stem_norm": None if r.stem is None else dataclasses.asdict(r.stem)} for r in results], indent=1)


def build_parser():
    """The argparse parser of `python -m nets.flow_steps`."""
    from kolmogorov._cli import OneLineArgumentParser, positive_int

    parser = OneLineArgumentParser(prog="python -m nets.flow_steps", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories with a checkpoint.pt")
    parser.add_argument("--data", default=None, help="the data to measure on (default: each run's own)")
    parser.add_argument("--images", type=positive_int, default=FLOW_STEPS_IMAGES,
                        help=f"test images measured (default {FLOW_STEPS_IMAGES})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m nets.flow_steps RUN_DIR ... [--data PATH] [--images N] [--json]`."""
    from kolmogorov._cli import fail, print_output

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        results = [run_flow_steps(run, args.data, args.images) for run in args.runs]
    except ValueError as error:
        fail(parser.prog, str(error))
    print_output(to_json(results) if args.json else format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
