"""Running a sweep: each run's status on disk, the plan of an invocation, the training processes, the manifest.

The grid, the run names and the shards are nets.sweep's; this module looks up which runs are finished
(summary.finished in metrics.h5), lists the commands of a dry run, and trains the others as
subprocesses of `python -m nets.train`, `parallel` at a time, optionally pinned round-robin to GPUs,
rewriting the manifest out/sweep.json after each run (merged: the runs of other sweeps on the same out
that it lists stay listed, unless deleted: earlier_runs). A run whose directory another trainer has locked
(nets.locks.run_lock) is skipped as running elsewhere; check_fingerprints refuses a sweep whose finished
or partial runs were trained on other data. Its public names are also importable from nets.sweep; the
command line is `python -m nets.sweep` (nets/sweep_cli.py).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Sequence

from kolmogorov._atomic import atomic_output
from nets.sweep import RunSpec, SweepConfig, command, data_fingerprints, expand, shard
from nets.locks import LOCK_NAME, directory_lock, locked_by
from nets.provenance import code_version
from nets.trainer import FINGERPRINT_KEY, LAYOUT_KEY, fingerprints_agree, pixels_differ_warning

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
    if run_dir.is_dir() and any(path.name != LOCK_NAME for path in run_dir.iterdir()):
        return "partial"
    return "pending"


def _progress_note(run_dir: Path) -> str:
    """' (K of E epochs done)' from a partial run's metrics.h5, ' (no epoch saved yet)' without a readable one."""
    import h5py

    try:
        with h5py.File(run_dir / "metrics.h5", "r") as h5:
            done, total = int(h5["summary"].attrs["epochs_completed"]), int(h5.attrs["epochs"])
    except (OSError, KeyError, TypeError, ValueError):
        return " (no epoch saved yet)"
    return f" ({done} of {total} epochs done)"


def check_out(out: str | Path, manifest: Path | None = None, name: str = "out") -> Path:
    """ValueError naming `name` (e.g. "--out") unless a sweep can write into `out`; creates nothing.

    `out` must be a non-empty path where a directory exists or can be created (nets.trainer.check_out_dir:
    not a file, not under a file, not where no file can be created, e.g. /proc); out/logs, where it exists,
    must be a directory and the manifest (default out/sweep.json) must not be one.
    """
    from nets.trainer import check_out_dir

    path = check_out_dir(out, name)  # also refuses the empty string a SweepConfig may hold
    logs = path / "logs"
    if logs.exists() and not logs.is_dir():
        raise ValueError(f"{name} {str(out)!r}: {str(logs)!r} exists and is not a directory (the runs' logs go there)")
    manifest = path / "sweep.json" if manifest is None else Path(manifest)
    if manifest.is_dir():
        raise ValueError(f"{name} {str(out)!r}: {str(manifest)!r} is a directory (the sweep's manifest is written there)")
    return path


def recorded_fingerprints(run_dir: Path) -> tuple[str | None, str | None]:
    """(data_fingerprint, data_layout_fingerprint) a run recorded; None for each it did not record.

    Read from metrics.h5 (root attributes) when it is readable, else from checkpoint.pt when torch is
    already imported (no import just for this), else from config.json: the trainer writes config.json,
    with both fingerprints, before its first checkpoint, so a run killed in its first epoch is covered.
    """
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.h5"
    if metrics.is_file():
        import h5py

        from nets.metrics import _python_value

        try:
            with h5py.File(metrics, "r") as h5:
                values = [h5.attrs.get(key) for key in (FINGERPRINT_KEY, LAYOUT_KEY)]
            return tuple(None if value is None else str(_python_value(value)) for value in values)
        except OSError:
            pass
    if (run_dir / "checkpoint.pt").is_file() and "torch" in sys.modules:
        from nets.checkpoint import load_checkpoint

        try:
            ckpt = load_checkpoint(run_dir / "checkpoint.pt")
            return ckpt.get(FINGERPRINT_KEY), ckpt.get(LAYOUT_KEY)
        except (OSError, ValueError, RuntimeError):
            pass
    try:
        recorded = json.loads((run_dir / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    if not isinstance(recorded, dict):
        return None, None
    return recorded.get(FINGERPRINT_KEY), recorded.get(LAYOUT_KEY)


def check_fingerprints(out: Path, runs: Sequence[RunSpec], statuses: Sequence[str],
                       fingerprint: str | tuple[str, str], data: str) -> None:
    """ValueError (one line) when a finished or partial run under `out` was trained on other data.

    `fingerprint` is (Dataset.fingerprint(), Dataset.layout_fingerprint()) of `data` (nets.sweep.
    data_fingerprints), or the first alone; a run's recorded ones are read by recorded_fingerprints. Runs
    recorded without one (before fingerprints existed) are accepted; runs whose layout fingerprint matches
    but whose pixel values differ (another JPEG decoder) are accepted with one warning line on stderr.
    """
    current = tuple(fingerprint) if isinstance(fingerprint, (tuple, list)) else (fingerprint, None)
    clashes, pixels = [], []
    for run, status in zip(runs, statuses):
        if status == "pending":
            continue
        recorded = recorded_fingerprints(Path(out) / run.name)
        agree = fingerprints_agree(recorded, current)
        if agree is False:
            clashes.append((run.name, recorded[0]))
        elif agree is None:
            pixels.append(run.name)
    if clashes:
        name, recorded = clashes[0]
        raise ValueError(f"data {data} (fingerprint {current[0]}) is not the data of {len(clashes)} run(s) in {out} "
                         f"(first: {name}, trained on data with fingerprint {recorded}); use another --out")
    if pixels:
        where = f"{len(pixels)} run(s) in {out} (first: {pixels[0]})"
        print(pixels_differ_warning(where, data, "they"), file=sys.stderr, flush=True)


def _json_value(value: object) -> object:
    """A value json cannot write: a numpy scalar as its Python number, anything else as its str."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else str(value)


def write_json_atomic(path: Path, content: dict) -> Path:
    """Write content as JSON to path through a temporary file and os.replace."""
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        json.dump(content, handle, indent=1, default=_json_value)
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
    error: str | None = None
    elsewhere: bool = False

    @property
    def ok(self) -> bool:
        """Exit status 0 and metrics.h5 saying finished (a trainer that exits 0 early is not a success)."""
        return self.returncode == 0 and self.status_after == "finished"

    @property
    def failed(self) -> bool:
        """Not ok, and not skipped because another process was training the run (`elsewhere`)."""
        return not self.ok and not self.elsewhere


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
        return Path(self.config.out) / manifest_name(self.shard)


def manifest_name(shard: tuple[int, int] | None) -> str:
    """The manifest's file name: sweep.json, or sweep-shard{I}of{N}.json for shard I/N."""
    return "sweep.json" if shard is None else f"sweep-shard{shard[0]}of{shard[1]}.json"


def _is_manifest_name(name: str) -> bool:
    """Whether `name` is one that manifest_name gives (for some shard)."""
    found = re.fullmatch(r"sweep-shard([0-9]+)of([0-9]+)\.json", name)
    return name == manifest_name(None) or (found is not None
                                           and name == manifest_name((int(found[1]), int(found[2]))))


def plan(config: SweepConfig, shard_spec: tuple[int, int] | None = None,
         data_fingerprint: str | tuple[str, str] | None = None) -> SweepPlan:
    """Expand config, keep this shard's runs and look up each run's status on disk.

    With data_fingerprint (nets.sweep.data_fingerprints(config.data)), a ValueError refuses the plan when
    a run it would skip or resume was trained on other data (check_fingerprints).
    """
    runs = expand(config)
    if shard_spec is not None:
        runs = shard(runs, *shard_spec)
    statuses = [run_status(Path(config.out) / run.name) for run in runs]
    if data_fingerprint is not None:
        check_fingerprints(Path(config.out), runs, statuses, data_fingerprint, config.data)
    return SweepPlan(config=config, runs=runs, statuses=statuses, shard=shard_spec)


def dry_run_lines(sweep: SweepPlan) -> list[str]:
    """One line per run: the shell command of runs to train, a comment for finished ones and for those
    another process is training now (their directory's lock is held)."""
    lines = []
    for run, status in zip(sweep.runs, sweep.statuses):
        run_dir = Path(sweep.config.out) / run.name
        holder = None if status == "finished" else locked_by(run_dir)
        if status == "finished":
            lines.append(f"# finished, skipped: {run.name}")
        elif holder is not None:
            lines.append(f"# running elsewhere (pid {holder}; {_progress_note(run_dir).strip(' ()')}), skipped: "
                         f"{run.name}")
        else:
            line = shlex.join(command(sweep.config, run))
            lines.append(line if status == "pending" else f"{line}  # resumes a partial run{_progress_note(run_dir)}")
    return lines


def _valid_run_name(name: object) -> bool:
    """A run name a manifest may list: a plain directory name (no separator, not '.' or '..')."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def read_manifest_runs(path: Path, warn: bool = True) -> list[dict] | None:
    """The run entries of the manifest at `path`: [] when there is none, None when it is not a nets.sweep manifest.

    A file that cannot be read or parsed, is not a dict with tool "nets.sweep" and a list "runs", or lists an
    entry that is not a dict with a plain run name, is corrupt or foreign: with `warn`, one line on stderr
    says so and that a fresh manifest replaces it.
    """
    path = Path(path)
    if not path.exists():
        return []
    content = _read_manifest(path, warn)
    return None if content is None else content["runs"]


def _read_manifest(path: Path, warn: bool) -> dict | None:
    """The whole manifest at `path` (an existing file) when it is a valid one (read_manifest_runs), else None."""
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"unreadable ({type(error).__name__})"
    else:
        entries = content.get("runs") if isinstance(content, dict) else None
        if (isinstance(content, dict) and content.get("tool") == "nets.sweep" and isinstance(entries, list)
                and all(isinstance(entry, dict) and _valid_run_name(entry.get("name")) for entry in entries)):
            return content
        problem = "not a nets.sweep manifest"
    if warn:
        print(f"nets.sweep: warning: the manifest {path} is {problem}; writing a fresh one (its entries are lost)",
              file=sys.stderr, flush=True)
    return None


def earlier_runs(entries: Sequence[dict], sweep: SweepPlan, refresh: bool = False) -> list[dict]:
    """The entries of an existing manifest to keep: runs not in this sweep, unless their directory is gone.

    A run whose directory does not exist is kept only while its entry says `pending` (another sweep on
    this out has not started it yet); one recorded as started (finished or partial) whose directory is
    gone was deleted, and is dropped. The last entry of a name wins; with `refresh`, each kept entry's
    `status` is set to its run's status on disk now (run_status), otherwise it keeps the `status` it had.
    """
    ours = {run.name for run in sweep.runs}
    kept: dict[str, dict] = {}
    for entry in entries:
        name = entry["name"]
        if name in ours or (not (Path(sweep.config.out) / name).is_dir() and entry.get("status") != "pending"):
            continue
        kept.pop(name, None)
        kept[name] = dict(entry, status=run_status(Path(sweep.config.out) / name)) if refresh else entry
    return list(kept.values())


def _manifest(sweep: SweepPlan, outcomes: dict[str, RunOutcome], earlier: Sequence[dict] = ()) -> dict:
    """The manifest: this sweep's configuration, the `earlier` entries (earlier_runs), then this sweep's runs."""
    config = asdict(sweep.config)
    config["out"] = str(sweep.config.out)
    runs = [dict(entry) for entry in earlier]
    for run, status in zip(sweep.runs, sweep.statuses):
        outcome = outcomes.get(run.name)
        status_after = None if outcome is None else outcome.status_after
        runs.append({"name": run.name, "seed": run.seed, "config_hash": run.config_hash,
                     "configuration": run.configuration(), "status_before": status,
                     "status": status if status_after is None else status_after,
                     "command": command(sweep.config, run),
                     "returncode": None if outcome is None else outcome.returncode,
                     "status_after": status_after,
                     "seconds": None if outcome is None else outcome.seconds,
                     "error": None if outcome is None else outcome.error,
                     "running_elsewhere": outcome is not None and outcome.elsewhere})
    return {"tool": "nets.sweep", "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": code_version(),
            "shard": None if sweep.shard is None else list(sweep.shard), "sweep": config, "runs": runs}


def write_manifest(sweep: SweepPlan, outcomes: dict[str, RunOutcome], fallback: Sequence[dict] = (),
                   first: bool = False) -> list[dict]:
    """Rewrite the sweep's manifest atomically, keeping the runs of other sweeps it lists; returns those kept.

    The manifest on disk is read again each time, under a directory_lock on out, so entries another sweep on
    the same out wrote meanwhile survive (earlier_runs says which are kept). When it cannot be read, the
    entries in `fallback` are kept instead. `first` is the sweep's first write: a corrupt or foreign
    manifest gets one warning line on stderr, and the kept entries' statuses are refreshed from disk.
    """
    path = sweep.manifest_path()
    with directory_lock(path.parent):
        entries = read_manifest_runs(path, warn=first)
        earlier = earlier_runs(fallback if entries is None else entries, sweep, refresh=first)
        write_json_atomic(path, _manifest(sweep, outcomes, earlier))
        if first:
            _unlist_elsewhere(sweep)
    return earlier


def _unlist_elsewhere(sweep: SweepPlan) -> None:
    """Drop this sweep's runs from the other manifests in its out (a sweep run unsharded after shards, or
    re-sharded with another N), so that each run is listed by one manifest: the last sweep that planned it.
    A manifest left listing no run is removed; one that cannot be read is left as it is. Call it holding
    the directory_lock on out."""
    ours, own = {run.name for run in sweep.runs}, sweep.manifest_path().name
    for other in sorted(Path(sweep.config.out).glob("sweep*.json")):
        if other.name == own or not _is_manifest_name(other.name):
            continue
        content = _read_manifest(other, warn=False)
        if content is None or not any(entry["name"] in ours for entry in content["runs"]):
            continue
        kept = [entry for entry in content["runs"] if entry["name"] not in ours]
        if kept:
            write_json_atomic(other, dict(content, runs=kept))
        else:
            other.unlink()


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask where the OS has one, else cpu_count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _open_log(path: Path, cmd: Sequence[str]) -> IO[str]:
    """Open a run's log for appending and write the `$ cmd` header on a line of its own.

    A killed trainer may have left a progress bar without its newline at the end of the log.
    """
    newline = ""
    if path.is_file() and path.stat().st_size > 0:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            newline = "" if handle.read(1) == b"\n" else "\n"
    log = open(path, "a")
    log.write(f"{newline}$ {shlex.join(cmd)}\n")
    log.flush()
    return log


def _elsewhere(outcome: RunOutcome, pid: str) -> RunOutcome:
    outcome.elsewhere = True
    outcome.error = f"running elsewhere (pid {pid}), skipped"
    return outcome


def _launch(sweep: SweepPlan, run: RunSpec, status: str, env: dict[str, str],
            log_dir: Path) -> tuple[subprocess.Popen | None, RunOutcome, IO[str] | None]:
    """Start the trainer of one run; (None, outcome, None) when it is running elsewhere or cannot start."""
    run_dir = Path(sweep.config.out) / run.name
    cmd = command(sweep.config, run)
    outcome = RunOutcome(run.name, status, cmd)
    holder = locked_by(run_dir)
    if holder is not None:
        outcome.status_after = status
        return None, _elsewhere(outcome, holder), None
    log_path = log_dir / f"{run.name}.log"
    outcome.log = str(log_path)
    log = _open_log(log_path, cmd)
    try:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    except OSError as error:
        outcome.error = f"cannot start the trainer: {error}"
        log.write(outcome.error + "\n")
        log.close()
        outcome.status_after = run_status(run_dir)
        return None, outcome, None
    return process, outcome, log


def _ended(process: subprocess.Popen, outcome: RunOutcome, started: float, run_dir: Path) -> RunOutcome:
    """Fill in what a trainer process that has exited did; a refusal because another process holds the
    run's lock (the race between probing and starting) counts as running elsewhere, not as a failure."""
    outcome.returncode = process.returncode
    outcome.seconds = time.monotonic() - started
    outcome.status_after = run_status(run_dir)
    holder = locked_by(run_dir) if process.returncode != 0 else None
    return _elsewhere(outcome, holder) if holder is not None else outcome


def execute(sweep: SweepPlan, parallel: int = 1, gpus: Sequence[str] = (), progress: bool = True,
            poll_seconds: float = 0.05) -> list[RunOutcome]:
    """Train the plan's unfinished runs, `parallel` processes at a time; returns one outcome per run.

    Each process writes its output to out/logs/NAME.log (appended: a resumed run keeps its history).
    With `gpus`, process slots are pinned round-robin to those devices through CUDA_VISIBLE_DEVICES.
    OMP_NUM_THREADS is set to usable_cpus() // parallel unless already set. A run whose directory is
    locked by a trainer elsewhere (another sweep, another nets.train) is skipped (outcome.elsewhere);
    a trainer command that cannot be started (OSError) fails its run (outcome.error) and the others go
    on. The manifest out/sweep.json is rewritten atomically after each run ends; the runs of other sweeps
    it lists are kept unless deleted (write_manifest), a corrupt or foreign manifest is replaced
    with one warning line on stderr. Before anything is
    written, check_out refuses an `out` the sweep cannot write into (ValueError). Interrupted (Ctrl-C):
    the running children are terminated and the exception propagates; running the sweep again resumes them.
    """
    from tqdm.auto import tqdm

    if isinstance(parallel, bool) or int(parallel) != parallel or parallel < 1:
        raise ValueError(f"parallel must be a positive integer, got {parallel!r}")
    out = check_out(sweep.config.out, sweep.manifest_path())
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, RunOutcome] = {}
    for run, status in zip(sweep.runs, sweep.statuses):
        if status == "finished":
            outcomes[run.name] = RunOutcome(run.name, status, command(sweep.config, run), returncode=0, seconds=0.0,
                                            status_after=status)
    earlier = write_manifest(sweep, {}, first=True)  # a corrupt or foreign manifest: warned, replaced
    queue = [(run, status) for run, status in zip(sweep.runs, sweep.statuses) if status != "finished"]
    base_env = dict(os.environ)
    base_env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cpus() // parallel)))
    running: dict[int, tuple[subprocess.Popen, RunOutcome, float, IO[str]]] = {}
    bar = tqdm(total=len(queue), desc="sweep", unit="run", disable=not progress)

    def record(outcome: RunOutcome) -> None:
        outcomes[outcome.name] = outcome
        bar.update(1)
        bar.set_postfix(failed=sum(1 for o in outcomes.values() if o.failed))
        write_manifest(sweep, outcomes, earlier)

    try:
        while queue or running:
            free_slots = [slot for slot in range(parallel) if slot not in running]
            while queue and free_slots:
                run, status = queue.pop(0)
                env = dict(base_env)
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(gpus[free_slots[0] % len(gpus)])
                process, outcome, log = _launch(sweep, run, status, env, log_dir)
                if process is None:
                    record(outcome)
                    continue
                running[free_slots.pop(0)] = (process, outcome, time.monotonic(), log)
            time.sleep(poll_seconds)
            for slot, (process, outcome, started, log) in list(running.items()):
                if process.poll() is None:
                    continue
                log.close()
                del running[slot]
                record(_ended(process, outcome, started, out / outcome.name))
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
              gpus: Sequence[str] = (), progress: bool = True, check_data: bool = True) -> list[RunOutcome]:
    """plan + execute: train every unfinished run of the sweep (or of its shard).

    With check_data (the default) the data is loaded once first (DataError when the trainer could not
    load it) and its fingerprint compared with the finished and partial runs' (check_fingerprints).
    """
    fingerprint = data_fingerprints(config.data) if check_data else None
    return execute(plan(config, shard_spec, data_fingerprint=fingerprint), parallel=parallel, gpus=gpus,
                   progress=progress)
