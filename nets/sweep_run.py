"""Running a sweep: each run's status on disk, the plan of an invocation, the training processes, the manifest.

The grid, the run names and the shards are nets.sweep's; this module looks up which runs are finished
(summary.finished in metrics.h5), lists the commands of a dry run, and trains the others as
subprocesses of `python -m nets.train`, `parallel` at a time, optionally pinned round-robin to GPUs,
rewriting the manifest out/sweep.json after each run. Its public names are also importable from
nets.sweep; the command line is `python -m nets.sweep` (nets/sweep_cli.py).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from kolmogorov._atomic import atomic_output
from nets.sweep import RunSpec, SweepConfig, command, expand, shard

RUN_STATUSES = ("finished", "partial", "pending")


def run_status(run_dir: Path) -> str:
    """'finished' (metrics.h5 summary.finished is true), 'partial' (something written) or 'pending'."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.h5"
    if metrics.is_file():
        import h5py

        try:
            with h5py.File(metrics, "r") as h5:
                finished = h5["summary"].attrs.get("finished", False) if "summary" in h5 else False
        except (OSError, KeyError):
            finished = False
        if isinstance(finished, bytes):
            finished = finished.decode()
        if isinstance(finished, str):
            finished = finished.strip().lower() in ("true", "1", "yes")
        if bool(finished):
            return "finished"
        return "partial"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        return "partial"
    return "pending"


def write_json_atomic(path: Path, content: dict) -> Path:
    """Write content as JSON to path through a temporary file and os.replace."""
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        json.dump(content, handle, indent=1, default=str)
        handle.write("\n")
    return Path(path)


@dataclass
class RunOutcome:
    """What happened to one run of a sweep: its status before, the command, exit code and wall time."""

    name: str
    status_before: str
    command: list[str]
    returncode: int | None = None
    seconds: float | None = None
    log: str | None = None
    status_after: str | None = None

    @property
    def ok(self) -> bool:
        """Exit status 0 and metrics.h5 saying finished (a trainer that exits 0 early is not a success)."""
        return self.returncode == 0 and self.status_after == "finished"


@dataclass
class SweepPlan:
    """The runs of one invocation (after sharding) with their status; `todo` are those to train."""

    config: SweepConfig
    runs: list[RunSpec]
    statuses: list[str]
    shard: tuple[int, int] | None = None

    @property
    def todo(self) -> list[RunSpec]:
        return [run for run, status in zip(self.runs, self.statuses) if status != "finished"]

    def manifest_path(self) -> Path:
        suffix = "" if self.shard is None else f"-shard{self.shard[0]}of{self.shard[1]}"
        return Path(self.config.out) / f"sweep{suffix}.json"


def plan(config: SweepConfig, shard_spec: tuple[int, int] | None = None) -> SweepPlan:
    """Expand config, keep this shard's runs and look up each run's status on disk."""
    runs = expand(config)
    if shard_spec is not None:
        runs = shard(runs, *shard_spec)
    statuses = [run_status(Path(config.out) / run.name) for run in runs]
    return SweepPlan(config=config, runs=runs, statuses=statuses, shard=shard_spec)


def dry_run_lines(sweep: SweepPlan) -> list[str]:
    """One line per run: the shell command of runs to train, a comment for finished ones."""
    lines = []
    for run, status in zip(sweep.runs, sweep.statuses):
        if status == "finished":
            lines.append(f"# finished, skipped: {run.name}")
        else:
            line = shlex.join(command(sweep.config, run))
            lines.append(line if status == "pending" else f"{line}  # resumes a partial run")
    return lines


def _code_version() -> str | None:
    """`git describe --always --dirty` of the checkout holding this module, or None outside git."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _manifest(sweep: SweepPlan, outcomes: dict[str, RunOutcome]) -> dict:
    config = asdict(sweep.config)
    config["out"] = str(sweep.config.out)
    runs = []
    for run, status in zip(sweep.runs, sweep.statuses):
        outcome = outcomes.get(run.name)
        runs.append({"name": run.name, "seed": run.seed, "config_hash": run.config_hash,
                     "configuration": run.configuration(), "status_before": status,
                     "command": command(sweep.config, run),
                     "returncode": None if outcome is None else outcome.returncode,
                     "status_after": None if outcome is None else outcome.status_after,
                     "seconds": None if outcome is None else outcome.seconds})
    return {"tool": "nets.sweep", "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": _code_version(),
            "shard": None if sweep.shard is None else list(sweep.shard), "sweep": config, "runs": runs}


def execute(sweep: SweepPlan, parallel: int = 1, gpus: Sequence[str] = (), progress: bool = True,
            poll_seconds: float = 0.05) -> list[RunOutcome]:
    """Train the plan's unfinished runs, `parallel` processes at a time; returns one outcome per run.

    Each process writes its output to out/logs/NAME.log (appended: a resumed run keeps its history).
    With `gpus`, process slots are pinned round-robin to those devices through CUDA_VISIBLE_DEVICES.
    OMP_NUM_THREADS is set to cpu_count // parallel unless already set. The manifest out/sweep.json is
    rewritten atomically after each run ends. Interrupted (Ctrl-C): the running children are terminated
    and the exception propagates; running the sweep again resumes them.
    """
    from tqdm.auto import tqdm

    if isinstance(parallel, bool) or int(parallel) != parallel or parallel < 1:
        raise ValueError(f"parallel must be a positive integer, got {parallel!r}")
    out = Path(sweep.config.out)
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, RunOutcome] = {}
    for run, status in zip(sweep.runs, sweep.statuses):
        if status == "finished":
            outcomes[run.name] = RunOutcome(run.name, status, command(sweep.config, run), returncode=0, seconds=0.0,
                                            status_after=status)
    write_json_atomic(sweep.manifest_path(), _manifest(sweep, {}))
    queue = [(run, status) for run, status in zip(sweep.runs, sweep.statuses) if status != "finished"]
    base_env = dict(os.environ)
    base_env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    running: dict[int, tuple[subprocess.Popen, RunOutcome, float, object]] = {}
    bar = tqdm(total=len(queue), desc="sweep", unit="run", disable=not progress)
    try:
        while queue or running:
            free_slots = [slot for slot in range(parallel) if slot not in running]
            while queue and free_slots:
                slot = free_slots.pop(0)
                run, status = queue.pop(0)
                env = dict(base_env)
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(gpus[slot % len(gpus)])
                cmd = command(sweep.config, run)
                log_path = log_dir / f"{run.name}.log"
                log = open(log_path, "a")
                log.write(f"$ {shlex.join(cmd)}\n")
                log.flush()
                process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                running[slot] = (process, RunOutcome(run.name, status, cmd, log=str(log_path)), time.monotonic(), log)
            time.sleep(poll_seconds)
            for slot, (process, outcome, started, log) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                outcome.returncode = process.returncode
                outcome.seconds = time.monotonic() - started
                outcome.status_after = run_status(out / outcome.name)
                outcomes[outcome.name] = outcome
                del running[slot]
                bar.update(1)
                failed = sum(1 for o in outcomes.values() if not o.ok)
                bar.set_postfix(failed=failed)
                write_json_atomic(sweep.manifest_path(), _manifest(sweep, outcomes))
    except BaseException:
        for process, _, _, log in running.values():
            process.terminate()
        for process, _, _, log in running.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
        raise
    finally:
        bar.close()
    return [outcomes[run.name] for run in sweep.runs if run.name in outcomes]


def run_sweep(config: SweepConfig, parallel: int = 1, shard_spec: tuple[int, int] | None = None,
              gpus: Sequence[str] = (), progress: bool = True) -> list[RunOutcome]:
    """plan + execute: train every unfinished run of the sweep (or of its shard)."""
    return execute(plan(config, shard_spec), parallel=parallel, gpus=gpus, progress=progress)
