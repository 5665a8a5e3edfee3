"""benchmarks/gpu_session.py (and its session_io.py) on the CPU: --smoke end to end, the limits on OUT, resuming
from runs.tar, its parts."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "benchmarks" / "gpu_session.py"
NAME = re.compile(r"^[A-Za-z0-9._-]+$")
RUN_FILES = {"metrics.h5", "config.json", "checkpoint.pt"}

_spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
gpu_session = importlib.util.module_from_spec(_spec)
sys.modules["gpu_session"] = gpu_session  # dataclasses look their module up there
_spec.loader.exec_module(gpu_session)

#: tests in tests/test_cuda.py, parametrizations counted (pytest -m cuda --collect-only says 22)
CUDA_TESTS = 22


def session(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def in_process_session(args, steps: list[str]):
    """A Session driven step by step in this process; on leaving, run([]) writes its summary and removes its
    scratch folder (Session makes it at once; only run() removes it)."""
    opened = gpu_session.Session(args, steps)
    try:
        yield opened
    finally:
        opened.run([])


def check_out_limits(out: Path) -> None:
    """What the device tool returns: at most 8 files, each <= 16 MiB, plain names, here no folders at all."""
    entries = list(out.iterdir())
    assert len(entries) <= 8, sorted(p.name for p in entries)
    for path in entries:
        assert path.is_file() and NAME.match(path.name), path.name
        assert path.stat().st_size <= 16 * 2**20


def test_smoke_session_then_a_second_call_from_runs_tar(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    proc = session(first, "--smoke", "--data", "synthetic:256:64", "--out", "out", "--budget-s", "200")
    assert proc.returncode == 0, proc.stderr
    out = first / "out"
    check_out_limits(out)
    assert {p.name for p in out.iterdir()} == {"summary.md", "summary.json", "env.log", "tests.log", "bench.log",
                                               "runs.log", "runs.tar"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["smoke"]
    assert {name: r["status"] for name, r in summary["steps"].items()} == dict.fromkeys(gpu_session.STEPS, "ok")
    assert summary["env"]["torch"] and summary["env"]["cuda_available"] == __import__("torch").cuda.is_available()
    tests = summary["tests"]
    assert tests["complete"] and tests["failed"] == 0 and tests["errors"] == 0
    assert tests["passed"] + tests["skipped"] == CUDA_TESTS  # every test of tests/test_cuda.py ran or was skipped
    eager = summary["bench"]["eager"]
    assert eager["model"] == "preresnet8" and eager["trainer_images_per_s"] > 0
    assert eager["ratio"] == pytest.approx(eager["trainer_images_per_s"] / eager["reference_images_per_s"])
    runs = summary["runs"]
    assert len(runs) == 2 and all(r["finished"] and r["epochs_completed"] == 2 == r["epochs"] for r in runs)
    assert {r["name"].split("-")[2] for r in runs} == {"p1", "p0.9"}
    assert summary["steps"]["runs"]["compile"] is False  # auto without a compiled benchmark: eager
    md = (out / "summary.md").read_text()
    assert "| runs | ok |" in md and all(r["name"] in md for r in runs)

    with tarfile.open(out / "runs.tar") as tar:
        members = tar.getnames()
        assert all(m.isfile() for m in tar.getmembers())
    expected = {f"results/table1/{r['name']}/{f}" for r in runs for f in RUN_FILES}
    assert set(members) == expected and len(members) == 6  # nothing else: no logs, no sweep.json
    assert summary["runs_tar"]["checkpoints_included"] and sorted(summary["runs_tar"]["members"]) == sorted(members)

    # the next call extracts runs.tar in a fresh checkout: the finished runs are skipped, not retrained
    with tarfile.open(out / "runs.tar") as tar:
        tar.extractall(second, filter="data")
    start = time.monotonic()
    proc = session(second, "--smoke", "--data", "synthetic:256:64", "--steps", "runs", "--out", "out",
                   "--budget-s", "120")
    assert proc.returncode == 0, proc.stderr
    check_out_limits(second / "out")
    again = json.loads((second / "out" / "summary.json").read_text())
    assert again["steps"]["runs"]["status"] == "ok" and again["steps"]["env"]["status"] == "not selected"
    assert [(r["name"], r["epochs_completed"], r["finished"]) for r in again["runs"]] == \
        [(r["name"], 2, True) for r in runs]
    assert "2 runs: 2 already finished, 0 trained, 0 failed" in (second / "out" / "runs.log").read_text()
    assert time.monotonic() - start < 60
    with tarfile.open(second / "out" / "runs.tar") as tar:
        assert set(tar.getnames()) == expected


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_run_logged_stops_the_whole_process_group_at_its_cap(tmp_path):
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "open(sys.argv[1], 'w').write(str(child.pid)); print('started', flush=True); time.sleep(120)")
    ticks = []
    start = time.monotonic()
    done = gpu_session.run_logged([sys.executable, "-c", code, str(pid_file)], tmp_path / "x.log", cap_s=3.0,
                                  tick=lambda: ticks.append(1), tick_s=0.5)
    assert done.stopped and done.returncode == -signal.SIGTERM
    assert 3.0 <= done.seconds < 15 and time.monotonic() - start < 20
    assert ticks  # the summary callback ran while the step ran
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the grandchild survived the stop"
    log = (tmp_path / "x.log").read_text()
    assert log.startswith("$ ") and "started" in log and "stopped at its time cap" in log


def test_parse_pytest_counts_complete_and_cut_short():
    full = ("tests/test_cuda.py::test_a PASSED [ 33%]\ntests/test_cuda.py::test_b[x] FAILED [ 66%]\n"
            "tests/test_cuda.py::test_c SKIPPED (needs a CUDA device) [100%]\n"
            "=========== 1 failed, 1 passed, 1 skipped, 3 deselected in 12.34s ===========\n")
    counts = gpu_session.parse_pytest(full)
    assert (counts["passed"], counts["failed"], counts["skipped"], counts["errors"]) == (1, 1, 1, 0)
    assert counts["complete"] and counts["failed_tests"] == ["tests/test_cuda.py::test_b[x]"]
    cut = "\n".join(full.splitlines()[:2])  # killed at the cap: no final line
    counts = gpu_session.parse_pytest(cut)
    assert (counts["passed"], counts["failed"], counts["complete"]) == (1, 1, False)
    errors = gpu_session.parse_pytest("==== 2 passed, 1 error in 3.0s ====\n")
    assert (errors["passed"], errors["errors"]) == (2, 1)


def test_choose_compile_follows_the_measurement_in_auto_mode():
    def bench(eager, compiled):
        return {"eager": {"trainer_images_per_s": eager}, "compile": {"trainer_images_per_s": compiled}}

    assert gpu_session.choose_compile("auto", bench(1000.0, 1500.0))[0] is True
    assert gpu_session.choose_compile("auto", bench(1000.0, 1050.0))[0] is False  # within the 10% margin
    assert gpu_session.choose_compile("auto", bench(1000.0, 800.0))[0] is False
    assert gpu_session.choose_compile("auto", {"eager": {"trainer_images_per_s": 1.0}}) == \
        (False, "auto: no compiled benchmark figure, eager")
    assert gpu_session.choose_compile("on", {})[0] is True
    assert gpu_session.choose_compile("off", bench(1.0, 9.0))[0] is False


def test_pack_runs_takes_the_three_files_and_drops_checkpoints_when_too_big(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "results" / "table1"
    for name in ("a-s0", "b-s0"):
        (runs / name).mkdir(parents=True)
        for f in ("metrics.h5", "config.json"):
            (runs / name / f).write_bytes(b"x" * 10)
        (runs / name / "checkpoint.pt").write_bytes(b"c" * 50_000)
        (runs / name / ".checkpoint-abc.pt.tmp").write_bytes(b"half")
    (runs / "logs").mkdir()
    (runs / "logs" / "a-s0.log").write_text("log")
    (runs / "sweep.json").write_text("{}")
    out = tmp_path / "out"
    info = gpu_session.pack_runs(Path("results/table1"), out / "runs.tar", ["a-s0", "b-s0"])
    with tarfile.open(out / "runs.tar") as tar:
        assert sorted(tar.getnames()) == sorted(f"results/table1/{n}/{f}" for n in ("a-s0", "b-s0") for f in RUN_FILES)
    assert info["checkpoints_included"] and info["runs"] == ["a-s0", "b-s0"]
    assert [p.name for p in out.iterdir()] == ["runs.tar"]
    monkeypatch.setattr(sys.modules["session_io"], "MAX_OUT_FILE_BYTES", 20_000)  # one checkpoint alone is bigger
    info = gpu_session.pack_runs(Path("results/table1"), out / "runs.tar", ["a-s0"])
    with tarfile.open(out / "runs.tar") as tar:
        assert sorted(tar.getnames()) == ["results/table1/a-s0/config.json", "results/table1/a-s0/metrics.h5"]
    assert not info["checkpoints_included"] and [p.name for p in out.iterdir()] == ["runs.tar"]


def test_a_failing_progress_report_does_not_stop_the_step(tmp_path):
    def tick():
        raise RuntimeError("summary could not be written")

    done = gpu_session.run_logged([sys.executable, "-c", "import time; time.sleep(1.5); print('work done')"],
                                  tmp_path / "x.log", cap_s=60.0, tick=tick, tick_s=0.2)
    assert done.returncode == 0 and not done.stopped
    log = (tmp_path / "x.log").read_text()
    assert "work done" in log and "progress report failed, work goes on: RuntimeError" in log


def test_pack_runs_is_not_torn_by_a_checkpoint_replaced_while_packing(tmp_path, monkeypatch):
    """The trainer os.replaces checkpoint.pt every epoch; one replaced between sizing and reading must
    still reach the tar whole (the old version or the new one, never a truncated mix)."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "results" / "table1" / "a-s0"
    run.mkdir(parents=True)
    old, new = b"old-checkpoint" * 1000, b"new-checkpoint, one epoch later" * 2000
    (run / "checkpoint.pt").write_bytes(old)
    real = tarfile.TarFile.gettarinfo

    def gettarinfo_then_replace(self, name=None, arcname=None, fileobj=None):
        info = real(self, name, arcname, fileobj)
        if str(arcname or name).endswith("checkpoint.pt"):  # the trainer's atomic save lands right now
            (run / "ckpt.tmp").write_bytes(new)
            os.replace(run / "ckpt.tmp", run / "checkpoint.pt")
        return info

    monkeypatch.setattr(tarfile.TarFile, "gettarinfo", gettarinfo_then_replace)
    gpu_session.pack_runs(Path("results/table1"), tmp_path / "out" / "runs.tar", ["a-s0"])
    with tarfile.open(tmp_path / "out" / "runs.tar") as tar:
        packed = tar.extractfile("results/table1/a-s0/checkpoint.pt").read()
    assert packed in (old, new)


@pytest.mark.parametrize("args, word", [
    (["--steps", "env,train"], "--steps"),
    (["--p", "1.5"], "--p"),
    (["--p", "0.9", "0.9"], "--p"),
    (["--budget-s", "0"], "--budget-s"),
    (["--compile", "maybe"], "--compile"),
    (["--epochs", "0"], "--epochs"),
    (["--parallel", "0"], "--parallel"),
    (["--npz", "data/none.npz"], "--npz data/none.npz is not a file"),  # was found only at the runs step
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, word):
    proc = session(tmp_path, "--out", "out", *args, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--out", "/proc/gs"], "argument --out: '/proc/gs': cannot create files in '/proc'"),
    (["--out", "afile/sub"], "argument --out: 'afile/sub': "),
    (["--out", "afile"], "argument --out: 'afile' exists and is not a directory"),
    (["--out", "out", "--budget-s", "inf"], "argument --budget-s: must be a finite number of seconds > 0; got 'inf'"),
    (["--out", "out", "--budget-s", "nan"], "argument --budget-s: must be a finite number of seconds > 0; got 'nan'"),
])
def test_unusable_out_and_infinite_budget_are_refused_at_parse_time(tmp_path, args, message):
    """Were a FileNotFoundError / NotADirectoryError traceback from Session.__init__, and a session without end."""
    (tmp_path / "afile").write_text("")
    proc = session(tmp_path, "--steps", "env", *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"benchmarks/gpu_session.py: error: {message}")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_check_writable_probes_without_creating(tmp_path):
    target = tmp_path / "a" / "b"
    assert gpu_session.check_writable(target, directory=True) == target
    assert gpu_session.check_writable(tmp_path / "a" / "x.json", directory=False) == tmp_path / "a" / "x.json"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="is a directory"):
        gpu_session.check_writable(tmp_path, directory=False)


def test_runs_are_stopped_at_the_budget_and_packed(tmp_path):
    # 200 epochs cannot finish in 15 s: the sweep is stopped (SIGTERM to its process group) and packed
    proc = session(tmp_path, "--smoke", "--data", "synthetic:256:64", "--steps", "runs", "--epochs", "200",
                   "--out", "out", "--budget-s", "15", timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    check_out_limits(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["elapsed_s"] < 15 + 25
    assert summary["steps"]["runs"]["status"].startswith("stopped at the budget (0/2 finished)")
    runs = summary["runs"]
    assert all(not r["finished"] and r["epochs_completed"] < 200 for r in runs)
    with tarfile.open(out / "runs.tar") as tar:
        names = tar.getnames()
    assert all(n.split("/")[:2] == ["results", "table1"] and n.split("/")[3] in RUN_FILES for n in names)
    for r in runs:  # a run with a completed epoch travels with its checkpoint, so the next call resumes it
        if r["epochs_completed"]:
            assert f"results/table1/{r['name']}/checkpoint.pt" in names
    run_dirs = [tmp_path / "results" / "table1" / r["name"] for r in runs]
    before = {p: p.stat().st_mtime_ns for d in run_dirs if d.is_dir() for p in d.iterdir()}
    time.sleep(2.5)  # a surviving trainer would write its next epoch (about 1 s each here)
    assert {p: p.stat().st_mtime_ns for d in run_dirs if d.is_dir() for p in d.iterdir()} == before


def test_a_python_without_tqdm_trains_with_the_stand_in(tmp_path, monkeypatch):
    # the device image need not have tqdm, which nets imports in every training step; nothing can be installed
    # there, so the session puts a no-op stand-in first on its steps' PYTHONPATH
    blocker = tmp_path / "blocker" / "tqdm"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no tqdm in this image')\n")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # here too: import tqdm raises ImportError
    monkeypatch.delitem(sys.modules, "tqdm.auto", raising=False)
    path, done = gpu_session.stand_ins(tmp_path / "scratch")
    assert path is not None and set(done) == {"tqdm"}
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(blocker.parent), str(REPO_ROOT)]))
    cmd = [sys.executable, "-m", "nets.train", "--model", "preresnet8", "--data", "synthetic:64:32", "--epochs", "1",
           "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path / "run")]
    without = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert without.returncode != 0 and "tqdm" in without.stderr  # what every training step did before
    env["PYTHONPATH"] = os.pathsep.join([path, env["PYTHONPATH"]])
    with_stand_in = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert with_stand_in.returncode == 0, with_stand_in.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.h5").is_file()
    check = "from tqdm.auto import tqdm; b = tqdm(total=2); b.update(); b.set_postfix(a=1); b.close(); tqdm.write('ok')"
    assert subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True).stdout == "ok\n"


def test_a_python_with_tqdm_gets_no_stand_in(tmp_path):
    pytest.importorskip("tqdm")
    assert gpu_session.stand_ins(tmp_path) == (None, {})
    assert not (tmp_path / "stand_ins").exists()


def test_auto_compile_weighs_the_compilation_time_against_the_runs_time():
    # a 1.5x faster compiled trainer whose compilation took 80 s in the benchmark: in a runs step of 200 s it saves
    # about 67 s, less than the compilations of two trainer processes cost; over 3000 s it pays
    bench = {"eager": {"trainer_images_per_s": 1000.0}, "compile": {"trainer_images_per_s": 1500.0},
             "seconds": {"eager": 30.0, "compile": 110.0}}
    use, why = gpu_session.choose_compile("auto", bench, runs_s=200.0)
    assert use is False and "80 s" in why, why
    assert gpu_session.choose_compile("auto", bench, runs_s=3000.0)[0] is True
    assert gpu_session.choose_compile("auto", {**bench, "seconds": {"eager": 30.0, "compile": 35.0}}, runs_s=200.0)[0]
    assert gpu_session.choose_compile("on", bench, runs_s=1.0)[0] is True


def test_a_python_without_pytest_runs_the_cuda_tests_with_the_stand_in(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_session, "have_module", lambda name: name != "pytest")
    args = gpu_session.build_parser().parse_args(["--smoke", "--out", str(tmp_path / "out"), "--steps", "tests"])
    with in_process_session(args, ["tests"]) as opened:
        opened.step("tests", opened.tests_step)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    record, tests = summary["steps"]["tests"], summary["tests"]
    assert record["status"] == "ok" and record["runner"].startswith("stand-in"), record
    cuda = __import__("torch").cuda.is_available()
    assert tests["complete"] and tests["passed" if cuda else "skipped"] == CUDA_TESTS and not tests["failed"], tests
    assert "tests/test_cuda.py::test_branch_multiplier_of_the_network_on_cuda[bernoulli-0.9-fp32]" in \
        (tmp_path / "out" / "tests.log").read_text()


STAND_IN_CASES = """
import pytest

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(False, reason="never")]
EVENTS = []


@pytest.fixture
def resource():
    EVENTS.append("setup")
    yield 7
    EVENTS.append("teardown")


@pytest.fixture
def broken():
    raise OSError("no device")


@pytest.mark.parametrize("b", [1, 2], ids=["one", "two"])
@pytest.mark.parametrize("a, c", [(0, "x"), (5, "y")])
def test_grid(a, c, b, resource, tmp_path):
    assert resource == 7 and tmp_path.is_dir() and not any(tmp_path.iterdir())
    assert a + b < 7


@pytest.mark.skipif(True, reason="not here")
def test_skipped():
    raise AssertionError


def test_uses_a_broken_fixture(broken):
    pass


def test_teardown_ran():
    assert EVENTS == ["setup", "teardown"] * 4
"""


def test_the_pytest_stand_in_reports_as_pytest_does(tmp_path):
    (tmp_path / "test_cases.py").write_text(STAND_IN_CASES)
    runner = tmp_path / "runner.py"
    runner.write_text(gpu_session.PYTEST_STAND_IN)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, str(runner), "test_cases.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    counts = gpu_session.parse_pytest(proc.stdout)
    assert counts["complete"] and (counts["passed"], counts["failed"], counts["skipped"], counts["errors"]) == (4, 1, 1, 1)
    assert counts["failed_tests"] == ["test_cases.py::test_grid[5-y-two]", "test_cases.py::test_uses_a_broken_fixture"]
    assert "test_cases.py::test_grid[0-x-one] PASSED" in proc.stdout and "OSError: no device" in proc.stdout


def test_the_cold_compile_is_the_last_cuda_test():
    # pytest runs tests/test_cuda.py in file order and the tests step stops it at its cap: the slowest test (a cold
    # torch.compile on a fresh machine) must be the one cut, not the kill-and-resume test
    import ast

    tree = ast.parse((REPO_ROOT / "tests" / "test_cuda.py").read_text())
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    assert names[-1] == "test_compiled_training_epoch_on_cuda", names
    assert names.index("test_cuda_run_killed_after_first_checkpoint_resumes_and_finishes") < len(names) - 1


def test_sigterm_during_a_progress_report_stops_the_step(tmp_path):
    # SIGTERM raises SessionInterrupted wherever the session is; while a step's tick (summary, runs.tar) runs, the
    # guard that keeps a step going after a failed report must not swallow it
    def tick():
        raise gpu_session.SessionInterrupted()

    start = time.monotonic()
    with pytest.raises(gpu_session.SessionInterrupted):
        gpu_session.run_logged([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "x.log", cap_s=50.0,
                               tick=tick, tick_s=0.3)
    assert time.monotonic() - start < 30
    assert "progress report failed" not in (tmp_path / "x.log").read_text()


def test_have_module_says_no_for_a_missing_or_broken_module(tmp_path, monkeypatch):
    (tmp_path / "broken_for_gpu_session.py").write_text("raise ImportError('half installed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gpu_session.have_module("json")
    assert not gpu_session.have_module("no_such_module_for_gpu_session")
    assert not gpu_session.have_module("broken_for_gpu_session")  # found by find_spec, yet not importable


def write_jpeg_npz(path: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """A small npz in the JPEG CIFAR-10 format (classes; {split}_bytes, _offsets, _labels) of random 32x32 JPEGs."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = {"classes": np.array([f"class{k}" for k in range(10)])}
    for split, n in (("train", n_train), ("test", n_test)):
        blobs, offsets = [], [0]
        for _ in range(n):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
            blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
            offsets.append(offsets[-1] + blobs[-1].size)
        arrays[f"{split}_bytes"] = np.concatenate(blobs)
        arrays[f"{split}_offsets"] = np.array(offsets, np.int64)
        arrays[f"{split}_labels"] = rng.integers(0, 10, n).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def test_an_h5_of_the_npz_keeps_its_fingerprints_but_renames_the_runs(tmp_path):
    """Why the runs step does not convert the npz to HDF5 once: the runs' names would change (the sweep names
    runs by the data's file name), so neither a later session nor a sweep given the npz would resume them. Should
    nets.sweep come to name an h5 converted from X.npz like X.npz, the runs step can switch to one conversion."""
    from nets.data import load_dataset
    from nets.data.convert import convert

    npz = write_jpeg_npz(tmp_path / "data" / "cifar10-jpeg.npz")
    h5 = tmp_path / "work" / "cifar10-jpeg.h5"
    convert(npz, h5)
    assert load_dataset(str(npz)).fingerprints() == load_dataset(str(h5)).fingerprints()  # what the trainer records
    names = {}
    for data in (npz, h5):
        args = gpu_session.build_parser().parse_args(["--data", str(data), "--out", str(tmp_path / f"out-{data.suffix}")])
        with in_process_session(args, ["runs"]) as opened:
            names[data.suffix] = opened.planned_runs()
    assert len(names[".npz"]) == 2 and not set(names[".npz"]) & set(names[".h5"])


def test_the_runs_step_gives_the_sweep_the_npz_itself(tmp_path, monkeypatch):
    npz = write_jpeg_npz(tmp_path / "data" / "cifar10-jpeg.npz")
    commands = []

    def fake_run_logged(cmd, log_path, cap_s, **kwargs):
        commands.append(cmd)
        return sys.modules["session_io"].Finished(returncode=0, seconds=0.1, stopped=False)

    monkeypatch.setattr(gpu_session, "run_logged", fake_run_logged)
    monkeypatch.chdir(tmp_path)
    args = gpu_session.build_parser().parse_args(["--npz", "data/cifar10-jpeg.npz", "--out", "out", "--steps", "runs"])
    with in_process_session(args, ["runs"]) as opened:
        opened.step("runs", opened.runs_step)
    (cmd,) = commands
    assert cmd[cmd.index("--data") + 1] == "data/cifar10-jpeg.npz" and cmd[1:3] == ["-m", "nets.sweep"]
    assert not list(tmp_path.rglob("*.h5"))  # nothing converted
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"]["runs"]["data"] == "data/cifar10-jpeg.npz"
