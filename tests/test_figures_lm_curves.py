"""lm_curves (LM-ResNet paper Figs. 3 and 5) on FIXTURE runs written here (tests/fixtures_results.py).

Expected curves are the means and sample standard deviations of the arrays the fixtures wrote, computed
here with numpy, independently of figures/.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from fixtures_results import curves, write_metrics
from figures import lm_curves, registry
from figures.output import MissingResults

EPOCHS = 8


def write_lm_runs(root, rng, depths=(56,), sds=(None,), seeds=3, starts=(None, "zero"), milestones=(4, 6)):
    """ResNet and LM-ResNet FIXTURE runs; returns (depth, lm_start, sd) -> list of (test_acc, train_loss)."""
    written = {}
    for depth in depths:
        for start in starts:
            model = f"preresnet{depth}" if start is None else f"lm_preresnet{depth}"
            for sd in sds:
                for seed in range(seeds):
                    test_acc, train_loss = curves(rng, EPOCHS, float(rng.uniform(0.05, 0.1)), float(rng.uniform(0.1, 0.2)))
                    lm_k = rng.uniform(-1, 1, (EPOCHS, 3)) if start is not None else None
                    write_metrics(root / f"{model}-{start}-{sd}-{seed}", model=model, seed=seed, noise=None, p=None,
                                  stochastic_depth=sd, test_acc=test_acc, train_loss=train_loss, lm_k=lm_k,
                                  lm_start="rest" if start == "rest" else None, milestones=milestones)
                    written.setdefault((depth, start, sd), []).append((test_acc, train_loss))
    return written


def test_curves_are_mean_and_sample_std_over_seeds_per_family(tmp_path):
    written = write_lm_runs(tmp_path, np.random.default_rng(3), sds=(None, 0.8), starts=(None, "zero", "rest"))
    data, note = lm_curves.compute(tmp_path)
    assert list(data) == ["56: ResNet", "56: LM-ResNet", "56: LM-ResNet, Euler first step (u_{-1} = u_0)",
                          "56: ResNet + SD (p_L = 0.8)", "56: LM-ResNet + SD (p_L = 0.8)",
                          "56: LM-ResNet, Euler first step (u_{-1} = u_0) + SD (p_L = 0.8)"]
    for label, d in data.items():
        runs = written[(56, d["lm_start"] if d["model"].startswith("lm_") else None, d["stochastic_depth"])]
        error = np.array([100.0 * (1.0 - acc) for acc, _ in runs])
        loss = np.array([loss for _, loss in runs])
        np.testing.assert_allclose(d["test_error_mean"], error.mean(0))
        np.testing.assert_allclose(d["test_error_std"], error.std(0, ddof=1))
        np.testing.assert_allclose(d["train_loss_mean"], loss.mean(0))
        np.testing.assert_allclose(d["train_loss_std"], loss.std(0, ddof=1))
        assert d["n_runs"] == 3 and list(d["seeds"]) == [0, 1, 2]
        assert d["zoom_from"] == 5  # the lr is divided after epoch 4: the zoom starts at epoch 5
    assert "24 epochs" not in note and "8 epochs" in note


def test_make_writes_the_figure_and_its_numbers_one_row_per_depth(tmp_path):
    import matplotlib.pyplot as plt

    written = write_lm_runs(tmp_path / "runs", np.random.default_rng(4), depths=(20, 56), seeds=2, milestones=None)
    data, note = lm_curves.compute(tmp_path / "runs")
    fig = lm_curves.draw(data, note)
    try:
        assert len(fig.axes) == 6  # two depths, three panels each
        zoom = fig.axes[2]
        assert zoom.get_title() == "(c) depth 20: test error from epoch 5"  # no milestone: the second half of 8 epochs
        shown = [line.get_xdata() for line in zoom.get_lines()]
        assert all(x[0] == 5 and x[-1] == EPOCHS for x in shown)
        low, high = zoom.get_ylim()  # the zoom's range is the curves' from epoch 5, not from epoch 1
        mean_20 = [100.0 * (1.0 - np.mean([acc for acc, _ in written[(20, s, None)]], axis=0)) for s in (None, "zero")]
        assert low <= min(m[4:].min() for m in mean_20) and high < max(m.max() for m in mean_20)
    finally:
        plt.close(fig)
    paths = lm_curves.make(tmp_path / "out", results=tmp_path / "runs")
    assert [p.name for p in paths] == ["lm_curves.png", "lm_curves.pdf", "lm_curves.h5"]
    with h5py.File(paths[-1], "r") as h5:
        assert sorted(h5) == ["20: LM-ResNet", "20: ResNet", "56: LM-ResNet", "56: ResNet"]
        loss = np.array([loss for _, loss in written[(56, "zero", None)]])
        np.testing.assert_allclose(h5["56: LM-ResNet/train_loss_mean"][()], loss.mean(0))
        assert "trained on the JPEG re-encoding" in h5.attrs["note"]


def test_training_loss_axis_is_logarithmic_only_for_a_loss_falling_by_decades(tmp_path):
    import matplotlib.pyplot as plt

    write_lm_runs(tmp_path, np.random.default_rng(5), seeds=2)
    data, note = lm_curves.compute(tmp_path)
    for scale, last in (("log", 0.01), ("linear", 0.5)):  # from 2.0: down by 200 times, by 4 times
        drawn = {label: {**d, "train_loss_mean": np.geomspace(2.0, last, EPOCHS)} for label, d in data.items()}
        fig = lm_curves.draw(drawn, note)
        try:
            assert fig.axes[0].get_yscale() == scale
            if scale == "log":  # bands below zero (std > mean) do not stretch the axis down to matplotlib's clip value
                assert fig.axes[0].get_ylim()[0] == pytest.approx(0.5 * last)
        finally:
            plt.close(fig)


def test_without_lm_runs_it_prints_the_sweep_and_writes_nothing(tmp_path):
    rng = np.random.default_rng(6)
    test_acc, train_loss = curves(rng, EPOCHS, 0.1, 0.2)
    write_metrics(tmp_path / "runs" / "resnet", model="preresnet56", seed=0, noise=None, p=None, test_acc=test_acc,
                  train_loss=train_loss)
    with pytest.raises(MissingResults) as missing:
        lm_curves.make(tmp_path / "out", results=tmp_path / "runs")
    assert "lm_preresnet56" in missing.value.command and "--stochastic-depth" in missing.value.command
    assert not (tmp_path / "out").exists()


def test_noisy_and_step_factor_runs_are_not_lm_table_runs(tmp_path):
    """Only lm_table's runs: no branch noise (p = 1), h = 1; a p = 0.9 or h = 0.1 ResNet is not a curve."""
    written = write_lm_runs(tmp_path, np.random.default_rng(7), seeds=2)
    rng = np.random.default_rng(8)
    for name, extra in (("noisy", dict(noise="bernoulli", p=0.9)), ("small-h", dict(noise=None, p=None, h=0.1))):
        test_acc, train_loss = curves(rng, EPOCHS, 0.3, 1.0)
        write_metrics(tmp_path / name, model="preresnet56", seed=5, test_acc=test_acc, train_loss=train_loss,
                      milestones=(4, 6), **extra)
    data, _ = lm_curves.compute(tmp_path)
    assert data["56: ResNet"]["n_runs"] == 2
    loss = np.array([loss for _, loss in written[(56, None, None)]])
    np.testing.assert_allclose(data["56: ResNet"]["train_loss_mean"], loss.mean(0))


def test_registered_for_figures_all():
    assert "lm_curves" in registry.figure_names()
    assert registry.load("lm_curves") is lm_curves
