"""`python -m nets.sweep`: train a grid of runs (main paper Table 1, section 4.2), resumable and shardable.

Example (Table 1: 3 depths x 7 survival probabilities x 4 seeds = 84 runs):

    python -m nets.sweep --models preresnet20 preresnet56 preresnet110 \\
        --p 0.85 0.875 0.9 0.925 0.95 0.975 1.0 --seeds 4 --data cifar10.h5 --out results/table1

Each run trains into OUT/NAME (NAME = readable configuration + 8-hex hash, e.g.
preresnet20-bernoulli-p0.9-s0-1a2b3c4d); finished runs are skipped, interrupted ones resumed by the
trainer. --parallel N runs N trainings at once, --shard I/N takes a deterministic 1/N of the runs for a
job array, --dry-run prints the commands and writes nothing. A run another process is training now
(its directory's lock is held) is skipped. Exit status: 0 when every run finished or is running
elsewhere, 1 when a run failed (see OUT/logs/NAME.log), 2 for bad arguments (a missing trainer command,
data the trainer cannot load, runs in OUT trained on other data, an OUT that cannot be written: a file, a
path under a file, OUT/logs a file, OUT/sweep.json a directory; seeds beyond 2**32 - 1; more than 100,000
runs), checked before anything runs, --dry-run included.
"""
from __future__ import annotations

import dataclasses
import shlex
import shutil
import signal
import sys
from pathlib import Path

from kolmogorov._cli import OneLineArgumentParser, fail, in_flag_words
from nets.data.loading import DATA_HELP
from nets.lm_start import LM_STARTS
from nets.stochastic_depth import STOCHASTIC_DEPTH_MODES

PROG = "python -m nets.sweep"


class Terminated(BaseException):
    """SIGTERM reached the sweep (kill, a cluster scheduler's time limit): like Ctrl-C, its trainings are stopped."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def _stop_on_sigterm():
    """Make SIGTERM raise Terminated, so that execute() stops the trainings it started instead of orphaning them
    (the default action ends the sweep at once). Returns the previous handler; None off the main thread,
    where Python cannot install handlers (the default stays)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:
        return None


def _optional_float(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError as error:
        raise ValueError(f"expected a number or 'none', got {text!r}") from error


def _out_path(text: str) -> Path:
    """--out's argparse type: a non-empty path (an empty one would mean the current directory)."""
    import argparse

    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a non-empty path; got {text!r}")
    return Path(text)


def build_parser() -> OneLineArgumentParser:
    import argparse

    from nets.grad_norms import argument_type as grad_norm_every_type
    from nets.input_noise import argument_type as input_noise_type

    parser = OneLineArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    grid = parser.add_argument_group("grid (every combination is trained, once per seed)")
    grid.add_argument("--models", nargs="+", required=True, metavar="M", help="model names, e.g. preresnet20 lm_preresnet56")
    grid.add_argument("--noise", nargs="+", metavar="K",
                      help="none, bernoulli, gaussian, uniform (default: inferred from --p/--nu/--beta), and with "
                           "--eps stochastic_depth (no mask; p_L of that rms eps)")
    grid.add_argument("--p", nargs="+", type=float, default=[], metavar="P", help="Bernoulli survival probabilities (eq. 3.1)")
    grid.add_argument("--nu", nargs="+", type=float, default=[], metavar="NU", help="Gaussian mask std (eq. 3.13)")
    grid.add_argument("--beta", nargs="+", type=float, default=[], metavar="B", help="uniform mask half-width (eq. 3.14)")
    grid.add_argument("--eps", nargs="+", type=float, default=[], metavar="EPS",
                      help="noise levels eps (eq. 3.4) instead of --p/--nu/--beta: each --noise kind at the parameter "
                           "giving this eps for each model's K blocks (p = 1/(1 + K eps^2), nu = eps sqrt(K), "
                           "beta = eps sqrt(3K); stochastic_depth: the p_L of rms eps, LM-ResNet paper 3.2); "
                           "kinds compared at matched eps")
    grid.add_argument("--stochastic-depth", nargs="+", default=["none"], metavar="PL",
                      help="stochastic-depth p_L values, 'none' for off (default: none)")
    grid.add_argument("--stochastic-depth-mode", choices=STOCHASTIC_DEPTH_MODES, default="sample",
                      help="sample: per-sample drop (default); batch: the whole block per mini-batch (Huang et al. "
                           "2016, the LM-ResNet code), for the runs with stochastic depth; named and hashed only "
                           "when batch")
    grid.add_argument("--h", nargs="+", default=["none"], metavar="H", help="step factors h (default: the trainer's, 1)")
    grid.add_argument("--lm-start", choices=LM_STARTS, default=None,
                      help="the LM models' starting value u_{-1}: zero (u_{-1} = 0, the models' default) or rest "
                           "(u_{-1} = u_0, an Euler first step); the other models ignore it; named and hashed "
                           "only when given")
    grid.add_argument("--input-noise", nargs="+", type=input_noise_type, default=[0.0], metavar="SIGMA",
                      help="std of the Gaussian noise on the training inputs, normalized units (robust-ResNet "
                           "Fig. 8; default: 0, clean); named and hashed only when nonzero")
    grid.add_argument("--epochs", nargs="+", type=int, default=None, metavar="N", help="epochs (default: the trainer's, 164)")
    grid.add_argument("--batch-size", nargs="+", type=int, default=None, metavar="N", help="batch sizes (default: 128)")
    grid.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds per configuration (default 1; at most 100,000 runs in one sweep)")
    grid.add_argument("--seed-start", type=int, default=0, metavar="S", help="first seed (default 0)")
    grid.add_argument("--data", required=True, help=DATA_HELP)
    grid.add_argument("--out", required=True, type=_out_path, help="sweep directory; run NAME goes to OUT/NAME")
    recipe = parser.add_argument_group("recipe (passed to every run; defaults: the trainer's)")
    recipe.add_argument("--lr", type=float)
    recipe.add_argument("--momentum", type=float)
    recipe.add_argument("--weight-decay", type=float)
    recipe.add_argument("--schedule", nargs="+", type=int, metavar="EPOCH")
    recipe.add_argument("--gamma", type=float)
    recipe.add_argument("--grad-norm-every", type=grad_norm_every_type, default=0, metavar="N",
                        help="every run records per-block gradient and weight norms every N-th optimizer step "
                             "(robust-ResNet Fig. 2; default: 0, off); named and hashed only when nonzero")
    recipe.add_argument("--device", choices=("auto", "cpu", "cuda"))
    recipe.add_argument("--compile", action="store_true")
    execution = parser.add_argument_group("execution")
    execution.add_argument("--parallel", type=int, default=1, metavar="N", help="training processes at once (default 1)")
    execution.add_argument("--gpus", nargs="+", default=[], metavar="ID", help="pin process slots round-robin to these CUDA devices")
    execution.add_argument("--shard", metavar="I/N", help="train only shard I (0-based) of N, e.g. $SLURM_ARRAY_TASK_ID/8")
    execution.add_argument("--dry-run", action="store_true", help="print the commands (finished runs as comments) and exit")
    execution.add_argument("--trainer", metavar="CMD", help="command prefix that trains one run "
                           "(default: this python -m nets.train; e.g. 'torchrun --nproc_per_node 2 -m nets.train')")
    execution.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def config_from_args(args) -> "SweepConfig":
    """Build a SweepConfig from parsed arguments; ValueError for bad values."""
    from nets.sweep import SweepConfig, _default_trainer

    if args.trainer is None:
        trainer = _default_trainer()
    else:  # an empty --trainer is refused by check_trainer_command, not taken as the default
        try:
            trainer = tuple(shlex.split(args.trainer))
        except ValueError as error:  # shlex's "No closing quotation" named neither the flag nor the value
            raise ValueError(f"--trainer {args.trainer!r} is not a command line ({error})") from None
    return SweepConfig(
        models=tuple(args.models), data=args.data, out=args.out,
        noise=tuple(args.noise or ()), p=tuple(args.p), nu=tuple(args.nu), beta=tuple(args.beta), eps=tuple(args.eps),
        stochastic_depth=tuple(_optional_float(v) for v in args.stochastic_depth),
        stochastic_depth_mode=args.stochastic_depth_mode, lm_start=args.lm_start,
        h=tuple(_optional_float(v) for v in args.h), input_noise=tuple(args.input_noise),
        epochs=tuple(args.epochs) if args.epochs else (None,),
        batch_size=tuple(args.batch_size) if args.batch_size else (None,),
        seeds=args.seeds, seed_start=args.seed_start, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay, schedule=tuple(args.schedule) if args.schedule else None,
        gamma=args.gamma, grad_norm_every=args.grad_norm_every, device=args.device, compile=args.compile,
        trainer=trainer)


def main(argv: list[str] | None = None) -> int:
    from nets import sweep as lib
    from nets import sweep_run as run

    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
        shard_spec = lib.parse_shard(args.shard) if args.shard is not None else None  # '' is refused, not "all runs"
        if args.parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {args.parallel}")
        check_trainer_command(config.trainer)
        if args.trainer is None and not args.dry_run and config.device is not None:
            from nets.device import resolve_device

            resolve_device(config.device)  # --device cuda without CUDA: refused here, not by every trainer
        sweep = run.plan(config, shard_spec)  # validates the grid before any data is loaded
        run.check_out(config.out, sweep.manifest_path(), name="--out")  # in --dry-run too
        if args.trainer is None:
            fingerprint = lib.check_trainer_accepts(config, sweep.runs)
        else:
            fingerprint = lib.data_fingerprints(config.data)
        run.check_fingerprints(config.out, sweep.runs, sweep.statuses, fingerprint, config.data)
    except ValueError as error:  # "stochastic_depth values must ..." -> "--stochastic-depth values must ..."
        fail(PROG, in_flag_words(str(error), [f.name for f in dataclasses.fields(lib.SweepConfig)] + ["shard"]))
    if args.dry_run:
        try:
            for line in run.dry_run_lines(sweep):
                print(line)
        except BrokenPipeError:  # e.g. piped into head
            sys.stdout = None
            return 0
        counts = {status: sweep.statuses.count(status) for status in run.RUN_STATUSES}
        print(f"# {len(sweep.runs)} runs: {counts['finished']} finished, {counts['partial']} partial (resumed), "
              f"{counts['pending']} pending", file=sys.stderr)
        return 0
    previous = _stop_on_sigterm()
    try:
        outcomes = run.execute(sweep, parallel=args.parallel, gpus=args.gpus, progress=not args.no_progress)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted; running trainings were stopped; run the same command to resume\n")
        return 130
    except Terminated:
        sys.stderr.write(f"{PROG}: terminated (SIGTERM); running trainings were stopped; run the same command to "
                         "resume\n")
        return 128 + signal.SIGTERM
    except (ValueError, OSError) as error:  # e.g. --out changed under the sweep: still one line, exit 2
        fail(PROG, str(error) if isinstance(error, ValueError) else f"--out {config.out}: {error}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    failed = [o for o in outcomes if o.failed]
    elsewhere = sum(1 for o in outcomes if o.elsewhere)
    trained = sum(1 for o in outcomes if o.status_before != "finished") - elsewhere
    print(f"{len(outcomes)} runs: {len(outcomes) - trained - elsewhere} already finished, {trained - len(failed)} "
          f"trained, {len(failed)} failed, {elsewhere} running elsewhere (skipped); manifest {sweep.manifest_path()}")
    if failed:
        first = failed[0]
        sys.stderr.write(f"{PROG}: error: {len(failed)} run(s) failed, first: {first.name} ({_why(first)}, "
                         f"log {first.log})\n")
        return 1
    return 0


def check_trainer_command(trainer: tuple[str, ...]) -> None:
    """ValueError unless the trainer command's first word is an executable (a path or on PATH)."""
    if not trainer or shutil.which(trainer[0]) is None:
        raise ValueError(f"trainer command {trainer[0] if trainer else ''!r} not found (not an executable path nor "
                         "on PATH); check --trainer")


def _why(outcome) -> str:
    """Why a run failed, for the error line."""
    if outcome.error is not None:
        return outcome.error
    if outcome.returncode != 0:
        return f"exit {outcome.returncode}"
    return "exit 0 but metrics.h5 does not say finished"


if __name__ == "__main__":
    sys.exit(main())
