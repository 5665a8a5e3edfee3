"""nets.reproduce re-trains a recorded run's first epochs and compares them exactly; train(stop_after=N) stops a
run after N epochs so that a later call continues it bit for bit."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from cli_checks import assert_one_line_exit_2
from nets import reproduce as rep
from nets.metrics import read_metrics
from nets.trainer import TrainConfig, train

CONFIG = TrainConfig(model="preresnet8", noise="bernoulli", p=0.9, data="synthetic:128:64", epochs=2,
                     batch_size=64, milestones=(1,), device="cpu", seed=11)


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """A 2-epoch run (dropout, an lr step after epoch 1) recorded once for the module."""
    out = tmp_path_factory.mktemp("recorded") / "run"
    train(CONFIG, out, progress=False)
    return out


def copy_run(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def test_a_run_re_trained_under_its_recorded_settings_is_bit_identical(recorded_run):
    threads = torch.get_num_threads()
    report = rep.reproduce(recorded_run, epochs=2)
    assert torch.get_num_threads() == threads
    assert report.identical and report.first_differing_epoch is None and report.changed_settings() == []
    assert len(report.comparisons) == 2 * len(rep.COMPARED_FIELDS)
    assert {(c.epoch, c.field) for c in report.comparisons} == {(e, f) for e in (1, 2) for f in rep.COMPARED_FIELDS}
    assert [s["first_epoch"] for s in report.recorded_settings] == [1]
    text = rep.format_report(report)
    assert text.endswith("verdict: bit-identical over 2 epoch(s)") and "settings: all as recorded" in text


def test_one_ulp_in_one_recorded_value_is_found(recorded_run, tmp_path):
    run = copy_run(recorded_run, tmp_path)
    with h5py.File(run / "metrics.h5", "r+") as f:
        original = float(f["test_loss"][1])
        f["test_loss"][1] = np.nextafter(original, np.inf)
    report = rep.reproduce(run, epochs=2)
    (different,) = [c for c in report.comparisons if not c.identical]
    assert (different.epoch, different.field) == (2, "test_loss") and different.rerun == original
    assert different.abs_diff == np.spacing(original)
    assert not report.identical and report.first_differing_epoch == 2
    assert rep.format_report(report).endswith("verdict: differs from epoch 2")
    # one epoch only compares epoch 1, which is untouched
    assert rep.reproduce(run, epochs=1).identical


def test_a_run_recorded_before_provenance_says_so(recorded_run, tmp_path):
    run = copy_run(recorded_run, tmp_path)
    with h5py.File(run / "metrics.h5", "r+") as f:
        del f.attrs["provenance_json"]
    report = rep.reproduce(run, epochs=1)
    assert report.identical and report.recorded_settings == ()
    assert "the run recorded none" in rep.format_report(report)


def test_changed_settings_are_listed(recorded_run, monkeypatch):
    from nets import provenance

    real = provenance.current_settings
    monkeypatch.setattr(provenance, "current_settings", lambda name, execution=None: {**real(name, execution), "torch": "9.9"})
    report = rep.reproduce(recorded_run, epochs=1)
    assert report.changed_settings() == [f"torch {torch.__version__} -> 9.9"]


def test_a_run_resumed_with_another_test_batch_size_is_re_trained_as_its_first_epoch_ran(tmp_path, capsys):
    """config_json keeps the last session's execution settings; epoch 1 is re-trained with its own segment's."""
    import dataclasses

    out = tmp_path / "run"
    train(dataclasses.replace(CONFIG, eval_batch_size=7), out, progress=False, stop_after=1)
    capsys.readouterr()
    train(dataclasses.replace(CONFIG, eval_batch_size=64), out, progress=False)
    assert "resuming at epoch 2 with eval_batch_size 7 -> 64" in capsys.readouterr().err
    segments = read_metrics(out).provenance
    assert [(s["first_epoch"], s["eval_batch_size"]) for s in segments] == [(1, 7), (2, 64)]
    assert read_metrics(out).config["eval_batch_size"] == 64
    first = rep.reproduce(out, epochs=1)
    assert first.identical and first.changed_settings() == []
    # the 64 test images in one batch or in batches of 7 (float32 sums per batch): the test loss differs in its
    # last bits, so a re-run with config_json's 64 would not be identical
    whole = dataclasses.replace(CONFIG, eval_batch_size=64)
    assert float(train(whole, tmp_path / "other", progress=False, stop_after=1).history["test_loss"][0]) != float(
        read_metrics(out).test_loss[0])


def test_the_kept_directory_holds_the_stopped_re_run(recorded_run, tmp_path):
    keep = tmp_path / "rerun"
    rep.reproduce(recorded_run, epochs=1, work_dir=keep)
    kept = read_metrics(keep)
    assert kept.epochs_completed == 1 and not kept.finished
    assert kept.config == read_metrics(recorded_run).config


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 3}, r"epochs must be an integer in \[1, 2\]"),
    ({"epochs": 0}, r"epochs must be an integer in \[1, 2\]"),
    ({"epochs": True}, r"epochs must be an integer"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"threads": 5000}, "threads must be an integer in \\[1, 1024\\]"),
    ({"data": "synthetic:128:32"}, "data must be the data .* trained on"),
])
def test_bad_arguments_are_refused(recorded_run, kwargs, match):
    with pytest.raises(ValueError, match=match):
        rep.reproduce(recorded_run, **kwargs)


def test_a_non_empty_work_dir_and_a_missing_run_are_refused(recorded_run, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="work_dir must be an empty or absent directory"):
        rep.reproduce(recorded_run, work_dir=tmp_path / "full")
    with pytest.raises(ValueError, match="no such metrics file"):
        rep.reproduce(tmp_path / "nothing")


def test_command_line_exit_status(recorded_run, tmp_path, capsys):
    assert rep.main([str(recorded_run), "--no-progress"]) == 0
    assert "verdict: bit-identical over 1 epoch(s)" in capsys.readouterr().out
    run = copy_run(recorded_run, tmp_path)
    with h5py.File(run / "metrics.h5", "r+") as f:
        f["train_acc"][0] = 1.0
    assert rep.main([str(run), "--no-progress"]) == 1
    assert "verdict: differs from epoch 1" in capsys.readouterr().out
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert_one_line_exit_2(capsys, rep.main, [str(recorded_run), "--keep", str(tmp_path / "full")], "--keep must be")
    assert_one_line_exit_2(capsys, rep.main, [str(recorded_run), "--epochs", "5"], "--epochs must be")
    assert_one_line_exit_2(capsys, rep.main, [str(recorded_run), "--threads", "0"], "--threads")


def test_stop_after_then_resume_equals_an_uninterrupted_run(recorded_run, tmp_path):
    out = tmp_path / "stopped"
    first = train(CONFIG, out, progress=False, stop_after=1)
    assert (first.epochs_completed, first.finished) == (1, False)
    assert not read_metrics(out).finished
    second = train(CONFIG, out, progress=False, stop_after=5)  # more than remain: stops at config.epochs
    assert (second.epochs_completed, second.finished, second.resumed_from_epoch) == (2, True, 1)
    resumed, whole = read_metrics(out), read_metrics(recorded_run)
    for name in rep.COMPARED_FIELDS:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_stop_after_must_be_a_positive_integer(tmp_path, bad):
    with pytest.raises(ValueError, match="stop_after must be None or an integer >= 1"):
        train(CONFIG, tmp_path / "run", progress=False, stop_after=bad)
    assert not (tmp_path / "run").exists()


def test_the_train_command_stops_after_n_epochs_and_says_so(tmp_path, capsys):
    from nets.train import main

    argv = ["--model", "preresnet8", "--data", "synthetic:64:32", "--epochs", "2", "--batch-size", "64",
            "--schedule", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run"), "--stop-after", "1"]
    assert main(argv) == 0
    assert "stopped after epoch 1 of 2 (--stop-after)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "finished 2 epochs" in capsys.readouterr().out
    assert_one_line_exit_2(capsys, main, [*argv[:-1], "0"], "--stop-after: must be an integer >= 1")


def test_a_run_trained_by_several_processes_is_refused(recorded_run, tmp_path):
    run = copy_run(recorded_run, tmp_path)
    with h5py.File(run / "metrics.h5", "r+") as f:
        f.attrs["world_size"] = 2
    with pytest.raises(ValueError, match="trained by 2 process\\(es\\); reproduce re-trains in one process"):
        rep.reproduce(run)


def test_a_difference_on_cuda_is_called_expected():
    differing = (rep.FieldComparison(epoch=1, field="train_loss", recorded=1.0, rerun=1.5),)
    for device, note in (("NVIDIA H200", True), ("cpu (x86_64, 1 threads)", False)):
        report = rep.ReproductionReport(run=rep.Path("r"), epochs=1, comparisons=differing, recorded_settings=(),
                                        settings={"device": device, "threads": 1, "code_version": "x", "torch": "t"})
        assert report.on_cuda is note
        assert rep.format_report(report).endswith("(expected on CUDA: seeded, not bitwise reproducible)") is note


def test_several_runs_are_checked_and_counted(recorded_run, tmp_path, capsys):
    run = copy_run(recorded_run, tmp_path)
    with h5py.File(run / "metrics.h5", "r+") as f:
        f["lr"][0] = 0.2
    assert rep.main([str(recorded_run), str(run), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert out.count("verdict: ") == 2 and out.rstrip().endswith("1 of 2 runs bit-identical over 1 epoch(s)")
    assert "verdict: bit-identical over 1 epoch(s)" in out and "verdict: differs from epoch 1" in out


def test_several_runs_are_all_looked_at_before_any_trains(recorded_run, tmp_path, capsys, monkeypatch):
    trained = []
    monkeypatch.setattr(rep, "reproduce", lambda *args, **kwargs: trained.append(args))
    assert_one_line_exit_2(capsys, rep.main, [str(recorded_run), str(tmp_path / "absent")], "no such metrics file")
    assert_one_line_exit_2(capsys, rep.main, [str(recorded_run), str(recorded_run), "--keep", str(tmp_path / "k")],
                           "--keep takes one RUN_DIR; got 2")
    assert trained == []


def test_the_data_is_read_once(recorded_run, monkeypatch):
    """reproduce loads the data to check its fingerprint and hands it to train(), which does not read it again."""
    import nets.data

    calls = []
    load = nets.data.load_dataset

    def counting_load(spec, *args, **kwargs):
        calls.append(spec)
        return load(spec, *args, **kwargs)

    monkeypatch.setattr(nets.data, "load_dataset", counting_load)
    assert rep.reproduce(recorded_run, epochs=1).identical
    assert calls == [CONFIG.data]
