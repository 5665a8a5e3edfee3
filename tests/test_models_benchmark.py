"""The model benchmark CLI: a real timing on a tiny model, one-line errors with exit status 2."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nets.models.benchmark import format_table, main, time_training_step

ROOT = Path(__file__).resolve().parents[1]


def test_timing_of_a_tiny_model():
    timing = time_training_step("mlp_resnet", batch=8, repeats=2)
    assert timing.parameters == (2 * 4 + 4) + 10 * 2 * (4 * 4 + 4) + (4 * 2 + 2)  # opening, 10 blocks, fc
    assert timing.plain_ms > 0 and timing.noisy_ms > 0
    assert "| mlp_resnet |" in format_table([timing], 8, 1)


@pytest.mark.parametrize("argv", [["--models", "resnet18"], ["--batch", "0", "--models", "mlp_resnet"],
                                  ["--repeats", "x"]])
def test_bad_arguments_give_one_line_and_status_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def _run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nets.models.benchmark", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal of CUDA where torch has none")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_is_one_line_and_status_2(device):
    """Was an AssertionError traceback ("Torch not compiled with CUDA enabled") from torch.cuda.synchronize."""
    result = _run_cli("--models", "mlp_resnet", "--batch", "4", "--repeats", "1", "--device", device)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"python -m nets.models.benchmark: error: --device '{device}' needs CUDA")
    assert result.stdout == ""


@pytest.mark.parametrize("device", ["tpu", "cpu:x", "meta", ""])
def test_unknown_device_is_one_line_and_status_2(device):
    result = _run_cli("--models", "mlp_resnet", "--batch", "4", "--repeats", "1", "--device", device)
    assert result.returncode == 2
    assert result.stderr == ("python -m nets.models.benchmark: error: --device must be one of auto, cpu, cpu:N, cuda, "
                             f"cuda:N; got {device!r}\n")


def test_cpu_with_an_index_is_timed():
    result = _run_cli("--models", "mlp_resnet", "--batch", "4", "--repeats", "1", "--device", "cpu:0")
    assert result.returncode == 0, result.stderr
    assert "| mlp_resnet |" in result.stdout and "Traceback" not in result.stderr


def test_time_training_step_accepts_a_torch_device_and_refuses_bad_ones():
    assert time_training_step("mlp_resnet", batch=4, repeats=1, device=torch.device("cpu", 0)).plain_ms > 0
    with pytest.raises(ValueError, match=r"^device must be one of auto, cpu, cpu:N, cuda, cuda:N; got 'gpu'$"):
        time_training_step("mlp_resnet", batch=4, repeats=1, device="gpu")


@pytest.mark.parametrize("flag, value, requirement", [
    ("--batch", "0", "a positive integer"), ("--repeats", "0", "a positive integer"),
    ("--threads", "-1", "an integer in [1, 1024]"), ("--threads", "0", "an integer in [1, 1024]"),
    ("--threads", "100000", "an integer in [1, 1024]"),  # was a segmentation fault (exit 139) creating the pool
])
def test_bad_numbers_are_refused_by_argparse_before_the_progress_bar(flag, value, requirement):
    """Were refused by time_training_step, after the progress bar had started: two stderr lines, no flag named."""
    result = _run_cli("--models", "mlp_resnet", "--repeats", "1", flag, value)
    assert result.returncode == 2
    assert result.stderr == (f"python -m nets.models.benchmark: error: argument {flag}: must be {requirement}; "
                             f"got {value!r}\n")
    assert result.stdout == ""


def test_time_training_step_refuses_more_threads_than_max_threads():
    from nets.device import MAX_THREADS

    with pytest.raises(ValueError, match=rf"^threads must be an integer in \[1, {MAX_THREADS}\]; got 100000$"):
        time_training_step("mlp_resnet", batch=4, repeats=1, threads=100000)


def test_one_device_resolver_behind_both_old_import_paths():
    """nets.device.resolve_device is what nets.trainer and nets.models.benchmark export (they had one each)."""
    import nets.device
    import nets.models.benchmark
    import nets.trainer

    resolve = nets.device.resolve_device
    assert nets.trainer.resolve_device is resolve and nets.models.benchmark.resolve_device is resolve
    assert resolve("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve("cpu") == torch.device("cpu") and resolve("cpu:1") == torch.device("cpu", 1)
    assert resolve(torch.device("cpu", 0)) == torch.device("cpu", 0)
    for bad in ("gpu", "", "meta", "cpu:x", "Auto", 3, None, True, torch.device("meta")):  # 3 would be cuda:3
        with pytest.raises(ValueError) as info:
            resolve(bad)
        assert str(info.value) == f"device must be one of auto, cpu, cpu:N, cuda, cuda:N; got {bad!r}"
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0", torch.device("cuda", 1)):
            with pytest.raises(ValueError, match=r"^device '(cuda|cuda:0|cuda:1)' needs CUDA, .*; use cpu$"):
                resolve(name)
