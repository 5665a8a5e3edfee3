"""`python -m nets.train`: train one network with the main paper's recipe (section 4.2.1), resumably.

Example: python -m nets.train --model preresnet20 --noise bernoulli --p 0.9 --data cifar10.h5 --out runs/p09
Running the same command again resumes from runs/NAME/checkpoint.pt; a finished run says so and exits 0.
Bad input exits 2; a run whose loss stops being finite stops there and exits 1 (one line naming what to lower).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from kolmogorov._cli import OneLineArgumentParser, checked_type, fail, in_flag_words
from nets.data.loading import DATA_HELP

if TYPE_CHECKING:
    from .trainer import TrainConfig


def build_parser() -> OneLineArgumentParser:
    from .grad_norms import argument_type as grad_norm_every_type
    from .input_noise import argument_type
    from .device import thread_count
    from .lm_start import LM_STARTS
    from .trainer import DEVICES, STOCHASTIC_DEPTH_MODES, TrainConfig, check_stop_after

    d = TrainConfig()
    p = OneLineArgumentParser(prog="python -m nets.train", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="Writes OUT/metrics.h5 and OUT/checkpoint.pt after every epoch.")
    p.add_argument("--model", required=True, help="a name from nets.list_models(), e.g. preresnet20")
    p.add_argument("--noise", choices=("bernoulli", "gaussian", "uniform"), default=None,
                   help="noise in the residual branches, (3.1)/(3.13)/(3.14) (default: none)")
    p.add_argument("--p", type=float, default=None, help="Bernoulli survival probability in (0, 1]")
    p.add_argument("--nu", type=float, default=None, help="Gaussian mask standard deviation")
    p.add_argument("--beta", type=float, default=None, help="uniform mask half-width in [0, 1)")
    p.add_argument("--stochastic-depth", type=float, default=None, metavar="PL",
                   help="stochastic depth: survival probability p_L of the last block")
    p.add_argument("--stochastic-depth-mode", choices=STOCHASTIC_DEPTH_MODES, default=d.stochastic_depth_mode,
                   help="sample: drop each sample's branch independently (default); batch: drop the whole block for "
                        "the whole mini-batch without computing it (Huang et al. 2016, the LM-ResNet code); "
                        "needs --stochastic-depth")
    p.add_argument("--h", type=float, default=None, help="step factor of X + h F(X)")
    p.add_argument("--lm-start", choices=LM_STARTS, default=None,
                   help="LM models only: the starting value u_{-1}; zero: u_{-1} = 0, the first block learns the "
                        "scale of its skip (the model's default); rest: u_{-1} = u_0, the first block is an Euler step")
    p.add_argument("--stem-init-scale", type=float, default=d.stem_init_scale, metavar="S",
                   help="multiply the stem convolution's initial weights by S (default 1); with --h it separates "
                        "the stem's scale from its learning rate (docs/models.md, nets.models.step_factor)")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--input-noise", type=argument_type, default=d.input_noise, metavar="SIGMA",
                   help="train on a fixed copy of the training set with Gaussian noise of std SIGMA at every "
                        "normalized pixel, drawn once from --seed (robust-ResNet paper, Fig. 8); the test set "
                        "stays clean (default: 0, clean training)")
    p.add_argument("--grad-norm-every", type=grad_norm_every_type, default=d.grad_norm_every, metavar="N",
                   help="record, every N-th optimizer step, the L2 norms of each block's gradient and weights into "
                        "metrics.h5 (robust-ResNet paper, Fig. 2; default: 0, off)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seeds weights, noise masks, order and augmentation (default: {d.seed})")
    p.add_argument("--device", choices=DEVICES, default=d.device, help="auto: CUDA when available (default: auto)")
    p.add_argument("--lr", type=float, default=d.lr, help=f"initial SGD learning rate (default: {d.lr})")
    p.add_argument("--momentum", type=float, default=d.momentum, help=f"(default: {d.momentum})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"(default: {d.weight_decay})")
    p.add_argument("--schedule", type=int, nargs="*", default=list(d.milestones), metavar="EPOCH",
                   help="epochs at which the learning rate is multiplied by --gamma (default: 81 122)")
    p.add_argument("--gamma", type=float, default=d.gamma, help=f"learning-rate factor at each --schedule epoch "
                                                                 f"(default: {d.gamma})")
    p.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size, help=f"(default: {d.eval_batch_size})")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="no channels_last memory format on CUDA")
    p.add_argument("--stop-after", type=checked_type(int, check_stop_after, "an integer >= 1"), default=None,
                   metavar="N", help="train at most N epochs in this call, then exit 0; the same command resumes "
                   "(for time-limited jobs)")
    p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help="CPU threads of this process (default: torch's, e.g. from OMP_NUM_THREADS); the count "
                   "changes a CPU run's last bits, and metrics.h5 records it")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed arguments; ValueError for bad values (nothing is trained)."""
    from .trainer import TrainConfig

    return TrainConfig(model=args.model, noise=args.noise, p=args.p, nu=args.nu, beta=args.beta,
                       stochastic_depth=args.stochastic_depth,
                       stochastic_depth_mode=args.stochastic_depth_mode, h=args.h, lm_start=args.lm_start,
                       stem_init_scale=args.stem_init_scale, data=args.data,
                       input_noise=args.input_noise, grad_norm_every=args.grad_norm_every, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                       weight_decay=args.weight_decay, milestones=tuple(args.schedule), gamma=args.gamma,
                       seed=args.seed, device=args.device, compile=args.compile, amp=args.amp,
                       channels_last=args.channels_last, eval_batch_size=args.eval_batch_size)


#: TrainConfig fields whose flag is not --FIELD-WITH-DASHES
_FLAG_OF = {"milestones": "--schedule"}


def _as_flags(message: str) -> str:
    """A TrainConfig error ("lr must ...") in the command's words ("--lr must ...")."""
    from .trainer import TrainConfig

    return in_flag_words(message, (f.name for f in dataclasses.fields(TrainConfig)), _FLAG_OF)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .trainer import TrainingDiverged, check_out_dir, train

    try:
        try:
            config = config_from_args(args)
            check_out_dir(args.out, "--out")  # before the data is read; train() writes nothing until the run starts
            if args.threads is not None:
                import torch

                torch.set_num_threads(args.threads)
            result = train(config, args.out, progress=not args.no_progress, stop_after=args.stop_after)
        except ValueError as exc:  # also the model's checks in train(): "nu must be >= 0" -> "--nu must be >= 0"
            raise ValueError(_as_flags(str(exc))) from None
    except (ValueError, OSError) as exc:
        fail(parser.prog, str(exc))
    except TrainingDiverged as exc:  # valid input, failed optimization: status 1, not argparse's 2
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops at that epoch; rank 0 says so
            sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{parser.prog}: interrupted; the last completed epoch is saved, run the same command "
                         "to resume\n")
        return 130
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    if result.already_finished:
        print(f"{args.out}: already finished ({result.epochs_completed} epochs, final test accuracy "
              f"{result.final_test_acc:.4f}); nothing to do")
    elif not result.finished:
        print(f"{args.out}: stopped after epoch {result.epochs_completed} of {config.epochs} (--stop-after), test "
              f"accuracy {result.final_test_acc:.4f}; run the same command to continue")
    else:
        print(f"{args.out}: finished {result.epochs_completed} epochs, final test accuracy "
              f"{result.final_test_acc:.4f} (best {result.best_test_acc:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
