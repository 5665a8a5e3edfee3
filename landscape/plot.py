"""`python -m landscape.plot --eps 0.5 --loss l2`: J_0 (3.10) and J_eps (3.7) on one figure.

Main paper, section 4.1 (Figs. 3-5). A thin layer over landscape.report.run_plot: every bad input
is one line on stderr and exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

PROG = "python -m landscape.plot"


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _eps(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"eps must be >= 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    value = _finite(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"p must be in (0, 1], got {text!r}")
    return value


def _jump(text: str) -> float:
    value = _finite(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"jump must be in (0, 1] (1: dropout), got {text!r}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


class _Once(argparse.Action):
    """Store the value; a second occurrence is an error (argparse would silently keep the last one)."""

    def __call__(self, parser, namespace, values, option_string=None):
        previous = getattr(namespace, self.dest, None)
        if previous is not None:
            raise argparse.ArgumentError(self, f"given twice ({previous} and {values}); one K applies to every --p, "
                                               "run once per K to compare block counts")
        setattr(namespace, self.dest, values)


def build_parser():
    from kolmogorov._cli import OneLineArgumentParser, checked_type

    from landscape.datasets import DATASET_NAMES
    from landscape.network import MASKS
    from landscape.objective import LOSSES, OBJECTIVES, SOLVERS
    from landscape.report import F_LIMIT, check_f_bound
    from landscape.sgd import SGD_MODES

    p = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--eps", type=_eps, action="append", help="noise level eps >= 0 of (3.4); repeat to overlay several (default 0.5 unless --p)")
    p.add_argument("--p", type=_probability, action="append", dest="survival_p", metavar="P",
                   help="dropout survival probability in (0, 1] of each of --blocks residual blocks; adds the curve "
                        "eps = sqrt((1-p)/(pK)) of (3.2)-(3.4); repeatable")
    p.add_argument("--blocks", type=_int_at_least(1), metavar="K", action=_Once,
                   help="number of residual blocks K (with --p, or --solver network; one K for every curve)")
    p.add_argument("--loss", choices=LOSSES, default="l2", help="l1, l2 (default) or ce")
    p.add_argument("--dataset", default="rugged", help=f"{', '.join(DATASET_NAMES)} (default rugged) or a .csv/.npz/.h5 file with y, label")
    p.add_argument("--solver", choices=SOLVERS, default="closed",
                   help="closed (default), fd or mc (the SDE), or network (the --blocks K dropout network itself, "
                        "exact, p = 1/(1 + K eps^2), its SDE dotted beside it)")
    p.add_argument("--jump", type=_jump, metavar="A",
                   help="with --solver network: two-point masks 1 - A / 1 + K eps^2 / A of the same eps in place of "
                        "dropout (A = 1, the default), A in [sqrt(K eps^2), 1] at every eps")
    p.add_argument("--mask", choices=MASKS, default=None,
                   help="with --solver network: dropout (default; two-point masks with --jump), uniform, "
                        "1 + U(-beta, beta) with beta = eps sqrt(3K) < 1 (3.14), or stochastic_depth, whole-branch "
                        "drops with the linear decay at the rms level eps (K <= 16)")
    p.add_argument("--objective", choices=OBJECTIVES, default="ensemble", help="ensemble = J_eps of (3.7) (default), or expected = E loss(sigma(X_1)) (what dropout minimises)")
    f_type = checked_type(float, lambda v: check_f_bound("f", v), f"a finite number in [-{F_LIMIT:g}, {F_LIMIT:g}]")
    p.add_argument("--f-min", type=f_type, help="left end of the f grid (default: from the data)")
    p.add_argument("--f-max", type=f_type, help="right end of the f grid (default: from the data)")
    p.add_argument("--n-f", type=_int_at_least(3), default=801, help="grid points (default 801)")
    p.add_argument("--n-samples", type=_int_at_least(2), default=20000, help="Monte Carlo draws for --solver mc (default 20000)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of Monte Carlo and SGD (default 0)")
    p.add_argument("--sgd", action="store_true", help="overlay an SGD path on every curve")
    p.add_argument("--sgd-mode", choices=SGD_MODES, default="smoothed", help="smoothed (exact minibatch gradient, default) or sampled (fresh noise each step, as dropout)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=1, help="SGD minibatch size m (default 1)")
    p.add_argument("--steps", type=_int_at_least(1), default=200, help="SGD steps (default 200)")
    p.add_argument("--lr", type=_finite, default=10.0, help="SGD learning rate (default 10)")
    p.add_argument("--lr-end", type=_finite, help="decay the rate geometrically to this value over the steps (default: constant)")
    p.add_argument("--f0", type=f_type, help="SGD start (default: 90%% along the f-range)")
    p.add_argument("--out", help="figure file, .png/.pdf/.svg (default landscape_<loss>_eps<eps>.png)")
    p.add_argument("--h5", help="also write f, J0, Jeps, statistics and options to this HDF5 file")
    p.add_argument("--no-show", action="store_true", help="do not open a window (none opens without a display anyway)")
    return p


def main(argv: list[str] | None = None) -> int:
    from kolmogorov._cli import fail

    args = build_parser().parse_args(argv)
    try:
        from landscape.report import PlotConfig, run_plot

        config = PlotConfig(
            eps=tuple(args.eps) if args.eps else (() if args.survival_p else (0.5,)),
            survival_p=tuple(args.survival_p or ()), blocks=args.blocks, loss=args.loss, dataset=args.dataset,
            solver=args.solver, jump=args.jump, mask=args.mask, objective=args.objective, f_min=args.f_min, f_max=args.f_max,
            n_f=args.n_f, n_samples=args.n_samples, seed=args.seed, sgd=args.sgd,
            sgd_mode=args.sgd_mode, batch_size=args.batch_size, steps=args.steps, lr=args.lr, lr_end=args.lr_end,
            f0=args.f0, out=args.out, h5=args.h5,
        )
        result = run_plot(config, show=not args.no_show)
    except (ValueError, OSError) as err:
        fail(PROG, str(err))
    except MemoryError:
        fail(PROG, "not enough memory for these settings; lower --blocks (network solver), --steps (SGD), --n-f "
                   "or --n-samples")
    try:
        print(result.table())
        print(f"wrote {config.output_path()}" + (f" and {config.h5}" if config.h5 else ""))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: the files are written, the reader left early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
