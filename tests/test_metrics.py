"""nets.metrics: metrics.h5 written atomically and read back exactly."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from nets.metrics import EPOCH_FIELDS, read_metrics, summarize, write_metrics


def history(n: int, blocks: int | None = None) -> dict:
    rng = np.random.default_rng(0)
    h = {"epoch": list(range(1, n + 1)), "train_loss": rng.random(n).tolist(), "train_acc": rng.random(n).tolist(),
         "test_loss": rng.random(n).tolist(), "test_acc": rng.random(n).tolist(), "lr": [0.1] * n,
         "epoch_time": (1 + rng.random(n)).tolist()}
    if blocks:
        h["lm_k"] = rng.standard_normal((n, blocks)).tolist()
    return h


CONFIG = {"model": "lm_preresnet8", "noise": None, "p": None, "h": 1.0, "milestones": [81, 122], "compile": False,
          "epochs": 164, "data": "synthetic"}


def test_round_trip_with_lm_coefficients(tmp_path):
    h = history(4, blocks=3)
    summary = summarize(h, finished=False, device_name="test device")
    write_metrics(tmp_path / "metrics.h5", h, CONFIG, {"epsilon": 0.25, "num_parameters": 10, "dataset": "d"}, summary)
    m = read_metrics(tmp_path)
    for name in EPOCH_FIELDS:
        np.testing.assert_array_equal(getattr(m, name), np.asarray(h[name]))
    assert m.epoch.dtype == np.int64 and m.train_loss.dtype == np.float64
    np.testing.assert_array_equal(m.lm_k, np.asarray(h["lm_k"]))
    assert m.config == CONFIG and m.epsilon == 0.25 and m.attrs["num_parameters"] == 10
    assert m.summary["finished"] is False and not m.finished and m.epochs_completed == 4
    assert m.summary["best_test_acc"] == max(h["test_acc"]) and m.summary["final_test_acc"] == h["test_acc"][-1]
    assert m.summary["final_test_error"] == pytest.approx(1 - h["test_acc"][-1])
    assert m.summary["total_train_time_s"] == pytest.approx(sum(h["epoch_time"]))
    np.testing.assert_allclose(m.test_error, 1 - np.asarray(h["test_acc"]))
    with h5py.File(tmp_path / "metrics.h5") as f:
        assert f.attrs["noise"] == "None" and list(f.attrs["milestones"]) == [81, 122]
        assert f["lm_k"].shape == (4, 3)


def test_no_lm_k_when_absent_and_rewrite_replaces(tmp_path):
    path = tmp_path / "metrics.h5"
    for n in (1, 2):
        h = history(n)
        write_metrics(path, h, CONFIG, {"epsilon": 0.0, "num_parameters": 1, "dataset": "d"},
                      summarize(h, n == 2, "x"))
    m = read_metrics(path)
    assert m.lm_k is None and m.epochs_completed == 2 and m.finished
    assert sorted(os.listdir(tmp_path)) == ["metrics.h5"]  # no temporary file left behind


def test_reader_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="no such metrics file"):
        read_metrics(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["epoch"] = np.arange(3)
    with pytest.raises(ValueError, match="other.h5: not a metrics file"):
        read_metrics(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.h5: cannot read metrics"):
        read_metrics(tmp_path / "junk.h5")
