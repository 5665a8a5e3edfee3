"""The first GPU session of resnet-sde as one command: environment, CUDA tests, benchmark, Table 1 runs.

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_session.py --npz data/cifar10-jpeg.npz --out $OUT \\
        --budget-s 540

Run from the repository root (the runs go to results/table1, relative to it). Steps, each with a time
cap and its own log in OUT:
  env    torch / CUDA versions, the GPU, `nvidia-smi`                                   (env.log)
  tests  python -m pytest -m cuda tests/test_cuda.py                                    (tests.log)
  bench  benchmarks/bench_train.py for the model: this trainer against the plain reference
         loop (8 DataLoader workers), then with --compile                               (bench.log)
  runs   python -m nets.sweep: the main paper's recipe (section 4.2.1, 164 epochs) for the model at
         the Bernoulli survival probabilities --p (eq. 3.1), 2 at a time, until the budget is spent;
         then SIGTERM (SIGKILL after 15 s). Finished runs are skipped and partial ones resume from their
         checkpoints, so a later call continues where this one stopped.                (runs.log)
After the runs, OUT/runs.tar holds results/table1/NAME/{metrics.h5,config.json,checkpoint.pt} of every
run: `tar -xf runs.tar` in the repository root restores them. After every step, every 30 s while a step
runs, and every 60 s for runs.tar, OUT/summary.md and OUT/summary.json are rewritten atomically, so a
kill at any moment leaves a useful result. OUT never holds more than 8 files, all at its top level.

Exit status 0 when the session ran (the summary says which steps failed), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kolmogorov._atomic import atomic_output, check_writable  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # session_io lies beside this script
from session_io import (append_run_logs, pack_runs, parse_pytest, render_markdown, run_logged,  # noqa: E402
                        run_progress, utc_now)
from kolmogorov._cli import OneLineArgumentParser, checked_type, fail  # noqa: E402

PROG = "benchmarks/gpu_session.py"
STEPS = ("env", "tests", "bench", "runs")
CAPS_S = {"env": 30.0, "tests": 200.0, "bench": 150.0}  # the runs take what is left
# tests: a cold torch.compile of a training step and two nets.train subprocesses (kill + resume) on a fresh machine
#: auto turns --compile on for the runs when the benchmark's compiled trainer is at least this much faster
#: (a margin for timing noise and for the compilation each resumed process pays again).
AUTO_COMPILE_MIN_SPEEDUP = 1.10
#: auto also wants the time compilation saves in the runs step to exceed this many times the compilation time the
#: benchmark measured (its compiled variant's seconds less its eager variant's): each trainer process compiles its
#: training graph, its ragged last batch and its evaluation graph, two processes at once, in a runs step of a few
#: minutes.
AUTO_COMPILE_OVERHEAD_FACTOR = 2.0
PACK_EVERY_S = 60.0

ENV_SCRIPT = r"""
import json, os, platform, shutil, sys
import numpy, torch
info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cuda_available": torch.cuda.is_available(), "gpus": [],
        "c_compiler": shutil.which("cc") or shutil.which("gcc")}
for i in range(torch.cuda.device_count() if info["cuda_available"] else 0):
    p = torch.cuda.get_device_properties(i)
    info["gpus"].append({"name": p.name, "capability": f"{p.major}.{p.minor}",
                         "memory_gib": round(p.total_memory / 2**30, 1)})
for name in ("triton", "tqdm", "pytest", "hypothesis", "h5py", "PIL", "scipy", "numba"):
    try:
        info[name] = getattr(__import__(name), "__version__", "stand-in (no version)")
    except Exception as exc:
        info[name] = f"unavailable ({type(exc).__name__})"
try:
    shm = os.statvfs("/dev/shm")
    info["dev_shm_free_gib"] = round(shm.f_bavail * shm.f_frsize / 2**30, 2)  # DataLoader workers' batches
except OSError:
    info["dev_shm_free_gib"] = None
print("ENV " + json.dumps(info))
"""


#: A no-op tqdm for a Python without it: nets (trainer, epoch loop, sweep, JPEG decoding) imports tqdm, which the
#: device image need not have and nothing there can install. Written to the scratch folder and put first on the
#: steps' PYTHONPATH only when `import tqdm` fails here (same interpreter as the steps).
TQDM_STAND_IN = r'''"""No-op stand-in for tqdm, written by benchmarks/gpu_session.py: this Python has no tqdm."""
import sys


class tqdm:
    def __init__(self, iterable=None, desc=None, total=None, *args, initial=0, **kwargs):
        self.iterable, self.desc, self.total, self.n = iterable, desc, total, initial
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1

    def __len__(self):
        return self.total or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def refresh(self, *args, **kwargs):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text, file=None, end="\n", **kwargs):
        (file or sys.stdout).write(str(text) + end)


def trange(*args, **kwargs):
    return tqdm(range(*args), **kwargs)
'''


#: Runs tests/test_cuda.py where this Python has no pytest (the device image need not have it): pytest's -v lines
#: and final count line, for parse_pytest.
PYTEST_STAND_IN = r'''"""A minimal stand-in for `python -m pytest -v` on one test file, written by benchmarks/gpu_session.py because this
Python has no pytest. It knows what tests/test_cuda.py uses: module and function marks, skipif, stacked
parametrize (with ids), fixtures (plain and generator) and tmp_path; it prints pytest's per-test lines and its
final count line, and exits 1 when a test failed or errored, 5 when none was collected."""
import importlib.util
import inspect
import itertools
import shutil
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path


class Skipped(Exception):
    pass


class MarkDecorator:
    def __init__(self, name, args=(), kwargs=None):
        self.name, self.args, self.kwargs = name, args, dict(kwargs or {})

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and (inspect.isfunction(args[0]) or inspect.isclass(args[0])):
            args[0].__dict__.setdefault("pytestmark", []).append(self)
            return args[0]
        return MarkDecorator(self.name, args, kwargs)


class MarkGenerator:
    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return MarkDecorator(name)


def fixture(function=None, **kwargs):
    def mark(f):
        f._stand_in_fixture = True
        return f
    return mark(function) if function is not None else mark


def skip(reason=""):
    raise Skipped(reason)


def importorskip(name, *args, **kwargs):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise Skipped(f"could not import {name!r}") from None


def _pytest_module():
    module = types.ModuleType("pytest")
    module.mark, module.fixture, module.skip, module.importorskip = MarkGenerator(), fixture, skip, importorskip
    module.__stand_in__ = True
    return module


def _id(value, argname, index):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return str(value)
    return f"{argname}{index}"


def _cases(marks):
    """[(id, {argname: value})] from the parametrize marks (the one nearest the function first, as pytest)."""
    axes = []
    for mark in marks:
        if mark.name != "parametrize":
            continue
        names = [n.strip() for n in mark.args[0].split(",")] if isinstance(mark.args[0], str) else list(mark.args[0])
        values = list(mark.args[1])
        ids = mark.kwargs.get("ids")
        axis = []
        for i, value in enumerate(values):
            row = (value,) if len(names) == 1 else tuple(value)
            label = ids[i] if ids else "-".join(_id(v, n, i) for v, n in zip(row, names))
            axis.append((str(label), dict(zip(names, row))))
        axes.append(axis)
    cases = []
    for combo in itertools.product(*axes):
        params = {}
        for _, p in combo:
            params.update(p)
        cases.append(("-".join(label for label, _ in combo), params))
    return cases


def _skip_reason(marks):
    for mark in marks:
        if mark.name == "skipif" and mark.args and mark.args[0]:
            return mark.kwargs.get("reason", "skipif")
        if mark.name == "skip":
            return mark.kwargs.get("reason", "skip")
    return None


def _call(test, params, fixtures, scratch):
    finalizers, kwargs = [], {}
    try:
        for name in inspect.signature(test).parameters:
            if name in params:
                kwargs[name] = params[name]
            elif name == "tmp_path":
                kwargs[name] = Path(tempfile.mkdtemp(dir=scratch))
            elif name in fixtures:
                value = fixtures[name]()
                if inspect.isgenerator(value):
                    finalizers.append(value)
                    value = next(value)
                kwargs[name] = value
            else:
                raise LookupError(f"fixture {name!r} not found (stand-in runner)")
    except Exception:
        for gen in reversed(finalizers):
            gen.close()
        raise RuntimeError("setup failed:\n" + traceback.format_exc()) from None
    try:
        test(**kwargs)
    finally:
        for gen in reversed(finalizers):
            try:
                next(gen)
            except StopIteration:
                pass


def main(argv):
    paths = [a for a in argv if a.endswith(".py")]
    if len(paths) != 1:
        print("usage: runner.py TEST_FILE.py", file=sys.stderr)
        return 4
    path = Path(paths[0])
    sys.modules["pytest"] = _pytest_module()
    sys.path.insert(0, str(path.resolve().parent))
    start = time.monotonic()
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module_marks = getattr(module, "pytestmark", [])
    module_marks = list(module_marks) if isinstance(module_marks, (list, tuple)) else [module_marks]
    fixtures = {n: f for n, f in vars(module).items() if getattr(f, "_stand_in_fixture", False)}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    scratch = tempfile.mkdtemp(prefix="stand-in-pytest-")
    print(f"stand-in pytest runner (pytest is not installed): {path}", flush=True)
    try:
        for name, test in list(vars(module).items()):
            if not (name.startswith("test_") and inspect.isfunction(test)):
                continue
            marks = module_marks + list(reversed(test.__dict__.get("pytestmark", [])))
            reason = _skip_reason(marks)
            for case_id, params in _cases(test.__dict__.get("pytestmark", [])) or [("", {})]:
                node = f"{path.as_posix()}::{name}" + (f"[{case_id}]" if case_id else "")
                t0 = time.monotonic()
                if reason is not None:
                    outcome, detail = "SKIPPED", reason
                else:
                    try:
                        _call(test, params, fixtures, scratch)
                        outcome, detail = "PASSED", ""
                    except Skipped as exc:
                        outcome, detail = "SKIPPED", str(exc)
                    except AssertionError:
                        outcome, detail = "FAILED", traceback.format_exc()
                    except Exception as exc:
                        outcome = "ERROR" if str(exc).startswith("setup failed") else "FAILED"
                        detail = traceback.format_exc()
                key = {"PASSED": "passed", "FAILED": "failed", "SKIPPED": "skipped", "ERROR": "error"}[outcome]
                counts[key] += 1
                print(f"{node} {outcome} ({time.monotonic() - t0:.2f}s)", flush=True)
                if outcome in ("FAILED", "ERROR") or (outcome == "SKIPPED" and detail):
                    print(detail.rstrip(), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    parts = [f"{n} {k}" for k, n in counts.items() if n]
    print(f"========== {', '.join(parts) or 'no tests ran'} in {time.monotonic() - start:.2f}s ==========", flush=True)
    if counts["failed"] or counts["error"]:
        return 1
    return 0 if sum(counts.values()) else 5


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def stand_ins(scratch: Path) -> tuple[str | None, dict[str, str]]:
    """(folder to put first on the steps' PYTHONPATH or None, {module: what was done}) for missing modules.

    tqdm alone gets a stand-in (a no-op progress bar): without it every step that trains fails at its import.
    """
    import importlib

    try:
        importlib.import_module("tqdm")
        importlib.import_module("tqdm.auto")
        return None, {}
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
    package = scratch / "stand_ins" / "tqdm"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(TQDM_STAND_IN)
    (package / "auto.py").write_text("from . import tqdm, trange  # noqa: F401\n")
    return str(package.parent), {"tqdm": f"not importable ({reason}); a no-op stand-in is first on PYTHONPATH"}


def have_module(name: str) -> bool:
    """Whether this Python (the one every step runs) can import the module `name` (installed and not broken)."""
    import importlib

    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


class SessionInterrupted(BaseException):
    """SIGTERM reached this process: stop the current step, pack and write the summary.

    A BaseException, like KeyboardInterrupt: the handlers that keep a step going after an error (a failing
    progress report in run_logged, a failed step) catch Exception and must not swallow it.
    """


def choose_compile(mode: str, bench: dict[str, Any], runs_s: float | None = None) -> tuple[bool, str]:
    """(compile the runs?, why) from --compile on|off|auto, the bench step's figures and, when given, the seconds
    the runs step has (runs_s): compiling pays only when it saves more than AUTO_COMPILE_OVERHEAD_FACTOR times the
    compilation time the benchmark measured (bench["seconds"] of its two variants)."""
    if mode == "on":
        return True, "--compile on"
    if mode == "off":
        return False, "--compile off"
    eager, compiled = bench.get("eager"), bench.get("compile")
    if not eager or not compiled:
        return False, "auto: no compiled benchmark figure, eager"
    speedup = compiled["trainer_images_per_s"] / eager["trainer_images_per_s"]
    use = speedup >= AUTO_COMPILE_MIN_SPEEDUP
    why = f"auto: compiled trainer {speedup:.2f}x eager ({'>=' if use else '<'} {AUTO_COMPILE_MIN_SPEEDUP:.2f})"
    seconds = bench.get("seconds", {})
    if use and runs_s is not None and "eager" in seconds and "compile" in seconds:
        overhead = max(0.0, seconds["compile"] - seconds["eager"])
        saved = runs_s * (1.0 - 1.0 / speedup)
        use = saved >= AUTO_COMPILE_OVERHEAD_FACTOR * overhead
        why += (f"; compiling took about {overhead:.0f} s in the benchmark, the {runs_s:.0f} s of runs would save "
                f"about {saved:.0f} s ({'>=' if use else '<'} {AUTO_COMPILE_OVERHEAD_FACTOR:g} x {overhead:.0f} s)")
    return use, why


def check_budget_s(value: float) -> float:
    """--budget-s: a finite number of seconds > 0 (ValueError otherwise)."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"--budget-s must be a finite number of seconds > 0; got {value}")
    return value


def out_directory(text: str) -> Path:
    """--out's argparse type: a directory that exists or can be created, checked before the session starts."""
    try:
        return check_writable(Path(text), directory=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--npz", default="data/cifar10-jpeg.npz", help="the JPEG CIFAR-10 (default data/cifar10-jpeg.npz)")
    p.add_argument("--data", default=None, help="train on this instead of --npz (anything nets.train --data takes)")
    p.add_argument("--out", required=True, type=out_directory, help="where the summary, logs and runs.tar go ($OUT)")
    p.add_argument("--budget-s", type=checked_type(float, check_budget_s, "a finite number of seconds > 0"),
                   default=540.0, help="wall-clock seconds for the whole session")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--model", default="preresnet20")
    p.add_argument("--p", nargs="+", type=float, default=[1.0, 0.9], help="Bernoulli survival probabilities")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per p (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the recipe's 164)")
    p.add_argument("--parallel", type=int, default=2, help="training processes at once (default 2)")
    p.add_argument("--compile", default="auto", choices=("on", "off", "auto"),
                   help=f"torch.compile the runs; auto: when the bench measured it >= {AUTO_COMPILE_MIN_SPEEDUP}x "
                        "faster")
    p.add_argument("--runs-dir", type=Path, default=Path("results/table1"),
                   help="sweep directory (default results/table1)")
    p.add_argument("--bench-workers", type=int, default=8, help="reference-loop DataLoader workers (default 8)")
    p.add_argument("--smoke", action="store_true", help="CPU-sized: data synthetic:512:256, preresnet8, 2 epochs, "
                                                        "tiny eager-only bench")
    return p


def check_args(args) -> list[str]:
    """Validate; returns the selected steps in session order. ValueError names the argument."""
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if not steps or unknown:
        raise ValueError(f"--steps must be a comma-separated subset of {','.join(STEPS)}; got {args.steps!r}")
    check_budget_s(args.budget_s)
    if any(not 0 < p <= 1 for p in args.p) or len(set(args.p)) != len(args.p):
        raise ValueError(f"--p must be distinct survival probabilities in (0, 1]; got {args.p}")
    for name in ("seeds", "parallel"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1; got {getattr(args, name)}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1; got {args.epochs}")
    if args.bench_workers < 0:
        raise ValueError(f"--bench-workers must be >= 0; got {args.bench_workers}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a directory")
    return [s for s in STEPS if s in steps]


def check_data_present(args, steps: list[str]) -> None:
    """ValueError unless the runs step's npz is there: checked at the start, not after the tests and the benchmark
    have spent most of the call (the npz is git-ignored: a device call has it only when its carry names it)."""
    if "runs" in steps and not args.smoke and args.data is None and not Path(args.npz).is_file():
        raise ValueError(f"--npz {args.npz} is not a file; copy it into the checkout and name it in the call's carry")


class Session:
    """The session's state, its summary files and its steps."""

    def __init__(self, args, steps: list[str]) -> None:
        self.args = args
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget_s
        self.reserve_s = min(20.0, 0.1 * args.budget_s) if "runs" in steps else 0.0  # to stop and pack
        self.step_deadline = self.deadline
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu_session-"))
        self.data = args.data or ("synthetic:512:256" if args.smoke else args.npz)
        self.model = "preresnet8" if args.smoke and args.model == "preresnet20" else args.model
        self.epochs = args.epochs or (2 if args.smoke else None)
        stand_in_path, self.stand_ins = stand_ins(self.scratch)
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [stand_in_path, str(REPO),
                                                                            os.environ.get("PYTHONPATH")])),
                        PYTHONUNBUFFERED="1")
        self.summary: dict[str, Any] = {
            "tool": "gpu_session", "started": utc_now(), "argv": sys.argv[1:], "budget_s": args.budget_s,
            "smoke": bool(args.smoke), "complete": False,
            "steps": {s: {"status": "pending" if s in steps else "not selected"} for s in STEPS}}
        if self.stand_ins:
            self.summary["stand_ins"] = self.stand_ins
            print(f"stand-ins: {self.stand_ins}", flush=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cap(self, step: str) -> float:
        """Seconds a step may take: its own cap, within the budget less the reserve for stopping and packing."""
        return max(0.0, min(CAPS_S.get(step, float("inf")), self.left() - self.reserve_s))

    def step_left(self) -> float:
        """Seconds left to the current step."""
        return max(0.0, self.step_deadline - time.monotonic())

    # ------------------------------------------------------------ summary files

    def write_summary(self) -> None:
        self.summary["updated"] = utc_now()
        self.summary["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        with atomic_output(self.out / "summary.json") as tmp, open(tmp, "w") as fh:
            json.dump(self.summary, fh, indent=1, default=str)
            fh.write("\n")
        with atomic_output(self.out / "summary.md") as tmp, open(tmp, "w") as fh:
            fh.write(render_markdown(self.summary))

    def step(self, name: str, body: Callable[[dict], None]) -> None:
        """Run one step: status running -> ok / failed / stopped (its cap) / skipped (no time left)."""
        record = self.summary["steps"][name]
        cap = self.cap(name)
        record.update(cap_s=round(cap, 1), log=f"{name}.log")
        self.step_deadline = time.monotonic() + cap
        if cap < 5:
            record["status"] = "skipped: no time left in the budget"
            self.write_summary()
            return
        record["status"] = "running"
        print(f"[{name}] started, cap {cap:.0f} s", flush=True)
        self.write_summary()
        start = time.monotonic()
        try:
            body(record)
            if record["status"] == "running":
                record["status"] = "ok"
        except SessionInterrupted:
            record["status"] = "interrupted (SIGTERM)"
            raise
        except Exception as exc:  # a failed step must not stop the session
            record["status"] = "failed"
            record["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            record["seconds"] = round(time.monotonic() - start, 1)
            print(f"[{name}] {record['status']} after {record['seconds']:.0f} s", flush=True)
            self.write_summary()

    # ------------------------------------------------------------ steps

    def env_step(self, record: dict) -> None:
        log = self.out / "env.log"
        done = run_logged([sys.executable, "-c", ENV_SCRIPT], log, self.step_left(), cwd=REPO, env=self.env)
        lines = [line for line in log.read_text().splitlines() if line.startswith("ENV ")]
        if lines:
            self.summary["env"] = json.loads(lines[-1][4:])
        if shutil.which("nvidia-smi"):
            run_logged(["nvidia-smi"], log, min(20.0, self.step_left()), env=self.env)
            query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,memory.used",
                                    "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            self.summary.setdefault("env", {})["nvidia_smi"] = query.stdout.strip() or query.stderr.strip()
        else:
            with open(log, "a") as fh:
                fh.write("# nvidia-smi: not on PATH\n")
            self.summary.setdefault("env", {})["nvidia_smi"] = "not on PATH"
        if done.returncode != 0 or not lines:
            record["status"] = "failed"
            record["error"] = f"environment probe exited with {done.returncode}; see env.log"

    def tests_step(self, record: dict) -> None:
        log = self.out / "tests.log"
        if have_module("pytest"):
            cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-v", "-rA", "-p", "no:cacheprovider", "--durations=0",
                   str(REPO / "tests" / "test_cuda.py")]  # --durations: each test's seconds, to size later sessions
        else:  # the device image need not have pytest, and nothing can be installed there
            runner = self.scratch / "stand_in_pytest.py"
            runner.write_text(PYTEST_STAND_IN)
            cmd = [sys.executable, str(runner), str(Path("tests") / "test_cuda.py")]
            record["runner"] = "stand-in (pytest is not installed in this Python)"
        done = run_logged(cmd, log, self.step_left(), cwd=REPO, env=self.env, tick=self.write_summary)
        counts = parse_pytest(log.read_text())
        self.summary["tests"] = counts
        if done.stopped:
            record["status"] = "stopped at its cap (counts are of the tests that ended)"
        elif done.returncode not in (0, 5) or counts["failed"] or counts["errors"]:
            record["status"] = "failed"
            record["error"] = (f"pytest exited with {done.returncode}: {counts['failed']} failed, "
                               f"{counts['errors']} errors")

    def bench_step(self, record: dict) -> None:
        log = self.out / "bench.log"
        bench = self.summary.setdefault("bench", {})
        # the noisiest run's network (its masks add a few kernels per block): the projection is that run's
        base = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--model", self.model,
                "--p", repr(min(self.args.p))]
        if self.args.smoke:
            base += ["--images", "128", "--batch-size", "64", "--repeats", "1", "--workers", "0", "--threads", "1"]
        else:
            # a whole number of batches of 128: a ragged last batch makes torch.compile compile a second graph
            base += ["--images", "25088", "--workers", str(self.args.bench_workers)]
        # the eager pass takes about a third of the cap; compilation needs the rest
        variants = [("eager", [], 0.4)]
        if not self.args.smoke and (shutil.which("cc") or shutil.which("gcc")):
            variants.append(("compile", ["--compile"], 1.0))
        elif not self.args.smoke:  # it would fail after minutes of tracing: say why instead
            bench["compile_skipped"] = "no C compiler (cc or gcc) on PATH; triton builds its CUDA launcher with one"
        failures = []
        for key, extra, share in variants:
            path = self.scratch / f"bench-{key}.json"
            cap = min(self.step_left(), share * CAPS_S["bench"])
            if cap < 5:
                failures.append(f"{key}: no time left")
                continue
            done = run_logged(base + extra + ["--json", str(path)], log, cap, cwd=REPO, env=self.env,
                              tick=self.write_summary)
            bench.setdefault("seconds", {})[key] = round(done.seconds, 1)
            if path.is_file():
                bench[key] = json.loads(path.read_text())
            else:
                failures.append(f"{key}: exit {done.returncode}{' (stopped at cap)' if done.stopped else ''}")
            self.write_summary()
        if "eager" in bench and "compile" in bench:
            bench["compile_speedup"] = bench["compile"]["trainer_images_per_s"] / bench["eager"]["trainer_images_per_s"]
        if failures:
            record["status"] = "failed"
            record["error"] = "; ".join(failures) + " (see bench.log)"

    def planned_runs(self) -> list[str]:
        from nets.sweep import SweepConfig, expand

        config = SweepConfig(models=(self.model,), data=self.data, out=self.args.runs_dir, p=tuple(self.args.p),
                             seeds=self.args.seeds, epochs=(self.epochs,))
        return [run.name for run in expand(config)]

    def refresh_runs(self, names: list[str]) -> None:
        from nets.trainer import TrainConfig

        epochs = self.epochs or TrainConfig().epochs
        self.summary["runs"] = run_progress(self.args.runs_dir, names, epochs)

    def pack(self, names: list[str]) -> None:
        self.summary["runs_tar"] = pack_runs(self.args.runs_dir, self.out / "runs.tar", names)

    def runs_step(self, record: dict) -> None:
        log = self.out / "runs.log"
        names = self.planned_runs()
        compile_runs, why = choose_compile(self.args.compile, self.summary.get("bench", {}), runs_s=self.step_left())
        record.update(compile=compile_runs, compile_reason=why, data=self.data, runs_dir=str(self.args.runs_dir))
        # The npz goes to the sweep as it is, decoded by the sweep's data check and by each trainer (~10 s of CPU
        # each), not converted once to HDF5: an .h5 has the npz's fingerprints (Dataset.fingerprint hashes the
        # arrays, not the file), but nets.sweep names and hashes a run by the data's file name, so
        # cifar10-jpeg.h5 would rename every run and a later session, or a sweep with the npz, would not resume
        # them. The bench and tests steps never read it (synthetic data).
        cmd = [sys.executable, "-m", "nets.sweep", "--models", self.model, "--p", *[repr(p) for p in self.args.p],
               "--seeds", str(self.args.seeds), "--data", self.data, "--out", str(self.args.runs_dir),
               "--parallel", str(self.args.parallel), "--no-progress"]
        if self.epochs is not None:
            cmd += ["--epochs", str(self.epochs)]
        if compile_runs:
            cmd.append("--compile")
        self.refresh_runs(names)
        last_pack = [time.monotonic()]

        def tick() -> None:
            self.refresh_runs(names)
            if time.monotonic() - last_pack[0] >= PACK_EVERY_S:
                self.pack(names)
                last_pack[0] = time.monotonic()
            self.write_summary()

        try:
            done = run_logged(cmd, log, self.step_left(), cwd=Path.cwd(), env=self.env, tick=tick)
        finally:
            self.refresh_runs(names)
            append_run_logs(self.args.runs_dir, names, log)
            self.pack(names)
        finished = sum(1 for r in self.summary["runs"] if r["finished"])
        record["runs_finished"] = f"{finished}/{len(names)}"
        if done.stopped:
            record["status"] = (f"stopped at the budget ({finished}/{len(names)} finished); the next call "
                                "resumes from the checkpoints")
        elif done.returncode != 0:
            record["status"] = "failed"
            record["error"] = f"nets.sweep exited with {done.returncode}; see runs.log"

    def run(self, steps: list[str]) -> None:
        bodies = {"env": self.env_step, "tests": self.tests_step, "bench": self.bench_step, "runs": self.runs_step}
        self.write_summary()
        try:
            for name in steps:
                self.step(name, bodies[name])
        except SessionInterrupted:
            self.summary["interrupted"] = "SIGTERM"
        finally:
            self.summary["complete"] = True
            self.write_summary()
            shutil.rmtree(self.scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        steps = check_args(args)
        check_data_present(args, steps)
    except ValueError as exc:
        fail(PROG, str(exc))

    def on_sigterm(signum, frame):
        raise SessionInterrupted()

    signal.signal(signal.SIGTERM, on_sigterm)
    session = Session(args, steps)
    session.run(steps)
    print(f"summary: {args.out / 'summary.md'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
