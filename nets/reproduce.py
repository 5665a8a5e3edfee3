"""Re-train the first epochs of a recorded run and compare them with its metrics.h5, bit for bit.

    python -m nets.reproduce RUN_DIR... [--epochs N] [--data PATH] [--device D] [--threads T] [--keep DIR]

The run's configuration is read from its metrics.h5 and trained again from scratch for N epochs (default 1)
in a temporary directory (or --keep DIR); each epoch's train_loss, train_acc, test_loss, test_acc and lr
are compared with the recorded ones as floats, exactly. On CPU a run re-trained under the settings it
recorded (nets.provenance: code, torch, numpy, threads, processor, and how it executed: torch.compile,
autocast, channels_last and the test batch size, taken from the run's first segment) reproduces bit for bit; the report
lists the settings that differ, which is where to look when it does not. By default the re-run uses
the thread count the run recorded. Several RUN_DIRs are checked one after the other (all are looked at
before any trains) and a last line counts the identical ones. Exit status: 0 all identical, 1 any
different, 2 bad input.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

#: The per-epoch fields compared (epoch_time is the machine's, not the run's).
COMPARED_FIELDS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


@dataclass(frozen=True)
class FieldComparison:
    """One recorded value against its re-computation."""

    epoch: int
    field: str
    recorded: float
    rerun: float

    @property
    def identical(self) -> bool:
        """Equal as floats (both NaN counts as equal)."""
        return self.recorded == self.rerun or (math.isnan(self.recorded) and math.isnan(self.rerun))

    @property
    def abs_diff(self) -> float:
        return 0.0 if self.identical else abs(self.recorded - self.rerun)


@dataclass(frozen=True)
class ReproductionReport:
    """What reproduce() re-trained and how it compares.

    `recorded_settings` are the provenance segments covering the re-trained epochs ([] for a run recorded
    before provenance existed); `settings` those of the re-run.
    """

    run: Path
    epochs: int
    comparisons: tuple[FieldComparison, ...]
    recorded_settings: tuple[dict[str, Any], ...]
    settings: dict[str, Any]

    @property
    def identical(self) -> bool:
        return all(c.identical for c in self.comparisons)

    @property
    def on_cuda(self) -> bool:
        """Whether the re-run trained on a GPU (nets.trainer.device_name names CUDA devices by their GPU)."""
        return not str(self.settings.get("device", "cpu")).startswith("cpu")

    @property
    def first_differing_epoch(self) -> int | None:
        return min((c.epoch for c in self.comparisons if not c.identical), default=None)

    def changed_settings(self) -> list[str]:
        """'name recorded -> now' for each setting of the re-run that differs from a covering segment's."""
        from .provenance import describe_changes

        return [change for segment in self.recorded_settings for change in describe_changes(segment, self.settings)]


def reproduce(run_dir: str | os.PathLike, epochs: int = 1, data: str | None = None, device: str | None = None,
              threads: int | None = None, work_dir: str | os.PathLike | None = None,
              progress: bool = False) -> ReproductionReport:
    """Re-train the first `epochs` epochs of the run in run_dir and compare them with its metrics.h5.

    Args:
        data: the run's data at another path (default: the path it recorded); checked by fingerprint.
        device: where to re-train (default: the device the run recorded).
        threads: CPU threads of the re-run (default: the count the run recorded, else this process's).
        work_dir: an empty or absent directory to train in, kept afterwards (default: a temporary one).

    Raises:
        ValueError: no readable metrics.h5, a run trained by several processes (torchrun) or a call under
            torchrun, epochs not in [1, epochs the run completed], threads not in [1, MAX_THREADS], a work_dir
            that is not empty, data whose fingerprint differs from the recorded one, or anything train() refuses.
    """
    import torch

    from .data import load_dataset
    from .device import check_threads
    from .metrics import read_metrics
    from .provenance import current_settings, execution_settings
    from .trainer import FINGERPRINT_KEY, TrainConfig, device_name, resolve_device, train

    recorded = _check_epochs(run_dir, epochs)
    if threads is not None:
        check_threads(threads)
    world = int(recorded.attrs.get("world_size", 1) or 1)
    if world != 1 or int(os.environ.get("WORLD_SIZE", "1")) != 1:
        raise ValueError(f"run_dir {run_dir} was trained by {world} process(es); reproduce re-trains in one process, "
                         "outside torchrun, and checks only runs trained by one")
    if work_dir is not None:
        _checked_work_dir(work_dir)  # before the data is read (checked again when training starts)
    segments = tuple(s for s in recorded.provenance if s["first_epoch"] <= epochs)
    # how epoch 1 executed (torch.compile, autocast, channels_last, test batch size), where the run recorded it:
    # config_json holds the last session's values, which a resume may have changed
    first = segments[0] if segments else {}
    executed = {name: first[name] for name in ("compile", "eval_batch_size") if name in first}
    if not str(first.get("device", "cpu")).startswith("cpu"):  # autocast and channels_last act on CUDA only
        executed.update({name: first[name] for name in ("amp", "channels_last") if name in first})
    overrides = {key: value for key, value in (("data", data), ("device", device)) if value is not None}
    config = TrainConfig.from_recorded({**recorded.config, **executed, **overrides})
    fingerprint = recorded.attrs.get(FINGERPRINT_KEY)
    dataset = load_dataset(config.data, progress=progress)  # read once: train() takes it as loaded
    if fingerprint is not None:
        found = dataset.fingerprint()
        if found != fingerprint:
            raise ValueError(f"data must be the data {run_dir} trained on (fingerprint {fingerprint}); got "
                             f"{config.data} (fingerprint {found})")
    if threads is None:
        threads = segments[0].get("threads") if segments else None
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        with _work_directory(work_dir) as work:
            train(config, work, progress=progress, stop_after=epochs, dataset=dataset)
            rerun = read_metrics(work)
        where = resolve_device(config.device)
        settings = current_settings(device_name(where), execution_settings(config, where.type == "cuda"))
    finally:
        torch.set_num_threads(before)
    comparisons = tuple(FieldComparison(epoch=i + 1, field=name, recorded=float(getattr(recorded, name)[i]),
                                        rerun=float(getattr(rerun, name)[i]))
                        for i in range(epochs) for name in COMPARED_FIELDS)
    return ReproductionReport(run=Path(run_dir), epochs=epochs, comparisons=comparisons,
                              recorded_settings=segments, settings=settings)


def _check_epochs(run_dir: str | os.PathLike, epochs: int):
    """The run's RunMetrics; ValueError unless it is readable and epochs lies in [1, epochs it completed]."""
    from .metrics import read_metrics

    recorded = read_metrics(run_dir)
    done = recorded.epochs_completed
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= done:
        raise ValueError(f"epochs must be an integer in [1, {done}] (the epochs {run_dir} completed); got {epochs!r}")
    return recorded


@contextmanager
def _work_directory(work_dir: str | os.PathLike | None) -> Iterator[Path]:
    """The re-run's directory: work_dir (checked empty or absent, kept) or one in a temporary directory (removed)."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="reproduce-") as temporary:
            yield Path(temporary) / "rerun"
        return
    yield _checked_work_dir(work_dir)


def _checked_work_dir(work_dir: str | os.PathLike) -> Path:
    """work_dir as a Path; ValueError unless it is an empty or absent directory."""
    work = Path(work_dir)
    if work.exists() and (not work.is_dir() or any(work.iterdir())):
        raise ValueError(f"work_dir must be an empty or absent directory; got {work}")
    return work


def format_report(report: ReproductionReport) -> str:
    """The report as text: a table of the compared values, the changed settings, and a verdict line."""
    lines = [f"{report.run}: re-trained epochs 1-{report.epochs} under threads {report.settings['threads']}, "
             f"code {report.settings['code_version']}, torch {report.settings['torch']}, "
             f"{report.settings['device']}",
             f"{'epoch':>5}  {'field':<10}  {'recorded':>22}  {'re-run':>22}  {'|diff|':>9}"]
    for c in report.comparisons:
        diff = "same" if c.identical else f"{c.abs_diff:.2e}"
        lines.append(f"{c.epoch:>5}  {c.field:<10}  {c.recorded!r:>22}  {c.rerun!r:>22}  {diff:>9}")
    if not report.recorded_settings:
        lines.append("settings: the run recorded none (trained before nets.provenance existed)")
    else:
        changed = report.changed_settings()
        lines.append("settings: " + ("all as recorded" if not changed else "differ from the recording: "
                                     + "; ".join(changed)))
    if report.identical:
        lines.append(f"verdict: bit-identical over {report.epochs} epoch(s)")
    else:
        cuda = " (expected on CUDA: seeded, not bitwise reproducible)" if report.on_cuda else ""
        lines.append(f"verdict: differs from epoch {report.first_differing_epoch}{cuda}")
    return "\n".join(lines)


def build_parser():
    """The argparse parser of `python -m nets.reproduce`."""
    import argparse

    from kolmogorov._cli import OneLineArgumentParser, positive_int

    from .device import thread_count
    from .trainer import DEVICES

    parser = OneLineArgumentParser(prog="python -m nets.reproduce", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories with a metrics.h5")
    parser.add_argument("--epochs", type=positive_int, default=1,
                        help="epochs to re-train and compare (default 1)")
    parser.add_argument("--data", default=None, help="the run's data at another path (default: the recorded path)")
    parser.add_argument("--device", choices=DEVICES, default=None,
                        help="where to re-train (default: the recorded device)")
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="CPU threads (default: the recorded count)")
    parser.add_argument("--keep", default=None, metavar="DIR",
                        help="train in DIR and keep it (empty or absent; one RUN_DIR only)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from kolmogorov._cli import fail, in_flag_words

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.keep is not None and len(args.runs) > 1:
        fail(parser.prog, f"--keep takes one RUN_DIR; got {len(args.runs)}")
    reports = []
    try:
        for run in args.runs:  # every run's metrics and --epochs before any training
            _check_epochs(run, args.epochs)
        for run in args.runs:
            if reports:
                print()
            reports.append(reproduce(run, epochs=args.epochs, data=args.data, device=args.device,
                                     threads=args.threads, work_dir=args.keep, progress=not args.no_progress))
            print(format_report(reports[-1]), flush=True)
    except (ValueError, OSError) as exc:  # "work_dir must ..." -> "--keep must ..."
        fail(parser.prog, in_flag_words(str(exc), ("epochs", "data", "threads", "work_dir"), {"work_dir": "--keep"}))
    if len(reports) > 1:
        same = sum(report.identical for report in reports)
        print(f"\n{same} of {len(reports)} runs bit-identical over {args.epochs} epoch(s)")
    return 0 if all(report.identical for report in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
