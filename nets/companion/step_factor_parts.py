"""Which part of a uniform h does the work in an MLP ResNet on digits (robust-ResNet Fig. 9 analogue)?

A uniform h is exactly a few changes to the h = 1 network, which this module applies one subset at a time.

Batch norm (variant "batchnorm"): every branch normalizes K1 y + b1, so (nets.models.step_factor,
docs/models.md) the h network on x is the h = 1 network with three changes:

* "input": the inputs divided by h (with every b1 / h and the branches' BatchNorm at eps / h^2, running
  statistics / h and / h^2, which BatchNorm makes immaterial but which keep the identity exact);
* "classifier_init": the classifier's weight h times its initial value;
* "classifier_lr": the classifier's weight trained at h^2 times the learning rate (SGD; weight decay 0).

No batch norm (variant "residual", y + h (K2 sigma(K1 y + b1) + b2)): h multiplies the branch's last linear
map, so the h network is the h = 1 network with two changes:

* "branch_init": every K2 and b2 h times its initial value;
* "branch_lr": every K2 and b2 trained at h^2 times the learning rate.

Its third change, "classifier_lr" (the classifier's weight at h^2 times the learning rate), is not part of h
there: it asks whether the batch-norm network's decisive part also rescues a network it does not reparametrize.

With the parts of h the run is the h network's (the same function of the same parameters, trained step for
step alike up to rounding); with none, the h = 1 network's. Trial t uses the digits split of seed t, the
initialization of seed 1000 + t and the batch order of seed t, as nets.companion.sweeps does, so every subset
sees the same trials. `python -m nets.companion.step_factor_parts --h 0.1 10 --depths 8 32` prints the table;
docs/companion.md records what it found.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np

from kolmogorov._checks import check_choice
from nets.companion.datasets import Dataset, load_dataset
from nets.companion.experiments import torch_threads
from nets.companion.models import NetSpec, build_net
from nets.companion.presets import ROBUST_SGD
from nets.companion.point_checkpoint import fields_hash, load_points, save_points
from nets.companion.trainer import TrainConfig, train
from nets.models.step_factor import rescale_batchnorm_input

PARTS = ("input", "classifier_init", "classifier_lr")
CHANGES: dict[str, tuple[str, ...]] = {"batchnorm": PARTS, "residual": ("branch_init", "branch_lr", "classifier_lr")}
"""The changes each variant's runs combine, in table order."""
H_PARTS: dict[str, tuple[str, ...]] = {"batchnorm": PARTS, "residual": ("branch_init", "branch_lr")}
"""The changes that together make the h network."""


def subsets(variant: str = "batchnorm") -> tuple[tuple[str, ...], ...]:
    """Every subset of CHANGES[variant], from none to all, by size then in CHANGES order."""
    changes = CHANGES[check_choice("variant", variant, CHANGES)]
    return tuple(c for n in range(len(changes) + 1) for c in combinations(changes, n))


SUBSETS = subsets("batchnorm")


@dataclass(frozen=True)
class PartsConfig:
    """The h values and depths to split, the trials, the SGD recipe (default: robust-ResNet's, 30 epochs) and
    the network ("batchnorm" or "residual", see CHANGES)."""

    h_values: tuple[float, ...] = (0.1, 10.0)
    depths: tuple[int, ...] = (8, 32)
    trials: int = 3
    train: TrainConfig = ROBUST_SGD
    variant: str = "batchnorm"

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, CHANGES)
        if not self.h_values or any(isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0
                                    for h in self.h_values):
            raise ValueError(f"h_values must be one or more numbers > 0, got {self.h_values!r}")
        if not self.depths or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in self.depths):
            raise ValueError(f"depths must be one or more positive integers, got {self.depths!r}")
        if not isinstance(self.trials, int) or isinstance(self.trials, bool) or self.trials < 1:
            raise ValueError(f"trials must be a positive integer, got {self.trials!r}")
        if self.train.lr_scales:
            raise ValueError(f"train.lr_scales must be empty (the changes set them), got {self.train.lr_scales!r}")
        if self.train.optimizer != "sgd" or self.train.weight_decay != 0:
            raise ValueError("train must be SGD without weight decay (the classifier's h^2 learning rate is the "
                             "identity under SGD; with decay it would also need decay / h^2)")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(h values, depths, subsets of CHANGES[variant], trials)."""
        return (len(self.h_values), len(self.depths), len(subsets(self.variant)), self.trials)


@dataclass
class PartsResult:
    """Arrays of shape config.shape; subsets are subsets(config.variant) in order (none first, all last)."""

    config: PartsConfig
    test_accuracy: np.ndarray
    diverged: np.ndarray

    def table(self) -> str:
        """Markdown: one row per (h, subset), per depth the mean test accuracy and the diverged runs."""
        header = ["h", "changes applied to the h = 1 network"]
        for depth in self.config.depths:
            header += [f"{depth} blocks: test accuracy", f"{depth} blocks: diverged"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        trials = self.config.trials
        for i, h in enumerate(self.config.h_values):
            for s, subset in enumerate(subsets(self.config.variant)):
                label = "none (the h = 1 network)" if not subset else ", ".join(subset)
                if subset == H_PARTS[self.config.variant]:
                    label += f" (the h = {h:g} network)"
                cells = [f"{h:g}", label]
                for d in range(len(self.config.depths)):
                    acc = self.test_accuracy[i, d, s]
                    cells += [f"{np.mean(acc):.3f} +- {np.std(acc):.3f}", f"{int(self.diverged[i, d, s].sum())}/{trials}"]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def prepare_run(h: float, depth: int, parts: tuple[str, ...], trial: int, config: TrainConfig = ROBUST_SGD,
                variant: str = "batchnorm") -> tuple[object, Dataset, TrainConfig]:
    """The h = 1 `variant` network of `depth` blocks with the changes `parts` made, its digits split, its recipe.

    Raises:
        ValueError: a variant not in CHANGES, or a part not in CHANGES[variant].
    """
    import torch

    changes = CHANGES[check_choice("variant", variant, CHANGES)]
    unknown = sorted(set(parts) - set(changes))
    if unknown:
        raise ValueError(f"parts must be among {', '.join(changes)}; got {unknown}")
    data = load_dataset("digits", seed=trial)
    model = build_net(NetSpec(depth=depth, h=1.0, variant=variant), data.in_features, data.num_classes,
                      seed=1000 + trial)
    branch_out = [f"blocks.{b}.branch.linear2.{name}" for b in range(depth) for name in ("weight", "bias")]
    with torch.no_grad():
        if "branch_init" in parts:
            for block in model.blocks:
                block.branch.linear2.weight.mul_(h)
                block.branch.linear2.bias.mul_(h)
        if "input" in parts:
            data = replace(data, x_train=(data.x_train / h).astype(np.float32),
                           x_test=(data.x_test / h).astype(np.float32))
            for block in model.blocks:
                block.branch.linear1.bias.div_(h)
                rescale_batchnorm_input(block.branch.norm, h)
        if "classifier_init" in parts:
            model.fc.weight.mul_(h)
    scaled = (branch_out if "branch_lr" in parts else []) + (["fc.weight"] if "classifier_lr" in parts else [])
    training = replace(config, seed=trial, lr_scales=tuple((name, float(h) ** 2) for name in scaled))
    return model, data, training


def config_hash(config: PartsConfig) -> str:
    """A short stable hash of every field of `config` (guards the checkpoint file). The variant enters only
    when it is not "batchnorm", so checkpoints made before it existed keep their hashes."""
    fields = asdict(config)
    if fields["variant"] == "batchnorm":
        del fields["variant"]
    return fields_hash(fields)


def run_parts(config: PartsConfig, checkpoint: str | Path | None = None, progress: bool = True) -> PartsResult:
    """Train every (h, depth, subset of CHANGES[config.variant], trial) of `config` on one torch thread.

    checkpoint: a JSON file rewritten (atomically) after every run; a rerun with the same config skips the
    runs it holds, so an interrupted split resumes. A file of another config is refused with ValueError.
    """
    from tqdm.auto import tqdm

    path = Path(checkpoint) if checkpoint is not None else None
    digest = config_hash(config)
    points = load_points(path, digest, config.shape, (float, bool), "step-factor parts") if path is not None else {}
    changes = subsets(config.variant)
    test = np.full(config.shape, np.nan)
    diverged = np.zeros(config.shape, dtype=bool)
    for key in tqdm(list(np.ndindex(config.shape)), desc="step-factor parts", disable=not progress):
        i, d, s, t = key
        if key not in points:
            with torch_threads(1):
                model, data, training = prepare_run(config.h_values[i], config.depths[d], changes[s], t,
                                                    config.train, config.variant)
                run = train(model, data, training)
            points[key] = [run.test_accuracy, bool(run.diverged)]
            if path is not None:
                save_points(path, digest, asdict(config), points)
        test[key], diverged[key] = points[key]
    return PartsResult(config, test, diverged)


def build_parser():
    """The argparse parser of `python -m nets.companion.step_factor_parts`."""
    from kolmogorov._cli import OneLineArgumentParser, positive_int

    parser = OneLineArgumentParser(prog="python -m nets.companion.step_factor_parts",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--h", type=float, nargs="+", default=list(PartsConfig.h_values), help="h values to split")
    parser.add_argument("--depths", type=positive_int, nargs="+", default=list(PartsConfig.depths),
                        help="numbers of blocks")
    parser.add_argument("--trials", type=positive_int, default=PartsConfig.trials, help="trials per point")
    parser.add_argument("--epochs", type=positive_int, default=ROBUST_SGD.epochs, help="epochs per run")
    parser.add_argument("--lr", type=float, default=ROBUST_SGD.lr, help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--variant", choices=tuple(CHANGES), default=PartsConfig.variant,
                        help="batch-norm or plain residual blocks (which changes are split: see the module's doc)")
    parser.add_argument("--checkpoint", default=None, help="JSON file to resume from and save to")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`python -m nets.companion.step_factor_parts [--h H...] [--depths N...] [--trials T] [--epochs E]
    [--variant batchnorm|residual]`."""
    from kolmogorov._cli import fail, print_output

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.lr > 0:
            raise ValueError(f"--lr must be > 0, got {args.lr!r}")
        config = PartsConfig(h_values=tuple(args.h), depths=tuple(args.depths), trials=args.trials,
                             train=replace(ROBUST_SGD, epochs=args.epochs, lr=args.lr), variant=args.variant)
        result = run_parts(config, args.checkpoint)
    except ValueError as error:
        fail(parser.prog, str(error).replace("h_values", "--h"))
    print_output(result.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
