"""nets.provenance: the settings (code version, library versions, CPU threads) each stretch of a run's epochs
trained under, recorded in checkpoint.pt and metrics.h5, with a warning when a resume changes them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from nets import provenance
from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics
from nets.trainer import TrainConfig, train

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"code_version": "abc1234", "torch": "2.13.0", "numpy": "2.1.0", "python": "3.11.9", "threads": 1,
            "cpu": "Intel(R) Xeon(R) Processor; AVX512; flags 0123abcd", "device": "cpu"}


def test_extend_appends_a_segment_only_when_the_settings_change():
    first = provenance.extend([], 1, SETTINGS)
    assert first == [{"first_epoch": 1, **SETTINGS}]
    assert provenance.extend(first, 4, dict(SETTINGS)) == first
    changed = provenance.extend(first, 4, {**SETTINGS, "threads": 2})
    assert [s["first_epoch"] for s in changed] == [1, 4] and changed[1]["threads"] == 2
    assert first == [{"first_epoch": 1, **SETTINGS}]  # the input list is not modified
    with pytest.raises(ValueError, match="first_epoch must be after the last segment's \\(4\\); got 4"):
        provenance.extend(changed, 4, {**SETTINGS, "threads": 3})


def test_changed_settings_and_the_resume_warning_name_what_differs():
    segments = provenance.extend([], 1, SETTINGS)
    after = {**SETTINGS, "code_version": "def5678-dirty", "threads": 2}
    assert provenance.changed_settings(segments[-1], after) == ["code_version", "threads"]
    line = provenance.resume_warning(Path("runs/a"), segments, 3, after)
    assert line.startswith("warning: runs/a: resuming at epoch 3 with code_version abc1234 -> def5678-dirty, "
                           "threads 1 -> 2;") and "\n" not in line
    assert provenance.resume_warning(Path("runs/a"), segments, 3, dict(SETTINGS)) is None
    assert provenance.resume_warning(Path("runs/a"), [], 3, after) is None  # a run made before provenance


@pytest.mark.parametrize("bad, match", [
    ({"first_epoch": 1}, "must be a list"),
    ([{"threads": 1}], "integer first_epoch"),
    ([{"first_epoch": True}], "integer first_epoch"),
    ([{"first_epoch": 1.0}], "integer first_epoch"),
    ([{"first_epoch": 3}, {"first_epoch": 2}], "must increase .* got \\[3, 2\\]"),
    ([{"first_epoch": 2}, {"first_epoch": 2}], "must increase"),
])
def test_malformed_segments_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        provenance.validated(bad)


def test_json_round_trip_and_runs_recorded_before_provenance():
    segments = provenance.extend(provenance.extend([], 1, SETTINGS), 5, {**SETTINGS, "torch": "2.14.0"})
    assert provenance.from_json(provenance.to_json(segments)) == segments
    assert provenance.from_json(None) == []
    with pytest.raises(ValueError, match="provenance_json is not valid JSON"):
        provenance.from_json("[{")


def test_code_version_is_this_checkouts_commit_and_none_without_git(monkeypatch):
    version = provenance.code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    if head:  # a git checkout (CI clones one): describe ends in HEAD's abbreviated hash, maybe "-dirty"
        abbreviated = version.removesuffix("-dirty").rsplit("-g", 1)[-1]
        assert len(abbreviated) >= 7 and head.startswith(abbreviated)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.code_version() is None


def test_current_settings_are_this_process():
    settings = provenance.current_settings("cpu")  # a measurement's: not how a trainer executed
    assert set(settings) == set(provenance.SETTINGS) - set(provenance.EXECUTION_SETTINGS)
    executed = {"compile": False, "amp": False, "channels_last": False, "eval_batch_size": 100}
    assert set(provenance.current_settings("cpu", executed)) == set(provenance.SETTINGS)
    assert settings["code_version"] == provenance.CODE_VERSION_AT_IMPORT
    assert settings["torch"] == torch.__version__ and settings["threads"] == torch.get_num_threads()
    assert settings["device"] == "cpu"


def test_cpu_description_names_the_model_the_capability_and_the_flags():
    x86 = "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: sse avx2 fma\n\nprocessor\t: 1\n"
    reordered = x86.replace("sse avx2 fma", "fma sse  avx2")
    fewer = x86.replace("sse avx2 fma", "sse avx2")
    capability = torch.backends.cpu.get_cpu_capability()
    model, cap, flags = provenance.cpu_description(x86).split("; ")
    assert (model, cap) == ("Test CPU 9000", capability) and flags.startswith("flags ") and len(flags) == 14
    assert provenance.cpu_description(reordered) == provenance.cpu_description(x86)  # a set of flags
    assert provenance.cpu_description(fewer) != provenance.cpu_description(x86)
    assert provenance.cpu_description("").endswith(f"; {capability}")  # no /proc/cpuinfo: no flags part
    assert provenance.cpu_description() == provenance.current_settings("cpu")["cpu"]


class Interrupted(Exception):
    pass


def run_tiny(out: Path, stop_after: int | None = None, monkeypatch=None) -> None:
    """Train a 3-epoch run, or (stop_after) its first epochs only, as a run killed after that many epochs."""
    config = TrainConfig(model="preresnet8", data="synthetic:64:32", epochs=3, batch_size=64, milestones=(),
                         device="cpu", seed=3)
    if stop_after is None:
        train(config, out, progress=False)
        return
    import nets.metrics

    real, written = nets.metrics.write_metrics, []

    def write_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        written.append(1)
        if len(written) == stop_after:
            raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(nets.metrics, "write_metrics", write_then_stop)
        with pytest.raises(Interrupted):
            train(config, out, progress=False)


def test_the_trainer_records_one_segment_per_change_of_settings(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    run_tiny(out, 1, monkeypatch)
    (first,) = read_metrics(out).provenance
    executed = {"compile": False, "amp": False, "channels_last": False, "eval_batch_size": 1000}  # CPU: no autocast
    assert first == {"first_epoch": 1, **provenance.current_settings(first["device"], executed)}
    assert first["code_version"] == provenance.code_version()  # nothing was edited meanwhile
    assert first["threads"] == torch.get_num_threads()

    real = provenance.current_settings
    monkeypatch.setattr(provenance, "current_settings", lambda name, execution=None: {**real(name, execution), "threads": 99})
    capsys.readouterr()
    run_tiny(out, 1, monkeypatch)  # epoch 2 under 99 threads, then killed
    err = capsys.readouterr().err
    assert f"warning: {out}: resuming at epoch 2 with threads {first['threads']} -> 99;" in err
    segments = read_metrics(out).provenance
    assert [(s["first_epoch"], s["threads"]) for s in segments] == [(1, first["threads"]), (2, 99)]
    assert load_checkpoint(out / "checkpoint.pt")["provenance"] == segments

    run_tiny(out)  # epoch 3 under the same settings as epoch 2: no new segment, no warning
    assert "warning" not in capsys.readouterr().err
    assert read_metrics(out).finished and [s["first_epoch"] for s in read_metrics(out).provenance] == [1, 2]


def test_a_segment_recorded_before_the_execution_settings_compares_as_unchanged_in_them():
    old = {"first_epoch": 1, **provenance.current_settings("cpu")}  # no compile, amp, channels_last, batch size
    now = provenance.current_settings("cpu", {"compile": False, "amp": False, "channels_last": False,
                                              "eval_batch_size": 500})
    assert provenance.changed_settings(old, now) == [] and provenance.extend([old], 2, now) == [old]
    assert provenance.changed_settings({**old, "eval_batch_size": 1000}, now) == ["eval_batch_size"]


def test_a_checkpoint_made_before_provenance_resumes_with_a_segment_from_the_resume(tmp_path, capsys, monkeypatch):
    from nets.checkpoint import save_checkpoint

    out = tmp_path / "run"
    run_tiny(out, 1, monkeypatch)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    ckpt.pop("checkpoint_version")
    ckpt.pop("provenance")
    save_checkpoint(out / "checkpoint.pt", ckpt)
    capsys.readouterr()
    run_tiny(out)
    assert "warning" not in capsys.readouterr().err
    assert [s["first_epoch"] for s in read_metrics(out).provenance] == [2]  # epoch 1's settings are unknown


def test_a_malformed_provenance_in_a_checkpoint_is_refused_naming_the_file(tmp_path, monkeypatch):
    from nets.checkpoint import save_checkpoint

    out = tmp_path / "run"
    run_tiny(out, 1, monkeypatch)
    ckpt = load_checkpoint(out / "checkpoint.pt")
    ckpt.pop("checkpoint_version")
    save_checkpoint(out / "checkpoint.pt", {**ckpt, "provenance": [{"threads": 1}]})
    with pytest.raises(ValueError, match="checkpoint.pt: does not fit this run .*integer first_epoch"):
        run_tiny(out)


def test_the_train_command_sets_and_records_its_thread_count(tmp_path, capsys):
    from cli_checks import assert_one_line_exit_2
    from nets.train import main

    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2
    argv = ["--model", "preresnet8", "--data", "synthetic:64:32", "--epochs", "1", "--batch-size", "64",
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")]
    try:
        assert main([*argv, "--threads", str(threads)]) == 0
    finally:
        torch.set_num_threads(before)
    (segment,) = read_metrics(tmp_path / "run").provenance
    assert segment["threads"] == threads
    assert_one_line_exit_2(capsys, main, [*argv, "--threads", "0"], "argument --threads: must be an integer in [1, 1024]")
