"""The parts of benchmarks/gpu_session.py that do not know its steps: running a logged subprocess under a
time cap and stopping its process group, reading pytest's counts, packing runs into one tar for $OUT, reading
the runs' progress from their metrics.h5, and rendering summary.json as the summary.md a person reads first.

Imported by gpu_session.py (same folder; not a package). The limits are the device tool's on $OUT: at most 8
files of 16 MiB, all at the top level.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kolmogorov._atomic import atomic_output

RUN_FILES = ("metrics.h5", "config.json", "checkpoint.pt")
MAX_OUT_FILE_BYTES = 16 * 2**20
TICK_S = 30.0


@dataclass
class Finished:
    """How a step's subprocess ended."""

    returncode: int | None
    seconds: float
    stopped: bool  # stopped by us at its time cap


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stop_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the process group of proc (a session leader), SIGKILL what is left after grace_s."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                try:
                    os.killpg(proc.pid, 0)  # the leader is gone; are its children?
                except ProcessLookupError:
                    break
            time.sleep(0.1)
        else:
            continue
        break
    proc.wait()


def run_logged(cmd: list[str], log_path: Path, cap_s: float, cwd: Path | None = None, env: dict | None = None,
               tick: Callable[[], None] | None = None, tick_s: float = TICK_S) -> Finished:
    """Run cmd in its own process group with stdout+stderr appended to log_path; stop it after cap_s.

    tick() is called every tick_s seconds while it runs; an exception in tick is logged and the command goes on.
    """
    start = time.monotonic()
    with open(log_path, "a") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True)
        stopped = False
        next_tick = start + tick_s
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                now = time.monotonic()
                if now - start >= cap_s:
                    stop_group(proc)
                    stopped = True
                elif tick is not None and now >= next_tick:
                    try:
                        tick()
                    except Exception as error:  # reporting progress must never stop the work it reports on
                        log.write(f"# progress report failed, work goes on: {type(error).__name__}: {error}\n")
                        log.flush()
                    next_tick = now + tick_s
        except BaseException:
            stop_group(proc)
            raise
        seconds = time.monotonic() - start
        log.write(f"# exit status {proc.returncode} after {seconds:.1f} s"
                  f"{' (stopped at its time cap)' if stopped else ''}\n")
    return Finished(proc.returncode, seconds, stopped)


def parse_pytest(text: str) -> dict[str, Any]:
    """Counts of passed/failed/skipped/error tests from pytest output (-v lines, else the final line)."""
    per_test = re.findall(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", text, flags=re.M)
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    final = re.findall(r"^=+ (.*) in [\d.]+s", text, flags=re.M)
    if final and re.search(r"\d+ (passed|failed|skipped|error|deselected)", final[-1]):
        for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)",
                                       final[-1]):
            key = "errors" if word.startswith("error") else word
            counts[key] = counts.get(key, 0) + int(number)
        counts["complete"] = True
    else:
        word = {"PASSED": "passed", "FAILED": "failed", "SKIPPED": "skipped", "ERROR": "errors"}
        for _, status in per_test:
            if status in word:
                counts[word[status]] += 1
        counts["complete"] = False
    counts["failed_tests"] = sorted({name for name, status in per_test if status in ("FAILED", "ERROR")})
    return counts


def pack_runs(runs_dir: Path, tar_path: Path, names: list[str] | None = None) -> dict[str, Any]:
    """Write runs_dir/NAME/{metrics.h5, config.json, checkpoint.pt} into tar_path, atomically.

    Members are named relative to the current directory when runs_dir lies inside it (results/table1/NAME/...),
    so that `tar -xf` in the repository root puts them back (otherwise by the directory's own name,
    table1/NAME/...). Above MAX_OUT_FILE_BYTES the checkpoints are
    left out (metrics.h5 and config.json only) and the result says so.
    """
    run_dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir() and (names is None or p.name in names)) \
        if runs_dir.is_dir() else []
    base = Path.cwd()
    try:
        prefix = runs_dir.resolve().relative_to(base.resolve())
    except ValueError:
        prefix = Path(runs_dir.name)

    def write(files: tuple[str, ...]) -> tuple[int, list[str]]:
        members = []
        with atomic_output(tar_path) as tmp:
            with tarfile.open(tmp, "w") as tar:
                for run_dir in run_dirs:
                    for name in files:
                        path = run_dir / name
                        try:  # open first, then size the entry from the open file: a trainer that
                            handle = open(path, "rb")  # os.replaces it meanwhile cannot truncate it
                        except (FileNotFoundError, IsADirectoryError):
                            continue
                        with handle:
                            arcname = str(prefix / run_dir.name / name)
                            tar.addfile(tar.gettarinfo(arcname=arcname, fileobj=handle), handle)
                            members.append(arcname)
            size = os.path.getsize(tmp)
            if size > MAX_OUT_FILE_BYTES:
                raise OverflowError(size)
        return size, members

    checkpoints = True
    try:
        size, members = write(RUN_FILES)
    except OverflowError:
        checkpoints = False
        size, members = write(tuple(f for f in RUN_FILES if f != "checkpoint.pt"))
    return {"file": tar_path.name, "bytes": size, "members": members, "runs": [p.name for p in run_dirs],
            "checkpoints_included": checkpoints, "written": utc_now()}


def run_progress(runs_dir: Path, names: list[str], epochs: int) -> list[dict[str, Any]]:
    """Per planned run: epochs done, finished, test accuracy, seconds per epoch, minutes left."""
    import numpy as np

    from nets.metrics import read_metrics

    rows = []
    for name in names:
        row: dict[str, Any] = {"name": name, "epochs": epochs, "epochs_completed": 0, "finished": False}
        path = runs_dir / name / "metrics.h5"
        if path.is_file():
            try:
                m = read_metrics(path)
            except (ValueError, OSError) as exc:
                row["error"] = f"metrics.h5 unreadable ({type(exc).__name__})"
            else:
                done = int(m.epochs_completed)
                recent = np.asarray(m.epoch_time[-5:], dtype=float)
                row.update(epochs_completed=done, finished=bool(m.summary.get("finished")),
                           device_name=m.summary.get("device_name"))
                if done:
                    per_epoch = float(recent.mean())
                    row.update(last_test_acc=float(m.test_acc[-1]), best_test_acc=float(np.max(m.test_acc)),
                               last_train_loss=float(m.train_loss[-1]), seconds_per_epoch=per_epoch,
                               minutes_left=(epochs - done) * per_epoch / 60.0)
        elif (runs_dir / name).is_dir():
            row["note"] = "started, no epoch completed"
        rows.append(row)
    return rows


def append_run_logs(runs_dir: Path, names: list[str], log: Path, lines: int = 15) -> None:
    """Append the last lines of each run's own log (OUT/logs/NAME.log of nets.sweep) to log."""
    with open(log, "a") as fh:
        for name in names:
            path = runs_dir / "logs" / f"{name}.log"
            if path.is_file():
                text = path.read_text(errors="replace").replace("\x1b[A", "").replace("\r", "\n")
                tail = [line for line in text.splitlines() if line.strip()][-lines:]
                fh.write(f"# ---- last lines of {path}\n" + "\n".join(tail) + "\n")


def render_markdown(s: dict[str, Any]) -> str:
    """summary.json as a page a person reads first."""
    out = [f"# GPU session summary ({'complete' if s['complete'] else 'in progress'})", "",
           f"started {s['started']}, updated {s.get('updated')}, {s.get('elapsed_s')} s of the {s['budget_s']:g} s "
           f"budget{' (smoke)' if s['smoke'] else ''}; arguments: `{' '.join(s['argv'])}`", ""]
    env = s.get("env")
    if env:
        gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB, sm {g['capability']})" for g in env.get("gpus", []))
        out += [f"- torch {env.get('torch')}, CUDA {env.get('torch_cuda')}, cuDNN {env.get('cudnn')}, triton "
                f"{env.get('triton')}, Python {env.get('python')}, {env.get('cpu_count')} CPUs",
                f"- GPU: {gpus or 'none visible to torch'}; nvidia-smi: {env.get('nvidia_smi')}", ""]
    out += ["| step | status | seconds | cap (s) | log |", "|---|---|---|---|---|"]
    for name, r in s["steps"].items():
        status = r["status"] + (f" ({r['error']})" if r.get("error") else "")
        out.append(f"| {name} | {status} | {r.get('seconds', '')} | {r.get('cap_s', '')} | {r.get('log') or ''} |")
    tests = s.get("tests")
    if tests:
        out += ["", f"**tests** (pytest -m cuda): {tests['passed']} passed, {tests['failed']} failed, "
                    f"{tests['errors']} errors, {tests['skipped']} skipped"
                    f"{'' if tests.get('complete') else ' (pytest did not finish)'}"]
        out += [f"- failed: `{name}`" for name in tests["failed_tests"]]
    bench = s.get("bench")
    if bench:
        out += ["", "**bench** (benchmarks/bench_train.py)", "",
                "| trainer | device | images/s | reference images/s | ratio | 164 epochs (min) |",
                "|---|---|---|---|---|---|"]
        for key in ("eager", "compile"):
            b = bench.get(key)
            if b:
                out.append(f"| {key} | {b['device_name']} | {b['trainer_images_per_s']:.0f} | "
                           f"{b['reference_images_per_s']:.0f} | {b['ratio']:.2f} | "
                           f"{b['projected_164_epochs_min']:.1f} |")
        if "compile_speedup" in bench:
            out.append(f"\ncompiled / eager: {bench['compile_speedup']:.2f}x")
    runs_record = s["steps"].get("runs", {})
    if "compile_reason" in runs_record:
        out += ["", f"runs: compile {'on' if runs_record['compile'] else 'off'} ({runs_record['compile_reason']}); "
                    f"data {runs_record['data']}; directory {runs_record['runs_dir']}"]
    if s.get("runs"):
        out += ["", "| run | epochs | finished | last test acc | best | s/epoch | min left |",
                "|---|---|---|---|---|---|---|"]
        for r in s["runs"]:
            def fmt(key: str, spec: str) -> str:
                return format(r[key], spec) if key in r else ""
            out.append(f"| {r['name']} | {r['epochs_completed']}/{r['epochs']} | {'yes' if r['finished'] else 'no'} | "
                       f"{fmt('last_test_acc', '.4f')} | {fmt('best_test_acc', '.4f')} | "
                       f"{fmt('seconds_per_epoch', '.2f')} | "
                       f"{fmt('minutes_left', '.1f')} |")
    tar = s.get("runs_tar")
    if tar:
        out += ["", f"**runs.tar**: {len(tar['members'])} files of {len(tar['runs'])} runs, "
                    f"{tar['bytes'] / 2**20:.1f} MiB"
                    f"{'' if tar['checkpoints_included'] else ', WITHOUT checkpoints (too big)'}, "
                    f"written {tar['written']}; "
                    "in the repository root: `tar -xf runs.tar`"]
    if s.get("interrupted"):
        out += ["", f"interrupted by {s['interrupted']}"]
    return "\n".join(out) + "\n"
