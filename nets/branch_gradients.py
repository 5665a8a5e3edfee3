"""Where does a residual branch's gradient come from: the rest of the network, or the branch itself?

Block k computes X_{k+1} = S X_k + h D_k(M_k(r_k)) with r_k = F_k(X_k) its branch's output (main paper eq. (4.2);
robust-ResNet paper eq. (4)). By the chain rule the gradient of the loss L on the branch's parameters theta_k passes
through r_k only, so its norm splits exactly into two factors,

    ||grad_theta_k L|| = U_k T_k,    U_k = ||dL/dr_k||,    T_k = ||grad_theta_k L|| / U_k:

the upstream gradient U_k, what the rest of the network sends back to the branch's output (h times the gradient at
the block's output when no mask or dropped block intervenes), and the branch's transfer T_k, set by its own weights
and inputs. A branch whose first layer is BatchNorm is invariant to the scale of the stream X_k, and where the
branches add little to the stream (small h) so is the rest of a pre-activation network, whose head starts with
BatchNorm: then U_k scales as one over the stream's size, and U_k rms(X_k) takes that scale out. Inside a
pre-activation branch BN-ReLU-conv1-BN-ReLU-conv2, the transfer to conv1 scales with the weights after it (the second
BatchNorm's scale and conv2) and as one over ||conv1|| (the second BatchNorm makes conv1 scale-free).

Where in the branch the transfer changes, the gradient's norm at the input of each of the branch's layers says:
||dL/da_2|| at conv2's input over U_k is conv2's backward gain, ||dL/dz|| at bn2's input over ||dL/da_2|| bn2's (with
the ReLU after it), and so on (`BranchGradient.backward_gains`).

`branch_gradients` measures these on a model as it trains: BatchNorm in training mode (batch statistics, as in
training), noise masks and stochastic depth off (the deterministic network, so that a measurement repeats), the
cross-entropy of each mini-batch, norms averaged over the mini-batches. `python -m nets.branch_gradients RUN_DIR`
measures a trained run at its end (its checkpoint, loaded with weights_only=True) and at its start (rebuilt from its
configuration and seed) on class-balanced training images without augmentation, in a fixed order that mixes the classes
in every mini-batch (docs/experiments.md section 8 uses it on the h = 0.01 runs).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from kolmogorov._checks import check_int

if TYPE_CHECKING:
    import torch
    from torch import nn

BRANCH_GRADIENT_IMAGES = 1280  # training images measured by default: ten batches of the recipe's 128
MOMENTS = ("start", "end")


@dataclass(frozen=True)
class TensorGradient:
    """One branch parameter: its name in the model, the mean over mini-batches of its gradient's norm, and its norm."""

    name: str
    grad: float
    norm: float


@dataclass(frozen=True)
class LayerInputGradient:
    """The mean over mini-batches of ||dL/d(input)|| of one layer of a branch ("blocks.0.branch.conv2")."""

    name: str
    grad: float


@dataclass(frozen=True)
class BranchGradient:
    """The gradient of one residual block's branch, split into upstream gradient and transfer (means over the
    mini-batches, float64).

    Attributes:
        block: the block's module name ("blocks.0").
        h: its step factor.
        stream_rms: root mean square of the block's input X_k over the mini-batch (all elements).
        upstream: U_k = ||dL/dr_k||, the gradient at the branch's output r_k (before h, masks and stochastic depth),
            over the whole mini-batch tensor, of the mini-batch's mean loss.
        branch_grad: ||grad_theta_k L|| over all the branch's parameters (the shortcut's excluded).
        tensors: each branch parameter's gradient and weight norm.
        layer_inputs: the gradient's norm at the input of each of the branch's layers with parameters but those
            that take the stream X_k itself, in forward order (pre-activation branch: conv1, bn2, conv2).
    """

    block: str
    h: float
    stream_rms: float
    upstream: float
    branch_grad: float
    tensors: tuple[TensorGradient, ...]
    layer_inputs: tuple[LayerInputGradient, ...] = ()

    @property
    def transfer(self) -> float:
        """T_k = branch_grad / upstream (NaN when no gradient reaches the branch's output)."""
        return self.branch_grad / self.upstream if self.upstream > 0 else math.nan

    @property
    def backward_gains(self) -> tuple[tuple[str, float], ...]:
        """(layer name, gain) for a branch that is a chain of layers: each layer's input gradient over the next
        layer's (over U_k for the last), so that the gain of conv2 in BN-ReLU-conv1-BN-ReLU-conv2 is
        ||dL/da_2|| / U_k and bn2's (with the ReLU after it) ||dL/dz|| / ||dL/da_2||; NaN where the next is 0."""
        norms = [layer.grad for layer in self.layer_inputs] + [self.upstream]
        return tuple((layer.name, norms[i] / norms[i + 1] if norms[i + 1] > 0 else math.nan)
                     for i, layer in enumerate(self.layer_inputs))

    @property
    def scale_free_upstream(self) -> float:
        """U_k rms(X_k): the upstream gradient with the stream's scale taken out."""
        return self.upstream * self.stream_rms


def residual_blocks(model: "nn.Module") -> list[tuple[str, "nn.Module"]]:
    """(name, module) of every ResidualBlock of the model, in named_modules order.

    Raises:
        ValueError: a model without residual blocks.
    """
    from nets.models.blocks import ResidualBlock

    blocks = [(name, module) for name, module in model.named_modules() if isinstance(module, ResidualBlock)]
    if not blocks:
        raise ValueError(f"model must have residual blocks (nets.models.blocks.ResidualBlock); "
                         f"{type(model).__name__} has none")
    return blocks


def deterministic_training_mode(model: "nn.Module") -> None:
    """Training mode (BatchNorm on batch statistics) with noise masks and stochastic depth off."""
    from nets.models.noise import DropPath, MultiplicativeNoise

    model.train()
    for module in model.modules():
        if isinstance(module, (MultiplicativeNoise, DropPath)):
            module.eval()


@dataclass
class _BatchRecord:
    """What one mini-batch's backward pass leaves for a block: rms(X_k), dL/dr_k, and the gradient at the input of
    each branch layer with parameters whose input is not the stream (forward order)."""

    stream_rms: "torch.Tensor"
    output_gradient: "torch.Tensor | None" = None
    layer_input_gradients: dict = field(default_factory=dict)


def batch_gradients(model: "nn.Module", images: "torch.Tensor", labels: "torch.Tensor"
                    ) -> tuple["torch.Tensor", dict[str, _BatchRecord]]:
    """One mini-batch: the mean cross-entropy and, per residual block, a record of rms(X_k) (the root mean square of
    the block's input, taken before the branch runs), dL/dr_k (the gradient at the branch's output) and
    dL/d(input) of each of the branch's layers with parameters (convolutions, BatchNorm, linear layers) but those
    whose input is X_k itself (its gradient there includes the shortcut's); the parameters' .grad hold the loss's
    gradient afterwards (zeroed before). The model's mode is the caller's."""
    import torch
    import torch.nn.functional as F

    records: dict[str, _BatchRecord] = {}
    stream_inputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, block in residual_blocks(model):
        def keep_input(module, args, name=name):
            stream_inputs[name] = args[0]
            records[name] = _BatchRecord(stream_rms=args[0].detach().double().square().mean().sqrt())

        def keep_output_gradient(module, args, output, name=name):
            def save(gradient):
                records[name].output_gradient = gradient.detach()
            output.register_hook(save)

        handles.append(block.branch.register_forward_pre_hook(keep_input))
        handles.append(block.branch.register_forward_hook(keep_output_gradient))
        for layer_name, layer in block.branch.named_modules():
            if layer is block.branch or not any(True for _ in layer.parameters(recurse=False)):
                continue

            def keep_layer_input_gradient(module, args, name=name, layer_name=layer_name):
                x = args[0]
                if x is stream_inputs[name] or not x.requires_grad:
                    return

                def save(gradient):
                    records[name].layer_input_gradients[layer_name] = gradient.detach()
                records[name].layer_input_gradients[layer_name] = None  # forward order
                x.register_hook(save)

            handles.append(layer.register_forward_pre_hook(keep_layer_input_gradient))
    try:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    return loss.detach(), records


def _norm(tensor: "torch.Tensor | None") -> float:
    return 0.0 if tensor is None else float(tensor.double().norm())


def branch_gradients(model: "nn.Module", images: "torch.Tensor", labels: "torch.Tensor",
                     batch_size: int) -> list[BranchGradient]:
    """BranchGradient of every residual block of a model, averaged over the mini-batches of batch_size images
    (a last smaller one included) in deterministic training mode; the model's mode and its parameters' .grad are
    restored afterwards (its BatchNorm running statistics are not: measure a copy to keep them).

    Raises:
        ValueError: batch_size < 2 (training-mode BatchNorm needs two images), no images, or images and labels of
            different lengths.
    """
    import torch

    check_int("batch_size", batch_size, 2)
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"images and labels must be non-empty and of one length; got {len(images)} and {len(labels)}")
    blocks = residual_blocks(model)
    modes = {module: module.training for module in model.modules()}
    saved_grads = {p: p.grad for p in model.parameters()}
    sums: dict[str, np.ndarray] = {}
    layers: dict[str, tuple[str, ...]] = {}
    starts = range(0, len(images), batch_size)
    try:
        deterministic_training_mode(model)
        for start in starts:
            _, per_block = batch_gradients(model, images[start:start + batch_size], labels[start:start + batch_size])
            for name, block in blocks:
                record = per_block[name]
                grads = [_norm(p.grad) for _, p in block.branch.named_parameters()]
                layers[name] = tuple(record.layer_input_gradients)
                row = np.array([float(record.stream_rms), _norm(record.output_gradient),
                                math.sqrt(sum(g * g for g in grads)), *grads,
                                *(_norm(g) for g in record.layer_input_gradients.values())])
                sums[name] = sums.get(name, 0.0) + row
    finally:
        for module, training in modes.items():
            module.train(training)
        for p, grad in saved_grads.items():
            p.grad = grad
    n_batches = len(starts)
    results = []
    for name, block in blocks:
        mean = sums[name] / n_batches
        named = list(block.branch.named_parameters())
        tensors = tuple(TensorGradient(name=f"{name}.branch.{p_name}", grad=float(g),
                                       norm=float(p.detach().double().norm()))
                        for (p_name, p), g in zip(named, mean[3:3 + len(named)]))
        inputs = tuple(LayerInputGradient(name=f"{name}.branch.{layer}", grad=float(g))
                       for layer, g in zip(layers[name], mean[3 + len(named):]))
        results.append(BranchGradient(block=name, h=float(block.h), stream_rms=float(mean[0]), upstream=float(mean[1]),
                                      branch_grad=float(mean[2]), tensors=tensors, layer_inputs=inputs))
    return results


@dataclass(frozen=True)
class RunBranchGradients:
    """branch_gradients of a trained run at the moments asked for ("start", "end"), in that order."""

    run: Path
    model: str
    epoch: int
    n_images: int
    batch_size: int
    moments: tuple[str, ...]
    blocks: tuple[tuple[BranchGradient, ...], ...]  # one tuple of blocks per moment
    settings: dict | None = None  # nets.provenance.current_settings of the measurement (code version, threads, ...)
    trained_with: str | None = None  # trained_with_label of the run's configuration
    seed: int | None = None  # the run's training seed

    def at(self, moment: str) -> tuple[BranchGradient, ...]:
        """The blocks measured at `moment`."""
        if moment not in self.moments:
            raise ValueError(f"moment must be one of {', '.join(self.moments)}; got {moment!r}")
        return self.blocks[self.moments.index(moment)]


def check_moments(moments: Sequence[str]) -> tuple[str, ...]:
    """The moments in canonical order (start before end), each once; ValueError for an empty or unknown one."""
    chosen = tuple(m for m in MOMENTS if m in moments)
    unknown = [m for m in moments if m not in MOMENTS]
    if unknown or not chosen:
        raise ValueError(f"moments must be some of {', '.join(MOMENTS)}; got {list(moments)!r}")
    return chosen


def mixed_training_images(trained, n_images: int, seed: int = 0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """n_images class-balanced training images of a nets.trained_run.TrainedRun (TrainedRun.images), in a fixed
    random order (numpy's default_rng(seed)), so that every mini-batch mixes the classes as training's shuffled
    batches do. TrainedRun.images keeps file order, and a file sorted by class (CIFAR-10's JPEG npz is) would give
    mini-batches of one class, whose training-mode BatchNorm statistics and gradients are not training's: on the
    h = 0.01 PreResNet-8 of docs/experiments.md section 8, block #1's gradient 2.3 times larger than on random
    batches."""
    import torch

    images, labels = trained.images(n_images, split="train")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(labels)))
    return images[order], labels[order]


def trained_with_label(config) -> str:
    """What a run (nets.trainer.TrainConfig) was trained with, as nets.noise_response.trained_with says it ("no noise,
    h=0.01"), with ", stem x S" when its stem started S times its own initialisation (--stem-init-scale)."""
    from nets.noise_response import trained_with

    scale = float(getattr(config, "stem_init_scale", 1.0))
    return trained_with(config.model_options(), config.input_noise) + ("" if scale == 1.0 else f", stem x{scale:g}")


def run_branch_gradients(run_dir: str | os.PathLike, data: str | None = None,
                         n_images: int = BRANCH_GRADIENT_IMAGES, batch_size: int | None = None,
                         moments: Sequence[str] = MOMENTS) -> RunBranchGradients:
    """branch_gradients of the network in run_dir/checkpoint.pt ("end") and of the same network as its run started
    ("start", nets.stem_norms.initial_weights), on n_images class-balanced training images of the run's data (or
    `data`), normalised as in training, without augmentation, in a fixed mixed order (mixed_training_images), in
    mini-batches of batch_size (default: the run's).

    Raises:
        ValueError: no readable checkpoint, data that does not load or does not fit the run, n_images < 2, a
            batch_size < 2, or unknown moments.
    """
    import torch

    from nets.provenance import current_settings
    from nets.stem_norms import initial_weights
    from nets.trained_run import load_trained_run
    from nets.trainer import device_name

    check_int("n_images", n_images, 2)
    chosen = check_moments(moments)
    trained = load_trained_run(run_dir, data, n_images, "branch gradients need")
    size = int(trained.config.batch_size) if batch_size is None else check_int("batch_size", batch_size, 2)
    images, labels = mixed_training_images(trained, n_images)
    measured = []
    for moment in chosen:
        model = initial_weights(trained) if moment == "start" else trained.build_model()
        with torch.random.fork_rng(devices=[]):
            measured.append(tuple(branch_gradients(model.double(), images.double(), labels, size)))
    config = trained.config
    return RunBranchGradients(run=trained.run, model=config.model, epoch=int(trained.checkpoint["epoch"]),
                              n_images=len(images), batch_size=size, moments=chosen, blocks=tuple(measured),
                              settings=current_settings(device_name(torch.device("cpu"))),
                              trained_with=trained_with_label(config), seed=int(config.seed))


def _selected(blocks: Sequence[BranchGradient], only: Sequence[str]) -> list[TensorGradient]:
    return [t for b in blocks for t in b.tensors if not only or any(part in t.name for part in only)]


def format_table(results: Sequence[RunBranchGradients], tensors: bool = False, only: Sequence[str] = ()) -> str:
    """Per run and moment a heading line and a Markdown table, one row per block; with `tensors`, a second table of
    the branch parameters (those whose name contains one of `only`; all when empty)."""
    parts = []
    for r in results:
        for moment, blocks in zip(r.moments, r.blocks):
            lines = [f"{r.run.name}: {r.model} at its {moment} (epoch {0 if moment == 'start' else r.epoch}), "
                     f"{r.n_images} training images in batches of {r.batch_size}", "",
                     "| block | h | rms(X_k) | upstream U_k | transfer T_k | gradient U_k T_k | U_k rms(X_k) |",
                     "|---|---|---|---|---|---|---|"]
            for b in blocks:
                lines.append(f"| {b.block} | {b.h:g} | {b.stream_rms:.4g} | {b.upstream:.4g} | {b.transfer:.4g} | "
                             f"{b.branch_grad:.4g} | {b.scale_free_upstream:.4g} |")
            if tensors:
                lines += ["", "| tensor | gradient | norm |", "|---|---|---|"]
                lines += [f"| {t.name} | {t.grad:.4g} | {t.norm:.4g} |" for t in _selected(blocks, only)]
                lines += ["", "| layer | gradient at its input | backward gain |", "|---|---|---|"]
                lines += [f"| {layer.name} | {layer.grad:.4g} | {gain:.4g} |" for b in blocks
                          for layer, (_, gain) in zip(b.layer_inputs, b.backward_gains)
                          if not only or any(part in layer.name for part in only)]
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def to_json(results: Sequence[RunBranchGradients], only: Sequence[str] = ()) -> str:
    """The runs as JSON: the measurement's settings, and per moment, per block BranchGradient's fields and
    properties (null for NaN), with the tensors whose name contains one of `only` (all when empty)."""
    def finite(value: float) -> float | None:
        return None if math.isnan(value) else value

    def block_json(b: BranchGradient) -> dict:
        fields = {k: v for k, v in asdict(b).items() if k not in ("tensors", "layer_inputs")}
        return {**fields, "transfer": finite(b.transfer), "scale_free_upstream": b.scale_free_upstream,
                "tensors": [asdict(t) for t in _selected([b], only)],
                "layer_inputs": [{**asdict(layer), "backward_gain": finite(gain)}
                                 for layer, (_, gain) in zip(b.layer_inputs, b.backward_gains)]}

    return json.dumps([{"run": str(r.run), "model": r.model, "epoch": r.epoch, "n_images": r.n_images,
                        "batch_size": r.batch_size, **({"settings": r.settings} if r.settings is not None else {}),
                        **({"trained_with": r.trained_with} if r.trained_with is not None else {}),
                        **({"seed": r.seed} if r.seed is not None else {}),
                        **{moment: [block_json(b) for b in blocks] for moment, blocks in zip(r.moments, r.blocks)}}
                       for r in results], indent=1)


def from_json(text: str) -> list[RunBranchGradients]:
    """The runs to_json wrote (every tensor: --save writes them all); ValueError when text is not that JSON."""
    def block(saved: dict) -> BranchGradient:
        return BranchGradient(
            block=str(saved["block"]), h=float(saved["h"]), stream_rms=float(saved["stream_rms"]),
            upstream=float(saved["upstream"]), branch_grad=float(saved["branch_grad"]),
            tensors=tuple(TensorGradient(str(t["name"]), float(t["grad"]), float(t["norm"])) for t in saved["tensors"]),
            layer_inputs=tuple(LayerInputGradient(str(x["name"]), float(x["grad"]))
                               for x in saved.get("layer_inputs", ())))

    try:
        runs = []
        for r in json.loads(text):
            moments = check_moments([m for m in MOMENTS if m in r])
            settings = r.get("settings")
            if settings is not None and not isinstance(settings, dict):
                raise ValueError(f"settings must be an object; got {settings!r}")
            runs.append(RunBranchGradients(
                run=Path(r["run"]), model=str(r["model"]), epoch=int(r["epoch"]), n_images=int(r["n_images"]),
                batch_size=int(r["batch_size"]), moments=moments,
                blocks=tuple(tuple(block(b) for b in r[m]) for m in moments), settings=settings,
                trained_with=None if r.get("trained_with") is None else str(r["trained_with"]),
                seed=None if r.get("seed") is None else int(r["seed"])))
        return runs
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not the JSON of nets.branch_gradients ({type(error).__name__}: {error})") from None


def load_saved(paths) -> list[RunBranchGradients]:
    """The measurements saved in the JSON files `paths` (--save), in order; ValueError naming the file that cannot
    be read or is not that JSON."""
    from nets.trained_run import read_saved

    return read_saved(paths, from_json)


def build_parser():
    """The argparse parser of `python -m nets.branch_gradients`."""
    from kolmogorov._cli import OneLineArgumentParser, checked_type

    parser = OneLineArgumentParser(prog="python -m nets.branch_gradients", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories with a checkpoint.pt")
    parser.add_argument("--data", default=None, help="the runs' data, if moved (default: each run's own)")
    parser.add_argument("--images", type=checked_type(int, lambda n: check_int("images", n, 2), "an integer >= 2"),
                        default=BRANCH_GRADIENT_IMAGES,
                        help=f"class-balanced training images (default {BRANCH_GRADIENT_IMAGES})")
    parser.add_argument("--batch-size", type=checked_type(int, lambda n: check_int("batch_size", n, 2),
                                                          "an integer >= 2"),
                        default=None, help="images per mini-batch (default: the run's batch size)")
    parser.add_argument("--at", nargs="+", choices=MOMENTS, default=list(MOMENTS),
                        help="measure the run's start (rebuilt from its seed), its end (the checkpoint), or both")
    parser.add_argument("--tensors", action="store_true",
                        help="also list each branch parameter's gradient and norm, and each layer's backward gain")
    parser.add_argument("--only", nargs="+", default=[], metavar="TEXT",
                        help="with --tensors or --json: only the tensors whose name contains one of these")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown tables")
    parser.add_argument("--save", metavar="FILE.json", default=None,
                        help="also write the JSON of every tensor to this file (atomically; checked before measuring)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m nets.branch_gradients RUN_DIR ... [--data PATH] [--images N] [--batch-size N] [--at start end]
    [--tensors] [--only TEXT ...] [--json] [--save FILE.json]`."""
    from kolmogorov._atomic import atomic_output, check_writable
    from kolmogorov._cli import fail, print_output

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.save is not None:
            check_writable(args.save, directory=False, name="--save")
        results = [run_branch_gradients(run, args.data, args.images, args.batch_size, args.at) for run in args.runs]
    except ValueError as error:
        fail(parser.prog, str(error))
    if args.save is not None:
        with atomic_output(args.save) as temporary:
            Path(temporary).write_text(to_json(results) + "\n")
    print_output(to_json(results, args.only) if args.json else format_table(results, args.tensors, args.only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
